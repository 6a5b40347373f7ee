"""Synthetic CT instances full of fake PHI, and the malformed inputs hospitals really send.

:func:`ct_series` builds one series of CT images (512×512 int16 by default, ``size=16`` for fast
tests) in which **every attribute of PS3.15 Table E.1-1** that pydicom's dictionary knows carries a
fake identifying value, plus: nested sequences (with PHI two levels down), private elements with and
without a private creator (and a private sequence), an overlay and a curve with text, and references
across instances (each image references the previous one by SOP Instance UID). Every planted value
is recorded in :class:`Plant` so tests can prove that none survives.

The malformed cases (truncated, non-DICOM, no meta, no pixel data, big endian, deflated, RLE,
invalid VR values) and hostile archives are built by the functions after that.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Sequence as Seq
from copy import deepcopy
from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from radlake.deid.confidentiality_profile import load_table

ROOT = "1.2.826.0.1.3680043.10.999"  # test UIDs only
STUDY_DATE = dt.date(2023, 11, 7)
# The identifying attributes a typical CT header really carries (for benchmarks that want a realistic
# header; tests use every Table E.1-1 attribute).
TYPICAL_CT_PHI = frozenset({
    0x00080012, 0x00080013, 0x00080014, 0x00080021, 0x00080022, 0x00080023, 0x00080030, 0x00080031, 0x00080032,
    0x00080033, 0x00080050, 0x00080090, 0x00081010, 0x00081040, 0x00081048, 0x00081050, 0x00081060, 0x00081070,
    0x00080020, 0x0008002A, 0x00081111, 0x00081032, 0x00181000, 0x00181030, 0x00101000, 0x00101001, 0x00101040,
    0x00102160, 0x001021B0, 0x00104000, 0x00200010, 0x00321032, 0x00321060, 0x00400244, 0x00400245, 0x00400253,
    0x00400254, 0x00400275, 0x00081155, 0x00180010, 0x00181400, 0x00209161,
})
STRUCTURAL = {0x0020000D, 0x0020000E, 0x00080018, 0x00200052, 0x00100010, 0x00100020, 0x00100030, 0x00081140,
              0x00082112, 0x7FE00010}


@dataclass(frozen=True)
class Planted:
    """One planted value: the leaf tag, the tags of the sequences around it (outermost first), the text."""

    tag: int
    within: tuple[int, ...]
    value: str
    vr: str


@dataclass
class Plant:
    """Everything a generator planted (a mutable collector owned by the generator call)."""

    values: list[Planted] = field(default_factory=list)

    def add(self, tag: int, within: tuple[int, ...], value: str, vr: str) -> None:
        self.values.append(Planted(tag, within, value, vr))


@dataclass(frozen=True)
class Patient:
    name: str = "Quixleyhart^Marguerite^Anneliese"
    patient_id: str = "MRN48213377"
    birth_date: str = "19580214"
    sex: str = "F"
    age: str = "065Y"
    issuer: str = "SAINT-ELSEWHERE-GH"
    institution: str = "Saint Elsewhere General Hospital"
    address: str = "42 Wallaby Way, Sydneyborough"


def _uid(*parts: int | str) -> str:
    return ".".join([ROOT, *map(str, parts)])


def _date(offset_days: int) -> str:
    return (STUDY_DATE + dt.timedelta(days=offset_days)).strftime("%Y%m%d")


def _value(vr: str, idx: int, patient: Patient, embed: bool = True) -> object:
    """A distinctive fake value of the VR (``idx`` makes it unique per attribute).

    With ``embed``, text values also quote the patient's name, ID and study date (as free text does);
    attributes some option keeps (device serial numbers...) get plain values instead.
    """
    if not embed and vr in ("LO", "UC", "LT", "ST", "UT"):
        return f"Zqplain{idx:03d}"
    match vr:
        case "PN":
            return f"Zqfam{idx:03d}^Zqgiv{idx:03d}"
        case "LO" | "UC":
            return f"Zqlong{idx:03d} of {patient.name.split('^')[0]}"
        case "SH":
            return f"ZQSH{idx:03d}"
        case "LT" | "ST" | "UT":
            return f"Zqtext{idx:03d}: seen {patient.name.replace('^', ' ')} ({patient.patient_id}) on {_date(0)}"
        case "CS":
            return f"ZQCS{idx:03d}"
        case "AE":
            return f"ZQAE{idx:03d}"
        case "DA":
            return _date(idx % 3 - 1)
        case "TM":
            return f"1010{idx % 60:02d}.{idx:06d}"
        case "DT":
            return _date(idx % 3 - 1) + f"1010{idx % 60:02d}"
        case "UI":
            return _uid(9, idx)
        case "DS":
            return f"7351.{idx:03d}"
        case "IS":
            return str(735100 + idx)
        case "AS":
            return "065Y"
        case "UR":
            return f"http://zqurl{idx:03d}.example/"
        case "US" | "SS" | "UL" | "SL":
            return 7
        case "FL" | "FD":
            return 7.5
        case "OB" | "OW" | "UN":
            return f"ZQBYTES{idx:03d}".encode()
    return None


def _nested_item(idx: int, patient: Patient, plant: Plant, within: tuple[int, ...], refs: tuple[str, str]) -> Dataset:
    """A sequence item with PHI and a reference; two levels deep for the first sequences."""
    item = Dataset()
    item.add(DataElement(0x00100010, "PN", f"Zqnest{idx:03d}^{patient.name.split('^')[1]}"))
    plant.add(0x00100010, within, f"Zqnest{idx:03d}", "PN")
    item.add(DataElement(0x00081155, "UI", refs[1]))
    item.add(DataElement(0x00081150, "UI", refs[0]))
    plant.add(0x00081155, within, refs[1], "UI")
    item.add(DataElement(0x00400009, "SH", f"ZQSPS{idx:03d}"))  # Scheduled Procedure Step ID (X)
    plant.add(0x00400009, within, f"ZQSPS{idx:03d}", "SH")
    if len(within) < 2:
        inner_tag = 0x00081110  # Referenced Study Sequence (X), holding a person name and a UID
        inner = _nested_item(idx + 500, patient, plant, (*within, inner_tag), refs)
        item.add(DataElement(inner_tag, "SQ", Sequence([inner])))
    return item


def ct_instance(
    index: int,
    *,
    patient: Patient = Patient(),
    study: int = 1,
    series: int = 1,
    size: int = 512,
    pixels: np.ndarray | None = None,
    plant: Plant | None = None,
    only: frozenset[int] | None = None,
) -> Dataset:
    """One CT image of the series ``(study, series)``; PHI in every Table E.1-1 attribute (or in ``only``)."""
    plant = plant if plant is not None else Plant()
    ds = Dataset()
    sop_uid = _uid(study, series, index)
    previous_uid = _uid(study, series, max(index - 1, 0))
    refs = (str(CTImageStorage), previous_uid)
    for idx, row in enumerate(load_table()):
        if len(row.tag) != 8 or "x" in row.tag:
            continue
        tag = int(row.tag, 16)
        if tag >> 16 in (0x0000, 0x0002, 0x0004) or tag in STRUCTURAL or (only is not None and tag not in only):
            continue
        vr = dictionary_VR(tag).split(" ")[0]
        if vr == "SQ":
            ds.add(DataElement(tag, "SQ", Sequence([_nested_item(idx, patient, plant, (tag,), refs)])))
            continue
        value = _value(vr, idx, patient, embed="K" not in row.options.values())
        if value is None:
            continue
        ds.add(DataElement(tag, vr, value))
        if isinstance(value, str):
            plant.add(tag, (), value, vr)
        elif isinstance(value, bytes):
            plant.add(tag, (), value.decode(), vr)
    # The patient, the study and its references: realistic values where tests look for them.
    for tag, vr, value in (
        (0x00100010, "PN", patient.name),
        (0x00100020, "LO", patient.patient_id),
        (0x00100021, "LO", patient.issuer),
        (0x00100030, "DA", patient.birth_date),
        (0x00100040, "CS", patient.sex),
        (0x00101010, "AS", patient.age),
        (0x00080080, "LO", patient.institution),
        (0x00080081, "ST", patient.address),
        (0x00081030, "LO", f"CT CHEST for {patient.name.split('^')[0]}"),
        (0x0008103E, "LO", "AXIAL 1.0 B30f"),
    ):
        ds.add(DataElement(tag, vr, value))
        plant.add(tag, (), value, vr)
    for part in patient.name.split("^"):
        plant.add(0x00100010, (), part, "PN")
    ds.add(DataElement(0x00081140, "SQ", Sequence([_reference(refs)])))  # Referenced Image Sequence
    ds.add(DataElement(0x00082112, "SQ", Sequence([_reference(refs)])))  # Source Image Sequence
    plant.add(0x00081155, (0x00081140,), previous_uid, "UI")
    _clinical(ds, index, size, study, series, sop_uid, pixels)
    for tag, uid in ((0x0020000D, ds.StudyInstanceUID), (0x0020000E, ds.SeriesInstanceUID),
                     (0x00080018, sop_uid), (0x00200052, ds.FrameOfReferenceUID)):
        plant.add(tag, (), uid, "UI")
    _private_and_graphics(ds, index, patient, plant)
    ds.file_meta = _meta(ds, ExplicitVRLittleEndian)
    return ds


def _reference(refs: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = refs[0]
    item.ReferencedSOPInstanceUID = refs[1]
    return item


def _clinical(ds: Dataset, index: int, size: int, study: int, series: int, sop_uid: str,
              pixels: np.ndarray | None) -> None:
    """What de-identification must keep: identity of the object, geometry, acquisition, pixels."""
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = _uid(study)
    ds.SeriesInstanceUID = _uid(study, series)
    ds.FrameOfReferenceUID = _uid(study, series, 99999)
    ds.Modality = "CT"
    ds.Manufacturer = "ACME Medical"
    ds.ManufacturerModelName = "Tomoscan 9000"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    ds.KVP = "120"
    ds.ConvolutionKernel = "B30f"
    ds.SliceThickness = "1.0"
    ds.PixelSpacing = ["0.7", "0.7"]
    ds.ImagePositionPatient = ["-179.3", "-179.3", f"{-100.0 + index:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.InstanceNumber = str(index + 1)
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    array = pixels if pixels is not None else phantom(size, index)
    ds.PixelData = array.astype("<i2").tobytes()


def phantom(size: int, index: int = 0) -> np.ndarray:
    """A body-like disc with a rib ring and a nodule, plus noise (deterministic per index)."""
    y, x = np.mgrid[0:size, 0:size]
    r = np.hypot(x - size / 2, y - size / 2)
    image = np.where(r < size * 0.42, 1024 + 40, 0).astype(np.int16)
    image[(r > size * 0.36) & (r < size * 0.39)] = 1024 + 700
    image[np.hypot(x - size * 0.6, y - size * 0.45) < size * 0.03] = 1024 + 60
    rng = np.random.default_rng(index)
    return (image + rng.integers(-8, 9, size=(size, size), dtype=np.int16)).astype(np.int16)


def _private_and_graphics(ds: Dataset, index: int, patient: Patient, plant: Plant) -> None:
    family = patient.name.split("^")[0]
    # A private block with a creator: PHI copied into vendor elements.
    ds.add(DataElement(0x00090010, "LO", "ACME_PRIVATE_01"))
    ds.add(DataElement(0x00091001, "LO", f"Zqpriv {family}"))
    ds.add(DataElement(0x00091002, "DA", _date(0)))
    ds.add(DataElement(0x00091003, "LO", patient.patient_id))
    plant.add(0x00091001, (), f"Zqpriv {family}", "LO")
    # A private sequence holding a person name.
    ds.add(DataElement(0x00110010, "LO", "ACME SEQ"))
    item = Dataset()
    item.add(DataElement(0x00100010, "PN", f"Zqprivseq^{family}"))
    item.add(DataElement(0x00111005, "LO", "Zqprivnested"))
    ds.add(DataElement(0x00111001, "SQ", Sequence([item])))
    plant.add(0x00100010, (0x00111001,), "Zqprivseq", "PN")
    plant.add(0x00111005, (0x00111001,), "Zqprivnested", "LO")
    # Private elements without a creator (orphans), one of them implicit-VR style (UN).
    ds.add(DataElement(0x00131010, "LO", "Zqorphan"))
    ds.add(DataElement(0x00131011, "UN", b"Zqorphanbytes\x00"))
    plant.add(0x00131010, (), "Zqorphan", "LO")
    plant.add(0x00131011, (), "Zqorphanbytes", "UN")
    # A private element a project may allow under Retain Safe Private (a number, no PHI).
    ds.add(DataElement(0x00190010, "LO", "ACME_SAFE"))
    ds.add(DataElement(0x00191001, "DS", "0.5"))
    # Private data nested inside a public sequence.
    nested = ds[0x00081140].value[0]
    nested.add(DataElement(0x00290010, "LO", "ACME_NESTED"))
    nested.add(DataElement(0x00291001, "LO", "Zqprivinref"))
    plant.add(0x00291001, (0x00081140,), "Zqprivinref", "LO")
    # An overlay and a curve that carry text.
    ds.add(DataElement(0x60000010, "US", 8))
    ds.add(DataElement(0x60000011, "US", 8))
    ds.add(DataElement(0x60000022, "LO", "Zqoverlaydesc"))
    ds.add(DataElement(0x60001500, "LO", "Zqoverlaylabel"))
    ds.add(DataElement(0x60003000, "OW", b"\xff" * 8))
    ds.add(DataElement(0x60004000, "LT", "Zqoverlaycomment"))
    ds.add(DataElement(0x50002500, "LO", "Zqcurvelabel"))
    for tag, text in ((0x60000022, "Zqoverlaydesc"), (0x60001500, "Zqoverlaylabel"),
                      (0x60004000, "Zqoverlaycomment"), (0x50002500, "Zqcurvelabel")):
        plant.add(tag, (), text, "LO")


def _meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = _uid(8, 1)
    meta.SourceApplicationEntityTitle = "ZQSRCAE"
    return meta


def ct_series(count: int, *, patient: Patient = Patient(), study: int = 1, series: int = 1,
              size: int = 512, only: frozenset[int] | None = None) -> tuple[list[Dataset], Plant]:
    """``count`` instances of one series, each referencing the previous one; and what was planted.

    ``only=TYPICAL_CT_PHI`` plants PHI in the attributes a typical CT header carries instead of in all
    of Table E.1-1.
    """
    plant = Plant()
    base = phantom(size, study * 1000 + series)
    datasets = [ct_instance(i, patient=patient, study=study, series=series, size=size,
                            pixels=np.roll(base, i, axis=0), plant=plant, only=only) for i in range(count)]
    return datasets, plant


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ malformed inputs


def with_transfer_syntax(ds: Dataset, transfer_syntax: str) -> Dataset:
    """A copy re-encoded in another transfer syntax (big endian swaps the pixel bytes, RLE compresses)."""
    copy = deepcopy(ds)
    copy.file_meta = _meta(ds, transfer_syntax)
    if transfer_syntax == ExplicitVRBigEndian:
        copy.PixelData = np.frombuffer(ds.PixelData, "<i2").astype(">i2").tobytes()
    elif transfer_syntax == RLELossless:
        copy.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        copy.compress(RLELossless, encoding_plugin="pydicom")
    return copy


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def without_meta(ds: Dataset) -> bytes:
    """The dataset alone, implicit VR little endian: no preamble, no DICM, no group 0002."""
    buffer = io.BytesIO()
    copy = deepcopy(ds)
    copy.file_meta = FileMetaDataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(buffer, copy, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def without_pixel_data(ds: Dataset) -> Dataset:
    copy = deepcopy(ds)
    copy.file_meta = ds.file_meta
    del copy.PixelData
    return copy


def with_invalid_values(ds: Dataset) -> Dataset:
    """Invalid DA/TM/AS/UI values (a real hospital classic) in PHI and retained attributes."""
    copy = deepcopy(ds)
    copy.file_meta = ds.file_meta
    copy.add(DataElement(0x00080020, "DA", "2023-13-45"))
    copy.add(DataElement(0x00080030, "TM", "25:61"))
    copy.add(DataElement(0x00101010, "AS", "sixty"))
    copy.add(DataElement(0x00081030, "LO", "x" * 200))
    return copy


def burned_in(ds: Dataset, flag: str | None) -> Dataset:
    """A secondary capture with BurnedInAnnotation ``flag`` (None: attribute absent)."""
    copy = deepcopy(ds)
    copy.SOPClassUID = SecondaryCaptureImageStorage
    copy.Modality = "OT"
    if flag is None:
        del copy.BurnedInAnnotation
    else:
        copy.BurnedInAnnotation = flag
    copy.file_meta = _meta(copy, ExplicitVRLittleEndian)
    return copy


def dicomdir_bytes(patient: Patient = Patient()) -> bytes:
    """A minimal DICOMDIR (Media Storage Directory) whose record names the patient."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.1.3.10"
    ds.SOPInstanceUID = _uid(8, 2)
    ds.FileSetID = "ZQFILESET"
    record = Dataset()
    record.DirectoryRecordType = "PATIENT"
    record.PatientName = patient.name
    record.PatientID = patient.patient_id
    ds.DirectoryRecordSequence = Sequence([record])
    ds.file_meta = _meta(ds, ExplicitVRLittleEndian)
    return to_bytes(ds)


NON_DICOM = b"%PDF-1.4\n% not an image\n" + b"x" * 400


def nested_sequence(data: bytes, depth: int, tag: int = 0x0040A730) -> bytes:
    """Explicit VR Little Endian Part-10 ``data`` with ``tag`` replaced by (or given) a sequence nested ``depth``
    levels deep, undefined lengths throughout, as a hostile sender writes it (pydicom itself recurses per level)."""
    group, element = tag >> 16, tag & 0xFFFF
    head = struct.pack("<HH", group, element) + b"SQ\x00\x00\xff\xff\xff\xff"
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    sequence = (head + item) * depth + b"\x08\x00\x00\x01SH\x02\x001 " + closing * depth
    pos = 132
    while True:  # file meta, then top-level elements: splice at the first tag at or after ``tag``
        current = struct.unpack_from("<HH", data, pos)
        long_vr = data[pos + 4 : pos + 6] in (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                                              b"UR", b"UT", b"UV")
        length = struct.unpack_from("<I", data, pos + 8)[0] if long_vr else struct.unpack_from("<H", data, pos + 6)[0]
        end = pos + (12 if long_vr else 8) + length
        if current[0] != 0x0002 and (current[0] << 16 | current[1]) >= tag:
            if length == 0xFFFFFFFF:
                raise ValueError("splicing before an undefined-length element is not supported")
            return data[:pos] + sequence + (data[end:] if (current[0] << 16 | current[1]) == tag else data[pos:])
        pos = end


def bz2_tar_bomb(size: int = 1 << 30, name: str = "bomb/zeros.dcm") -> bytes:
    """A .tar.bz2 of one member of ``size`` zero bytes: about 1 KiB for 1 GiB (bzip2 run-length codes zeros)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2", compresslevel=9) as tf:
        info = tarfile.TarInfo(name)
        info.size = size
        tf.addfile(info, _Zeros(size))
    return buffer.getvalue()


class _Zeros(io.RawIOBase):
    """``size`` zero bytes as a stream, without holding them."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        buffer[:n] = bytes(n)
        self._left -= n
        return n


# ---------------------------------------------------------------------------------------- archives


def zip_archive(members: Seq[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buffer.getvalue()


def zip_with_symlink(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, target)
    return buffer.getvalue()


def zip_encrypted_member(name: str, data: bytes) -> bytes:
    """A zip whose member is flagged encrypted (general purpose bit 0) in both headers."""
    raw = bytearray(zip_archive([(name, data)], compression=zipfile.ZIP_STORED))
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = raw.find(signature)
        raw[pos + flag_offset] |= 0x01
    return bytes(raw)


def zip_bomb(size: int = 64 << 20, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """``size`` zero bytes deflated to a few tens of kilobytes (about 1 KiB for 1 GiB with ``ZIP_BZIP2``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression, compresslevel=9) as zf:
        with zf.open("bomb/zeros.dcm", "w") as member:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                member.write(chunk)
    return buffer.getvalue()


def tar_archive(members: Seq[tuple[str, bytes]], *, gz: bool = True, links: Seq[tuple[str, str, bytes]] = ()) -> bytes:
    """A tar(.gz); ``links`` are (name, target, type) with type ``tarfile.SYMTYPE``/``LNKTYPE``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tf.addfile(info)
    return buffer.getvalue()


__all__ = [
    "NON_DICOM",
    "DeflatedExplicitVRLittleEndian",
    "ExplicitVRBigEndian",
    "Patient",
    "Plant",
    "Planted",
    "RLELossless",
    "TYPICAL_CT_PHI",
    "burned_in",
    "bz2_tar_bomb",
    "ct_instance",
    "ct_series",
    "dicomdir_bytes",
    "nested_sequence",
    "phantom",
    "tar_archive",
    "to_bytes",
    "truncated",
    "with_invalid_values",
    "with_transfer_syntax",
    "without_meta",
    "without_pixel_data",
    "zip_archive",
    "zip_bomb",
    "zip_encrypted_member",
    "zip_with_symlink",
]
