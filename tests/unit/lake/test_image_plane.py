"""Volume geometry from the Image Plane Module: order, spacing, gaps, duplicated positions."""

from __future__ import annotations

import math

import pytest

from spark_jobs.image_plane import Slice, Tolerances, slice_normal, volume_geometry

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _slices(zs, orientation=AXIAL, spacing=(0.5, 0.6)):
    return [Slice(f"2.25.{i}", f"file:///{i}", f"{i:064x}", i + 1, (10.0, 20.0, z), orientation, spacing, 32, 48)
            for i, z in enumerate(zs)]


def test_regular_series_is_ordered_along_the_normal_whatever_the_arrival_order():
    shuffled = list(reversed(_slices([0.0, 2.0, 4.0, 6.0])))
    g = volume_geometry(shuffled)
    assert [o.slice.sop_instance_uid for o in g.ordered] == ["2.25.0", "2.25.1", "2.25.2", "2.25.3"]
    assert [o.location for o in g.ordered] == [0.0, 2.0, 4.0, 6.0]
    assert g.origin == (10.0, 20.0, 0.0) and g.normal == (0.0, 0.0, 1.0)
    assert g.spacing == (0.6, 0.5, 2.0)  # column spacing, row spacing (PixelSpacing is row, column), step
    assert g.dims == (48, 32, 4) and g.reconstructable and g.issues == ()


def test_sagittal_normal_is_row_cross_column():
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    assert slice_normal(sagittal) == (-1.0, 0.0, 0.0)
    slices = [Slice(f"2.25.{i}", "u", "h", i, (-1.5 * i, 0.0, 0.0), sagittal, (1.0, 1.0), 8, 8) for i in range(3)]
    g = volume_geometry(slices)
    assert [o.location for o in g.ordered] == [0.0, 1.5, 3.0] and g.reconstructable


def test_oblique_positions_project_on_the_normal():
    c, s = math.cos(0.3), math.sin(0.3)
    oblique = (1.0, 0.0, 0.0, 0.0, c, s)
    normal = slice_normal(oblique)
    slices = [Slice(f"2.25.{i}", "u", "h", i, tuple(3.0 * i * n for n in normal), oblique, (1.0, 1.0), 8, 8)
              for i in range(4)]
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
    no_position = [Slice("2.25.2", "u", "h", 2), Slice("2.25.1", "u", "h", 1)]
    g = volume_geometry(no_position)
    assert [o.slice.sop_instance_uid for o in g.ordered] == ["2.25.1", "2.25.2"]  # instance number order
    assert {"missing_orientation", "missing_position", "missing_pixel_spacing"} <= set(g.issues)
    mixed = _slices([0.0, 2.0]) + _slices([4.0], orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    assert "inconsistent_orientation" in volume_geometry(mixed).issues
    mixed_spacing = _slices([0.0]) + _slices([2.0], spacing=(0.7, 0.7))
    assert "inconsistent_pixel_spacing" in volume_geometry(mixed_spacing).issues


def test_single_slice_uses_its_thickness_as_the_through_plane_spacing():
    one = [Slice("2.25.1", "u", "h", 1, (0.0, 0.0, 0.0), AXIAL, (0.5, 0.5), 8, 8, slice_thickness=3.0)]
    g = volume_geometry(one)
    assert g.spacing == (0.5, 0.5, 3.0) and g.dims == (8, 8, 1) and g.reconstructable


def test_empty_series_is_an_error():
    with pytest.raises(ValueError):
        volume_geometry([])
