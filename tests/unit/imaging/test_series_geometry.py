"""Series geometry from the Image Plane Module: normal, order, spacing, gaps, duplicated positions, and the
records it reads (derived from the ``instance received`` event)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from pydicom.dataset import Dataset

from lake_schemas.events import InstanceReceivedData, InstanceRef, SeriesSummary
from radlake.imaging.series_geometry import (
    PLANE_FIELDS,
    SLICE_FIELDS,
    InstancePlane,
    Slice,
    Tolerances,
    order_along,
    slice_normal,
    summary_slices,
    volume_geometry,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _slice(uid, uri="u", sha="h", number=None, position=None, orientation=None, spacing=None, rows=None,
           columns=None, thickness=None) -> Slice:
    return Slice(sop_instance_uid=uid, object_uri=uri, sha256=sha, instance_number=number,
                 image_position_patient=position, image_orientation_patient=orientation, pixel_spacing=spacing,
                 rows=rows, columns=columns, slice_thickness=thickness)


def _slices(zs, orientation=AXIAL, spacing=(0.5, 0.6)):
    return [_slice(f"2.25.{i}", f"file:///{i}", f"{i:064x}", i + 1, (10.0, 20.0, z), orientation, spacing, 32, 48)
            for i, z in enumerate(zs)]


def test_regular_series_is_ordered_along_the_normal_whatever_the_arrival_order():
    shuffled = list(reversed(_slices([0.0, 2.0, 4.0, 6.0])))
    g = volume_geometry(shuffled)
    assert [o.slice.sop_instance_uid for o in g.ordered] == ["2.25.0", "2.25.1", "2.25.2", "2.25.3"]
    assert [o.location for o in g.ordered] == [0.0, 2.0, 4.0, 6.0]
    assert g.origin == (10.0, 20.0, 0.0) and g.normal == (0.0, 0.0, 1.0)
    assert g.spacing == (0.6, 0.5, 2.0)  # column spacing, row spacing (PixelSpacing is row, column), step
    assert g.spacing_zyx == (2.0, 0.5, 0.6)
    assert g.dims == (48, 32, 4) and g.reconstructable and g.issues == ()


def test_sagittal_normal_is_row_cross_column():
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    assert slice_normal(sagittal) == (-1.0, 0.0, 0.0)
    slices = [_slice(f"2.25.{i}", number=i, position=(-1.5 * i, 0.0, 0.0), orientation=sagittal, spacing=(1.0, 1.0),
                     rows=8, columns=8) for i in range(3)]
    g = volume_geometry(slices)
    assert [o.location for o in g.ordered] == [0.0, 1.5, 3.0] and g.reconstructable


def test_the_normal_is_a_unit_vector_and_parallel_directions_have_none():
    assert slice_normal((2.0, 0.0, 0.0, 0.0, 2.0, 0.0)) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        slice_normal((1.0, 0.0, 0.0, 1.0, 0.0, 0.0))
    assert "degenerate_orientation" in volume_geometry(_slices([0.0, 2.0], orientation=(1.0, 0, 0, 1.0, 0, 0))).issues


def test_oblique_positions_project_on_the_normal():
    c, s = math.cos(0.3), math.sin(0.3)
    oblique = (1.0, 0.0, 0.0, 0.0, c, s)
    normal = slice_normal(oblique)
    slices = [_slice(f"2.25.{i}", number=i, position=tuple(3.0 * i * n for n in normal), orientation=oblique,
                     spacing=(1.0, 1.0), rows=8, columns=8) for i in range(4)]
    g = volume_geometry(slices)
    assert g.spacing[2] == pytest.approx(3.0) and g.spacing_consistent and g.reconstructable


def test_gap_counts_the_missing_slices():
    g = volume_geometry(_slices([0.0, 2.0, 4.0, 10.0, 12.0]))
    assert (g.gap_count, g.missing_slices) == (1, 2)
    assert g.slice_spacing_min == 2.0 and g.slice_spacing_max == 6.0
    assert g.issues == ("gaps",) and g.spacing_consistent and not g.reconstructable


def test_duplicated_position_is_reported():
    g = volume_geometry(_slices([0.0, 2.0, 2.0, 4.0]))
    assert g.duplicate_positions == 1 and g.issues == ("duplicate_positions",) and g.spacing[2] == 2.0


def test_irregular_spacing_below_the_gap_factor_is_inconsistent():
    g = volume_geometry(_slices([0.0, 2.0, 4.0, 6.5, 8.5]))
    assert not g.spacing_consistent and g.issues == ("inconsistent_spacing",)


def test_spacing_within_tolerance_is_consistent():
    g = volume_geometry(_slices([0.0, 2.0, 4.01, 6.0]), Tolerances(spacing_relative=0.01))
    assert g.spacing_consistent


def test_missing_or_mixed_geometry_is_an_issue_not_an_error():
    no_position = [_slice("2.25.2", number=2), _slice("2.25.1", number=1)]
    g = volume_geometry(no_position)
    assert [o.slice.sop_instance_uid for o in g.ordered] == ["2.25.1", "2.25.2"]  # instance number order
    assert {"missing_orientation", "missing_position", "missing_pixel_spacing"} <= set(g.issues)
    assert g.spacing_zyx is None
    mixed = _slices([0.0, 2.0]) + _slices([4.0], orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    assert "inconsistent_orientation" in volume_geometry(mixed).issues
    mixed_spacing = _slices([0.0]) + _slices([2.0], spacing=(0.7, 0.7))
    assert "inconsistent_pixel_spacing" in volume_geometry(mixed_spacing).issues


def test_one_slice_without_a_position_orders_the_series_by_instance_number():
    slices = _slices([4.0, 2.0, 0.0])
    slices[0] = dataclasses.replace(slices[0], image_position_patient=None)
    g = volume_geometry(slices)
    assert [o.slice.instance_number for o in g.ordered] == [1, 2, 3] and {o.location for o in g.ordered} == {None}
    assert "missing_position" in g.issues


def test_single_slice_uses_its_thickness_as_the_through_plane_spacing():
    one = [_slice("2.25.1", number=1, position=(0.0, 0.0, 0.0), orientation=AXIAL, spacing=(0.5, 0.5), rows=8,
                  columns=8, thickness=3.0)]
    g = volume_geometry(one)
    assert g.spacing == (0.5, 0.5, 3.0) and g.dims == (8, 8, 1) and g.reconstructable


def test_empty_series_is_an_error():
    with pytest.raises(ValueError):
        volume_geometry([])


def test_order_along_puts_located_slices_first_then_the_rest_by_instance_number():
    located = _slices([4.0, 0.0, 2.0])
    bare = [_slice("2.25.8", number=None), _slice("2.25.9", number=0), _slice("2.25.7", number=5)]
    ordered = order_along(bare + located, (0.0, 0.0, 1.0))
    assert [o.location for o in ordered] == [0.0, 2.0, 4.0, None, None, None]
    assert [o.slice.sop_instance_uid for o in ordered[3:]] == ["2.25.9", "2.25.7", "2.25.8"]  # missing number last
    assert [o.slice.instance_number for o in order_along(located, None)] == [1, 2, 3]


def test_records_are_typed_as_the_instance_received_event():
    for record, names in ((Slice, SLICE_FIELDS), (InstancePlane, PLANE_FIELDS)):
        fields = {f.name: f for f in dataclasses.fields(record)}
        assert tuple(fields) == names
        for name, f in fields.items():
            model = InstanceReceivedData.model_fields[name]
            assert f.type == model.annotation
            assert (f.default is dataclasses.MISSING) == model.is_required()


def test_slices_from_rows_events_and_series_summaries():
    row = {"sop_instance_uid": "2.25.1", "object_uri": "file:///1", "sha256": "a" * 64, "instance_number": 1,
           "image_position_patient": [1, 2, 3], "image_orientation_patient": list(AXIAL), "pixel_spacing": [0.5, 0.5],
           "rows": 8, "columns": 8, "slice_thickness": 2.0, "modality": "CT"}  # extra columns are ignored
    s = Slice.of(row)
    assert s.image_position_patient == (1.0, 2.0, 3.0) and isinstance(s.image_position_patient, tuple)
    assert Slice.of({k: v for k, v in row.items() if k != "rows"}).rows is None
    ref = InstanceRef(sop_instance_uid="2.25.1", object_uri="file:///1", sha256="a" * 64, instance_number=1,
                      image_position_patient=(1.0, 2.0, 3.0))
    summary = SeriesSummary(series_uid="2.25.9", modality="CT", instance_count=1, rows=8, columns=8,
                            pixel_spacing=(0.5, 0.5), slice_thickness=2.0, image_orientation_patient=AXIAL,
                            instances=(ref,))
    assert summary_slices(summary) == [s]


def test_instance_plane_from_a_dataset_reads_missing_or_malformed_attributes_as_none():
    ds = Dataset()
    ds.SOPInstanceUID, ds.InstanceNumber = "2.25.4", "7"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = ["1", "2", "3.5"], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.Rows, ds.Columns, ds.SliceThickness = [0.7, 0.8], 16, 24, ""
    plane = InstancePlane.of_dataset(ds)
    assert plane == InstancePlane(sop_instance_uid="2.25.4", instance_number=7, image_position_patient=(1.0, 2.0, 3.5),
                                  image_orientation_patient=AXIAL, pixel_spacing=(0.7, 0.8), rows=16, columns=24)
    ds.ImagePositionPatient = ["1", "2"]
    assert InstancePlane.of_dataset(ds).image_position_patient is None
    del ds.ImageOrientationPatient
    assert InstancePlane.of_dataset(ds).image_orientation_patient is None
