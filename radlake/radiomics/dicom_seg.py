"""DICOM SEG masks (highdicom), mapped onto the source image series by referenced SOP instance.

The SEG must reference the image series it is read against; frames for instances the SEG does not
reference are empty. A SEG whose frames reference another series is a geometry mismatch.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np

from radlake.imaging.volume import Volume
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason


def read_seg(path: Path | str, image: Volume, label: int | None) -> np.ndarray:
    """Return a boolean (z, y, x) mask of segment ``label`` (``None``: all segments)."""

    try:
        seg = hd.seg.segread(str(path))
    except (OSError, ValueError, AttributeError) as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"cannot read DICOM SEG {path}: {err}") from err
    if not image.sop_instance_uids:
        raise InvalidInputError(
            RadiomicsReason.GEOMETRY_MISMATCH, "a DICOM SEG mask needs the DICOM image series it segments"
        )
    numbers = [int(n) for n in seg.segment_numbers]
    wanted = numbers if label is None else [label]
    if label is not None and label not in numbers:
        raise InvalidInputError(RadiomicsReason.LABEL_NOT_FOUND, f"segment {label} not in SEG (segments: {numbers})")
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    if not referenced & set(image.sop_instance_uids):
        raise InvalidInputError(
            RadiomicsReason.GEOMETRY_MISMATCH, "the SEG references none of the image's SOP instances"
        )
    present = [uid for uid in image.sop_instance_uids if uid in referenced]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=present, segment_numbers=wanted, assert_missing_frames_are_empty=True
    )
    if pixels.shape[1:3] != image.array.shape[1:]:
        raise InvalidInputError(
            RadiomicsReason.GEOMETRY_MISMATCH, f"SEG frames {pixels.shape[1:3]} != image rows/columns"
        )
    mask = np.zeros(image.array.shape, dtype=bool)
    index = {uid: k for k, uid in enumerate(image.sop_instance_uids)}
    for frame, uid in zip(pixels, present):
        mask[index[uid]] = frame.any(axis=-1)
    return mask
