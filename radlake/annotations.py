"""Annotation objects: DICOM instances that describe images rather than being images (PS3.3 A.51 SEG, A.19
RTSTRUCT, A.35 SR, A.35.4 KOS, A.33 presentation states).

They are recognised by SOP Class UID, never by Modality (a sender may write anything there). Only a SEG
carries pixel data (its frames are the segments' bitmaps); the others are accepted without it. Their
references to images (Referenced SOP Instance UID, Series Instance UID in a referencing sequence, Frame of
Reference UID, ...) are UIDs of the same kinds the images carry, so the de-identification table replaces them
with the same keyed pseudonym function: a reference to an image becomes the image's pseudonymous UID.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue


class AnnotationKind(StrEnum):
    SEG = "seg"
    RTSTRUCT = "rtstruct"
    SR = "sr"
    KOS = "kos"
    PR = "pr"


# PS3.4 Annex B storage SOP classes radlake accepts as annotations.
ANNOTATION_SOP_CLASSES: dict[str, AnnotationKind] = {
    "1.2.840.10008.5.1.4.1.1.66.4": AnnotationKind.SEG,  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.66.7": AnnotationKind.SEG,  # Label Map Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.481.3": AnnotationKind.RTSTRUCT,  # RT Structure Set Storage
    "1.2.840.10008.5.1.4.1.1.88.11": AnnotationKind.SR,  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22": AnnotationKind.SR,  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33": AnnotationKind.SR,  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34": AnnotationKind.SR,  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.35": AnnotationKind.SR,  # Extensible SR
    "1.2.840.10008.5.1.4.1.1.88.59": AnnotationKind.KOS,  # Key Object Selection Document
    "1.2.840.10008.5.1.4.1.1.11.1": AnnotationKind.PR,  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.11.2": AnnotationKind.PR,  # Color Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.11.3": AnnotationKind.PR,  # Pseudo-Color Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.11.4": AnnotationKind.PR,  # Blending Softcopy Presentation State
}

# Kinds whose objects carry their content as pixel data (a SEG without it is refused like an image).
WITH_PIXEL_DATA = frozenset({AnnotationKind.SEG})
# Kinds that can become radiomics ROIs (SEG segments, RTSTRUCT contours rasterised on the referenced grid).
ROI_KINDS = frozenset({AnnotationKind.SEG, AnnotationKind.RTSTRUCT})


def annotation_kind(sop_class_uid: object) -> AnnotationKind | None:
    """The annotation kind of a SOP class, or None for an image (or anything else)."""
    return ANNOTATION_SOP_CLASSES.get(str(sop_class_uid or "").strip().rstrip("\x00"))


def needs_pixel_data(sop_class_uid: object) -> bool:
    """Images and SEGs need pixel data; the other annotation classes have none."""
    kind = annotation_kind(sop_class_uid)
    return kind is None or kind in WITH_PIXEL_DATA


def _nested(ds: Dataset) -> Iterator[Dataset]:
    """Every item of every sequence under ``ds``, at any depth (an explicit stack: no recursion)."""
    stack = [ds]
    while stack:
        current = stack.pop()
        for element in current:
            if element.VR == "SQ":
                for item in element.value or ():
                    yield item
                    stack.append(item)


def referenced_series_uids(ds: Dataset) -> tuple[str, ...]:
    """The Series Instance UIDs an annotation references (any referencing sequence, any depth), sorted;
    its own series is not among them."""
    own = str(ds.get("SeriesInstanceUID", "") or "")
    found = {str(item.SeriesInstanceUID) for item in _nested(ds) if item.get("SeriesInstanceUID")}
    return tuple(sorted(found - {own}))


def referenced_sop_instance_uids(ds: Dataset) -> tuple[str, ...]:
    """The Referenced SOP Instance UIDs under an annotation (any depth), sorted."""
    found: set[str] = set()
    for item in _nested(ds):
        value = item.get("ReferencedSOPInstanceUID")
        if value:
            found.update(str(v) for v in (value if isinstance(value, MultiValue | list | tuple) else [value]))
    return tuple(sorted(found))
