"""Series geometry from the instances' Image Plane Module (DICOM PS3.3 C.7.6.2): slice normal, slice
order, spacing, gaps, duplicated positions and the volume geometry of a series.

Conventions (PS3.3 C.7.6.2.1.1): Image Orientation (Patient) holds the row direction (the direction of
increasing column index) then the column direction; Pixel Spacing is (spacing between rows, spacing
between columns). The slice normal is row x column direction; a slice's location is its Image Position
(Patient) projected on the normal. Voxel (i, j, k) of the rebuilt volume (i: column, j: row, k: slice in
``ordered`` order) lies at ``origin + i*spacing[0]*row_dir + j*spacing[1]*col_dir + k*spacing[2]*normal``.

The functions read the Image Plane attributes by the names the ``instance received`` event gives them
(``lake_schemas.events.InstanceReceivedData``): an :class:`InstancePlane` (read from a dataset), a
:class:`Slice` (a lake row or an event's claim-check), the streams' instance record or the event data.
Pure functions on plain values: the silver job, the radiomics job, the streams and the volume assembly
call them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lake_schemas.events import InstanceReceivedData, InstanceRef, SeriesSummary
from radlake.imaging.event_records import event_record

Vector = tuple[float, float, float]
P = TypeVar("P")  # anything with the Image Plane attributes of PLANE_FIELDS

# The event fields geometry reads, and with the claim-check the fields of a slice in the lake.
PLANE_FIELDS = ("sop_instance_uid", "instance_number", "image_position_patient", "image_orientation_patient",
                "pixel_spacing", "rows", "columns", "slice_thickness")
SLICE_FIELDS = ("sop_instance_uid", "object_uri", "sha256", *PLANE_FIELDS[1:])


class InstancePlane(event_record("InstancePlane", (InstanceReceivedData, PLANE_FIELDS))):
    """The Image Plane attributes of one instance, typed as the ``instance received`` event types them."""

    @classmethod
    def of_dataset(cls, ds: Any) -> InstancePlane:
        """Read from a pydicom dataset; a missing or malformed attribute is None, which
        :func:`volume_geometry` reports as an issue of the series."""
        return cls(
            sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
            instance_number=_number(ds.get("InstanceNumber"), int),
            image_position_patient=_floats(ds.get("ImagePositionPatient"), 3),
            image_orientation_patient=_floats(ds.get("ImageOrientationPatient"), 6),
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
            rows=_number(ds.get("Rows"), int),
            columns=_number(ds.get("Columns"), int),
            slice_thickness=_number(ds.get("SliceThickness"), float),
        )


class Slice(event_record("Slice", (InstanceReceivedData, SLICE_FIELDS))):
    """One instance of a series in the lake: its claim-check and its Image Plane attributes.

    ``Slice.of(row)`` reads a bronze row, a ``model_dump()`` or the event data; :func:`summary_slices`
    the instances of a ``study completed`` event's series summary.
    """


# A series summary carries the in-plane geometry once for the series, the position per instance.
_SERIES_LEVEL = tuple(n for n in SLICE_FIELDS if n in SeriesSummary.model_fields and n not in InstanceRef.model_fields)


def summary_slices(summary: SeriesSummary) -> list[Slice]:
    """The slices of a ``study completed`` event's series: each instance's claim-check and position with
    the series' orientation, pixel spacing, dimensions and thickness."""
    series = {name: getattr(summary, name) for name in _SERIES_LEVEL}
    return [Slice.of(ref, **series) for ref in summary.instances]


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _number(value: Any, kind: type) -> Any:
    if value in (None, ""):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class OrderedSlice(Generic[P]):
    slice: P
    location: float | None  # mm along the slice normal; None without position or normal


@dataclass(frozen=True)
class VolumeGeometry(Generic[P]):
    ordered: tuple[OrderedSlice[P], ...]
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
        """A regular grid can be rebuilt from the ordered slices without guessing."""
        return not self.issues

    @property
    def spacing_zyx(self) -> Vector | None:
        """(slice, row, column) spacing in mm, the order of a (z, y, x) array; None without all three."""
        if self.spacing is None or self.spacing[2] is None:
            return None
        return (self.spacing[2], self.spacing[1], self.spacing[0])


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
    """The unit normal (row x column direction) of Image Orientation (Patient); ValueError when the two
    directions are parallel."""
    normal = _cross(orientation[:3], orientation[3:])
    length = math.sqrt(_dot(normal, normal))
    if length == 0:
        raise ValueError("row and column directions are parallel")
    return (normal[0] / length, normal[1] / length, normal[2] / length)


def _sorted_along(slices: Sequence[P], normal: Vector | None) -> tuple[list[tuple], list[tuple]]:
    """(location, Instance Number key..., index, slice) of the located slices and (Instance Number key..., index,
    slice) of the rest, each sorted (the index breaks ties, so slices themselves are never compared)."""
    located: list[tuple] = []
    rest: list[tuple] = []
    n0, n1, n2 = normal if normal is not None else (0.0, 0.0, 0.0)
    for index, s in enumerate(slices):
        position = s.image_position_patient
        number = s.instance_number
        if normal is not None and position is not None:
            # _dot(position, normal), spelled out: this runs for every slice of every study version
            location = 0 + position[0] * n0 + position[1] * n1 + position[2] * n2
            located.append((location, number is None, number or 0, s.sop_instance_uid, index, s))
        else:
            rest.append((number is None, number or 0, s.sop_instance_uid, index, s))
    located.sort()
    rest.sort()
    return located, rest


def order_along(slices: Sequence[P], normal: Vector | None) -> tuple[OrderedSlice[P], ...]:
    """Slices with a position by their location along ``normal`` (then Instance Number, SOP Instance
    UID), then the slices without a position (every slice, without a normal) by Instance Number
    (missing last) and SOP Instance UID."""
    located, rest = _sorted_along(slices, normal)
    return (*(OrderedSlice(o[-1], o[0]) for o in located), *(OrderedSlice(o[-1], None) for o in rest))


def sorted_along(slices: Sequence[P], normal: Vector | None) -> list[P]:
    """The slices in :func:`order_along`'s order, without their locations."""
    located, rest = _sorted_along(slices, normal)
    return [o[-1] for o in located] + [o[-1] for o in rest]


def _same(values: Sequence[Sequence[float]], tolerance: float) -> bool:
    first = values[0]
    return all(all(abs(x - y) <= tolerance for x, y in zip(v, first)) for v in values[1:])


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def volume_geometry(slices: Sequence[P], tol: Tolerances = Tolerances()) -> VolumeGeometry[P]:
    """Order the slices along their normal and describe the grid they form, with what breaks it.

    Slices are located only when the series has one orientation and every slice a position; otherwise
    they are ordered by Instance Number and the series has an issue.
    """
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

    ordered = order_along(slices, normal if "missing_position" not in issues else None)

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
    origin = first.image_position_patient
    return VolumeGeometry(
        ordered=ordered,
        origin=tuple(origin) if origin is not None else None,
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
