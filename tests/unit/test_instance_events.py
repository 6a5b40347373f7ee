from __future__ import annotations

import hashlib
import json
from io import BytesIO

import jsonschema
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from lake_schemas.topics import INSTANCE_RECEIVED
from platform_layer.object_store import ObjectStore
from radlake.instance_events import store_and_describe


def _deidentified_bytes(sop: str = "2.25.3", pixels: int = 7) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "2.25.1", "2.25.2", "2.25.4"
    ds.PatientID, ds.Modality, ds.InstanceNumber = "RL000000000000000000000042", "CT", 3
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 2.5], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.full((4, 4), pixels, np.int16).tobytes()
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_event_points_at_the_stored_object_and_validates(tmp_path):
    store = ObjectStore(str(tmp_path))
    blob = _deidentified_bytes()
    event = store_and_describe(blob, store, provider="site-a", project="p", deid_profile_version="v1")
    assert event.data.sha256 == hashlib.sha256(blob).hexdigest() and event.data.size_bytes == len(blob)
    assert store.get(event.data.object_uri, event.data.sha256) == blob
    assert event.data.image_position_patient == (0.0, 0.0, 2.5) and event.data.pixel_spacing == (0.8, 0.8)
    assert event.key == "2.25.1"
    jsonschema.validate(json.loads(event.model_dump_json()), INSTANCE_RECEIVED.schema)
    assert "PixelData" not in event.model_dump_json()


def test_event_id_is_stable_for_the_same_instance_and_changes_with_its_content(tmp_path):
    store = ObjectStore(str(tmp_path))
    first = store_and_describe(_deidentified_bytes(), store, provider="a", project="p", deid_profile_version="v1")
    again = store_and_describe(_deidentified_bytes(), store, provider="a", project="p", deid_profile_version="v1")
    changed = store_and_describe(_deidentified_bytes(pixels=9), store, provider="a", project="p",
                                 deid_profile_version="v1")
    other_provider = store_and_describe(_deidentified_bytes(), store, provider="b", project="p",
                                        deid_profile_version="v1")
    assert first.event_id == again.event_id
    assert len({first.event_id, changed.event_id, other_provider.event_id}) == 3
    assert pydicom.dcmread(BytesIO(store.get(changed.data.object_uri))).SOPInstanceUID == "2.25.3"
