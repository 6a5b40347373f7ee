"""Grey level distance zone matrix features (IBSI 1, section 4.9; family VMDZ, tag prefix ``dzm``).

The distance of a voxel to the ROI edge is its taxicab distance to the nearest voxel outside the
ROI *morphological* mask (6-connectivity in 3D, 4-connectivity within the slice in 2D), so edge
voxels have distance 1; voxels removed by re-segmentation do not create edges (this is what the
IBSI CT-phantom reference values need). The distance of a zone is the smallest distance of its
voxels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from radlake.radiomics import aggregation, matrix_statistics
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.neighbourhood import pad
from radlake.radiomics.settings import RadiomicsSettings
from radlake.radiomics.zones import Zones, find_zones, zone_matrix

NAMES = {
    "short": "dzm.sde",
    "long": "dzm.lde",
    "low_gl": "dzm.lgze",
    "high_gl": "dzm.hgze",
    "short_low": "dzm.sdlge",
    "short_high": "dzm.sdhge",
    "long_low": "dzm.ldlge",
    "long_high": "dzm.ldhge",
    "glnu": "dzm.glnu",
    "glnu_norm": "dzm.glnu.norm",
    "jnu": "dzm.zdnu",
    "jnu_norm": "dzm.zdnu.norm",
    "perc": "dzm.z.perc",
    "gl_var": "dzm.gl.var",
    "j_var": "dzm.zd.var",
    "entropy": "dzm.zd.entr",
}


def edge_distance(mask: np.ndarray, in_slice: bool) -> np.ndarray:
    metric = np.zeros((3, 3, 3), dtype=bool)
    metric[1, 1, :] = metric[1, :, 1] = True
    if not in_slice:
        metric[:, 1, 1] = True
    padded = pad(mask, 1)
    return ndimage.distance_transform_cdt(padded, metric=metric)[1:-1, 1:-1, 1:-1]


def matrices(levels: np.ndarray, mask: np.ndarray, n_levels: int, in_slice: bool,
             zones: Zones | None = None) -> dict[str, np.ndarray]:
    zones = zones or find_zones(levels, in_slice)
    distance = edge_distance(mask, in_slice)
    n_zones = zones.level.size
    inside = zones.labels > 0
    zone_distance = np.full(n_zones, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(zone_distance, zones.labels[inside] - 1, distance[inside].astype(np.int64))
    n_dist = max(int(zone_distance.max()) if n_zones else 1, 1)
    n_slices = levels.shape[0] if in_slice else None
    counts = zone_matrix(zones.level, zone_distance, zones.slice, n_levels, n_dist, n_slices)
    inside = levels > 0
    n_voxels = inside.sum(axis=(1, 2)).astype(np.float64) if in_slice else np.float64(inside.sum())
    return {"gldzm": counts, "n_voxels": n_voxels}


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return matrix_statistics.named(matrix_statistics.statistics(mats["gldzm"], mats["n_voxels"]), NAMES)


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> aggregation.Rows:
    """The zones come from :meth:`DiscretisedRoi.zones`, labelled once for GLSZM and GLDZM."""
    roi, dims = inputs.discretised, settings.aggregations
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = matrices(roi.levels, roi.morph_mask, roi.n_levels, True, roi.zones(True))
    if "3D" in dims:
        volume = matrices(roi.levels, roi.morph_mask, roi.n_levels, False, roi.zones(False))
    return aggregation.slice_wise(features, per_slice, volume)


FAMILY = Family("gldzm", prefix="dzm", compute=compute, needs_discretisation=True)
