"""Volume geometry of a series from its instances' Image Plane Module (DICOM PS3.3 C.7.6.2).

Pure functions on plain values: the silver job calls them per series, tests call them directly.

Conventions (PS3.3 C.7.6.2.1.1): Image Orientation (Patient) holds the row direction (the direction of
increasing column index) then the column direction; Pixel Spacing is (spacing between rows, spacing
between columns). The slice normal is row x column direction; a slice's location is its Image Position
(Patient) projected on the normal. Voxel (i, j, k) of the rebuilt volume (i: column, j: row, k: slice in
``ordered`` order) lies at ``origin + i*spacing[0]*row_dir + j*spacing[1]*col_dir + k*spacing[2]*normal``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class Slice:
    sop_instance_uid: str
    object_uri: str
    sha256: str
    instance_number: int | None = None
    image_position_patient: Vector | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None = None
    pixel_spacing: tuple[float, float] | None = None
    rows: int | None = None
    columns: int | None = None
    slice_thickness: float | None = None


@dataclass(frozen=True)
class OrderedSlice:
    slice: Slice
    location: float | None  # mm along the slice normal; None without position or orientation


@dataclass(frozen=True)
class VolumeGeometry:
    ordered: tuple[OrderedSlice, ...]
    origin: Vector | None
    orientation: tuple[float, ...] | None
    normal: Vector | None
    spacing: tuple[float, float, float | None] | None  # column spacing, row spacing, slice spacing (mm)
    dims: tuple[int, int, int] | None  # columns, rows, slices
    slice_spacing_min: float | None
    slice_spacing_max: float | None
    spacing_consistent: bool
    gap_count: int
    missing_slices: int
    duplicate_positions: int
    issues: tuple[str, ...]

    @property
    def reconstructable(self) -> bool:
        """A regular grid can be rebuilt from the ordered claim-checks without guessing."""
        return not self.issues


@dataclass(frozen=True)
class Tolerances:
    position_mm: float = 0.01  # two slices closer than this share a position
    spacing_relative: float = 0.01  # a step within 1 % of the median step is regular
    orientation: float = 1e-4
    gap_factor: float = 1.5  # a step this many median steps long is a gap


def _cross(a: Sequence[float], b: Sequence[float]) -> Vector:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def slice_normal(orientation: Sequence[float]) -> Vector:
    normal = _cross(orientation[:3], orientation[3:])
    length = math.sqrt(_dot(normal, normal))
    if length == 0:
        raise ValueError("row and column directions are parallel")
    return (normal[0] / length, normal[1] / length, normal[2] / length)


def _same(values: Sequence[Sequence[float]], tolerance: float) -> bool:
    first = values[0]
    return all(all(abs(x - y) <= tolerance for x, y in zip(v, first)) for v in values[1:])


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _order_key(s: Slice) -> tuple:
    return (s.instance_number is None, s.instance_number or 0, s.sop_instance_uid)


def volume_geometry(slices: Sequence[Slice], tol: Tolerances = Tolerances()) -> VolumeGeometry:
    """Order the slices along their normal and describe the grid they form, with what breaks it."""
    if not slices:
        raise ValueError("a series has at least one slice")
    issues: list[str] = []
    orientations = [s.image_orientation_patient for s in slices]
    positions = [s.image_position_patient for s in slices]
    spacings = [s.pixel_spacing for s in slices]
    shapes = {(s.rows, s.columns) for s in slices}

    normal = orientation = None
    if any(o is None for o in orientations):
        issues.append("missing_orientation")
    elif not _same(orientations, tol.orientation):
        issues.append("inconsistent_orientation")
    else:
        try:
            orientation = tuple(orientations[0])
            normal = slice_normal(orientation)
        except ValueError:
            issues.append("degenerate_orientation")
    if any(p is None for p in positions):
        issues.append("missing_position")
    if any(p is None for p in spacings):
        issues.append("missing_pixel_spacing")
    elif not _same(spacings, tol.position_mm / 10):
        issues.append("inconsistent_pixel_spacing")
    if len(shapes) > 1 or None in next(iter(shapes)):
        issues.append("inconsistent_dimensions" if len(shapes) > 1 else "missing_dimensions")

    if normal is not None and "missing_position" not in issues:
        located = sorted(((_dot(s.image_position_patient, normal), s) for s in slices),
                         key=lambda pair: (pair[0], *_order_key(pair[1])))
        ordered = tuple(OrderedSlice(s, loc) for loc, s in located)
    else:
        ordered = tuple(OrderedSlice(s, None) for s in sorted(slices, key=_order_key))

    steps: list[float] = []
    duplicates = 0
    locations = [o.location for o in ordered if o.location is not None]
    for previous, current in zip(locations, locations[1:]):
        if current - previous <= tol.position_mm:
            duplicates += 1
        else:
            steps.append(current - previous)
    if duplicates:
        issues.append("duplicate_positions")

    gap_count = missing = 0
    consistent = True
    step = None
    if steps:
        step = _median(steps)
        regular = [s for s in steps if s <= tol.gap_factor * step]
        for s in steps:
            if s > tol.gap_factor * step:
                gap_count += 1
                missing += max(1, round(s / step) - 1)
        consistent = all(abs(s - step) <= max(tol.position_mm, tol.spacing_relative * step) for s in regular)
        if gap_count:
            issues.append("gaps")
        if not consistent:
            issues.append("inconsistent_spacing")

    first = ordered[0].slice
    spacing = dims = None
    if first.pixel_spacing is not None and "missing_pixel_spacing" not in issues:
        # One slice has no step: its thickness is the best extent there is (None without one).
        through_plane = step if step is not None else first.slice_thickness
        spacing = (first.pixel_spacing[1], first.pixel_spacing[0], through_plane)
    if first.rows is not None and first.columns is not None:
        dims = (first.columns, first.rows, len(ordered))
    return VolumeGeometry(
        ordered=ordered,
        origin=tuple(first.image_position_patient) if first.image_position_patient is not None else None,
        orientation=orientation,
        normal=normal,
        spacing=spacing,
        dims=dims,
        slice_spacing_min=min(steps) if steps else None,
        slice_spacing_max=max(steps) if steps else None,
        spacing_consistent=consistent,
        gap_count=gap_count,
        missing_slices=missing,
        duplicate_positions=duplicates,
        issues=tuple(issues),
    )
