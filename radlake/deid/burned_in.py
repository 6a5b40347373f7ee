"""Burned-in annotation guard: header de-identification cannot clean text drawn into the pixels.

An instance that says it has burned-in annotation (BurnedInAnnotation YES) is quarantined; so is one
that does not say, when its SOP class or modality is one where text in the pixels is common
(secondary capture, ultrasound, visible-light photography and video, scanned documents).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from radlake.deid.errors import QuarantineReason

HIGH_RISK_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
        "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
    }
)
HIGH_RISK_MODALITIES = frozenset({"US", "OT", "SC", "XC", "DOC", "ES", "GM", "SM"})


def check_burned_in(ds: Dataset) -> tuple[bool, QuarantineReason | None]:
    """``(ok, reason)``: may this instance's pixels be released after header de-identification?"""
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if flag == "YES":
        return False, QuarantineReason.BURNED_IN_ANNOTATION
    if flag == "NO":
        return True, None
    risky = str(ds.get("SOPClassUID", "")) in HIGH_RISK_SOP_CLASSES or str(ds.get("Modality", "")).upper() in (
        HIGH_RISK_MODALITIES
    )
    return (False, QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN) if risky else (True, None)
