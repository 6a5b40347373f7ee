"""Synthetic CT volumes with lesions of known size, for radiomics tests and benchmarks.

A volume is soft tissue (~40 HU) with noise, a body outline in air (-1000 HU), and one lesion:
either a sphere of given radius or an irregular (lobulated) blob, with its own mean HU and
texture. Everything is deterministic for a given seed. Arrays are (z, y, x) int16 HU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SyntheticCT:
    image: np.ndarray  # (z, y, x) HU, int16
    mask: np.ndarray  # (z, y, x) uint8, 1 = lesion
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    lesion_volume_mm3: float  # voxel-count volume of the lesion
    kind: str


def _grid(shape, spacing, centre):
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return z - centre[0], y - centre[1], x - centre[2]


def _background(shape, spacing, rng) -> np.ndarray:
    z, y, x = _grid(shape, spacing, [n * s / 2 for n, s in zip(shape, spacing)])
    ry, rx = shape[1] * spacing[1] * 0.45, shape[2] * spacing[2] * 0.45
    body = (y / ry) ** 2 + (x / rx) ** 2 <= 1.0
    tissue = 40 + ndimage.gaussian_filter(rng.normal(0, 60, shape), 1.0)
    return np.where(body, tissue, -1000 + rng.normal(0, 5, shape))


def spherical_lesion(shape=(64, 128, 128), spacing=(2.0, 0.8, 0.8), radius_mm=15.0, seed=0) -> SyntheticCT:
    rng = np.random.default_rng(seed)
    image = _background(shape, spacing, rng)
    z, y, x = _grid(shape, spacing, [n * s / 2 for n, s in zip(shape, spacing)])
    mask = z**2 + y**2 + x**2 <= radius_mm**2
    lesion = 90 + ndimage.gaussian_filter(rng.normal(0, 80, shape), 1.5) - 0.8 * np.sqrt(z**2 + y**2 + x**2)
    image = np.where(mask, lesion, image)
    return SyntheticCT(image.round().astype(np.int16), mask.astype(np.uint8), spacing,
                       float(mask.sum() * np.prod(spacing)), "sphere")


def irregular_lesion(shape=(64, 128, 128), spacing=(2.0, 0.8, 0.8), radius_mm=15.0, seed=1) -> SyntheticCT:
    """Lobulated lesion: a sphere whose radius is modulated by smooth random noise (+-35 %)."""
    rng = np.random.default_rng(seed)
    image = _background(shape, spacing, rng)
    z, y, x = _grid(shape, spacing, [n * s / 2 for n, s in zip(shape, spacing)])
    r = np.sqrt(z**2 + y**2 + x**2)
    bumps = ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma=[6 / s for s in spacing])
    bumps = bumps / (np.abs(bumps).max() + 1e-12)
    mask = r <= radius_mm * (1 + 0.35 * bumps)
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    lesion = 20 + ndimage.gaussian_filter(rng.normal(0, 120, shape), 1.0)
    image = np.where(mask, lesion, image)
    return SyntheticCT(image.round().astype(np.int16), mask.astype(np.uint8), spacing,
                       float(mask.sum() * np.prod(spacing)), "irregular")


def write_dicom_series(ct: SyntheticCT, folder: Path | str, seed: int = 0) -> list[Path]:
    """Write ``ct.image`` (z, y, x HU) with ``ct.spacing`` as a CT series (one file per slice, axial, LPS
    origin at 0); return the paths. Any volume with those two attributes will do (e.g. a
    :class:`radlake.synthetic.chest_ct.ChestCT`)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    dz, dy, dx = ct.spacing
    paths = []
    for k, plane in enumerate(ct.image):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName = f"SYNTH{seed}", "Synthetic^Phantom"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
        ds.ReferringPhysicianName, ds.PatientBirthDate, ds.PatientSex = "", "", "O"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.Manufacturer = "radlake-synthetic"
        ds.ImagePositionPatient = [0.0, 0.0, float(k * dz)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = plane.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.PositionReferenceIndicator = ""
        ds.PixelData = plane.astype(np.int16).tobytes()
        path = folder / f"CT_{k:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
