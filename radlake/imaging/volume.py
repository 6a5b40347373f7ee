"""The one voxel volume of the system and the assembly of DICOM slices into it.

A :class:`Volume` is a (z, y, x) array on a :class:`Geometry` in patient coordinates (DICOM LPS, mm):
``direction`` columns are the LPS unit vectors of the x, y and z index axes, ``origin`` the LPS position
of voxel (0, 0, 0), ``spacing`` (dz, dy, dx). Radiomics, the radiomics job and the inference worker all
build theirs here:

* :func:`modality_values`: one slice's stored values through the Modality LUT rescale (PS3.3 C.11.1.1.2):
  ``RescaleSlope * value + RescaleIntercept``, with slope 1 and intercept 0 where the attribute is absent
  or empty;
* :func:`assemble`: slices already in order, on a known grid (the radiomics job's claim-checks);
* :func:`volume_from_datasets`: the slices of one series in any order, ordered and checked with
  :func:`radlake.imaging.series_geometry.volume_geometry` (a gap, a duplicated position, irregular
  spacing or mixed geometry is a :class:`GeometryError` listing the issues).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from lake_schemas.errors import RadlakeError
from radlake.dicom_io import PARSE_ERRORS
from radlake.imaging.series_geometry import InstancePlane, slice_normal, volume_geometry


class VolumeError(RadlakeError):
    """Slices that cannot be made into a volume."""


class PixelDataError(VolumeError):
    """A slice's pixel data or rescale attributes cannot be decoded."""


class GeometryError(VolumeError):
    """The slices do not form one regular grid; ``issues`` names what breaks it."""

    def __init__(self, message: str, issues: tuple[str, ...] = ()):
        super().__init__(message)
        self.issues = issues


@dataclass(frozen=True)
class Geometry:
    shape: tuple[int, int, int]  # (z, y, x)
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    origin: tuple[float, float, float]  # LPS mm of voxel (0, 0, 0)
    direction: tuple[tuple[float, float, float], ...]  # 3x3, columns: x, y, z index axes in LPS

    @classmethod
    def from_axes(cls, shape: Sequence[int], spacing: Sequence[float], origin: Sequence[float],
                  row_dir: Sequence[float], col_dir: Sequence[float], slice_dir: Sequence[float]) -> Geometry:
        """From the LPS directions of increasing column (x), row (y) and slice (z) index."""
        axes = np.stack([np.asarray(v, dtype=np.float64) for v in (row_dir, col_dir, slice_dir)], axis=1)
        return cls(
            shape=tuple(int(n) for n in shape),
            spacing=tuple(float(s) for s in spacing),
            origin=tuple(float(v) for v in origin),
            direction=tuple(tuple(float(v) for v in r) for r in axes),
        )

    def axes_zyx(self) -> np.ndarray:
        """(3, 3): the LPS unit vectors of the z, y and x index axes, one per row."""
        return np.asarray(self.direction, dtype=np.float64).T[::-1]

    def affine(self) -> np.ndarray:
        """4x4 matrix mapping (x, y, z) voxel indices to LPS millimetres."""
        d = np.asarray(self.direction, dtype=np.float64)
        dz, dy, dx = self.spacing
        out = np.eye(4)
        out[:3, :3] = d * np.array([dx, dy, dz])[None, :]
        out[:3, 3] = self.origin
        return out

    def index_to_patient(self, index_zyx: np.ndarray) -> np.ndarray:
        """Voxel indices (..., 3) as (z, y, x) -> patient LPS mm (..., 3)."""
        idx = np.asarray(index_zyx, dtype=float)
        steps = self.axes_zyx() * np.asarray(self.spacing, dtype=np.float64)[:, None]
        return np.asarray(self.origin) + idx @ steps

    def differences(self, other: Geometry, tolerance_mm: float = 1e-3) -> list[str]:
        problems = []
        if self.shape != other.shape:
            problems.append(f"shape {other.shape} != {self.shape}")
        if not np.allclose(self.spacing, other.spacing, atol=tolerance_mm):
            problems.append(f"spacing {other.spacing} != {self.spacing}")
        if not np.allclose(self.origin, other.origin, atol=max(tolerance_mm, 1e-2)):
            problems.append(f"origin {other.origin} != {self.origin}")
        if not np.allclose(self.direction, other.direction, atol=1e-4):
            problems.append("orientation differs")
        return problems


@dataclass(frozen=True)
class Volume:
    array: np.ndarray  # (z, y, x)
    geometry: Geometry
    sop_instance_uids: tuple[str, ...] = ()  # per z slice, for DICOM series

    @classmethod
    def from_axes(cls, array: np.ndarray, spacing: Sequence[float], origin: Sequence[float],
                  row_dir: Sequence[float], col_dir: Sequence[float], slice_dir: Sequence[float],
                  sop_instance_uids: Sequence[str] = ()) -> Volume:
        """An array on the grid of :meth:`Geometry.from_axes`."""
        geometry = Geometry.from_axes(array.shape, spacing, origin, row_dir, col_dir, slice_dir)
        return cls(array, geometry, tuple(sop_instance_uids))


def _rescale(ds: Dataset, keyword: str, absent: float) -> float:
    value = ds.get(keyword)
    return absent if value is None or value == "" else float(value)


def modality_values(ds: Dataset) -> np.ndarray:
    """The slice's stored values as ``RescaleSlope * value + RescaleIntercept`` (float64); an absent or
    empty slope is 1 and intercept 0 (PS3.3 C.11.1.1.2: without them stored values are output units)."""
    try:
        slope = _rescale(ds, "RescaleSlope", 1.0)
        intercept = _rescale(ds, "RescaleIntercept", 0.0)
        return ds.pixel_array.astype(np.float64) * slope + intercept
    except PARSE_ERRORS as err:
        raise PixelDataError(f"{ds.get('SOPInstanceUID', '?')}: {type(err).__name__}: {err}") from err


def assemble(planes: Sequence[np.ndarray], *, spacing: Sequence[float], origin: Sequence[float],
             orientation: Sequence[float], sop_instance_uids: Sequence[str] = (),
             dtype: Any = np.float64) -> Volume:
    """Stack 2D planes, already in slice order, on the grid of a series: ``spacing`` (dz, dy, dx),
    ``origin`` the first plane's position, ``orientation`` its Image Orientation (Patient); the slice
    axis is the unit normal."""
    if not planes or len({p.shape for p in planes}) != 1 or planes[0].ndim != 2:
        raise GeometryError("the slices are not single-frame planes of one size", ("inconsistent_dimensions",))
    array = np.stack(planes).astype(dtype, copy=False)
    return Volume.from_axes(array, spacing, origin, orientation[:3], orientation[3:], slice_normal(orientation),
                            sop_instance_uids)


def volume_from_datasets(datasets: Sequence[Dataset], dtype: Any = np.float64) -> tuple[Volume, tuple[Dataset, ...]]:
    """The volume of one series' slices, given in any order, and the datasets in slice order.

    The slices must form one regular grid (:func:`~radlake.imaging.series_geometry.volume_geometry` finds
    no issue and a through-plane spacing), else :class:`GeometryError`; undecodable pixel data is a
    :class:`PixelDataError`.
    """
    planes = [InstancePlane.of_dataset(ds) for ds in datasets]
    geometry = volume_geometry(planes)
    issues = geometry.issues or (() if geometry.spacing_zyx is not None else ("missing_spacing",))
    if issues:
        raise GeometryError("the slices do not form one regular grid: " + ", ".join(issues), issues)
    index = {id(plane): k for k, plane in enumerate(planes)}
    ordered = tuple(datasets[index[id(o.slice)]] for o in geometry.ordered)
    volume = assemble([modality_values(ds) for ds in ordered], spacing=geometry.spacing_zyx,
                      origin=geometry.origin, orientation=geometry.orientation,
                      sop_instance_uids=[o.slice.sop_instance_uid for o in geometry.ordered], dtype=dtype)
    return volume, ordered
