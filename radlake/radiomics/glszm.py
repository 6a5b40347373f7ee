"""Grey level size zone matrix features (IBSI 1, section 4.8; family 9SAK, tag prefix ``szm``)."""

from __future__ import annotations

import numpy as np

from radlake.radiomics import aggregation, matrix_statistics
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.settings import RadiomicsSettings
from radlake.radiomics.zones import Zones, find_zones, zone_matrix

NAMES = {
    "short": "szm.sze",
    "long": "szm.lze",
    "low_gl": "szm.lgze",
    "high_gl": "szm.hgze",
    "short_low": "szm.szlge",
    "short_high": "szm.szhge",
    "long_low": "szm.lzlge",
    "long_high": "szm.lzhge",
    "glnu": "szm.glnu",
    "glnu_norm": "szm.glnu.norm",
    "jnu": "szm.zsnu",
    "jnu_norm": "szm.zsnu.norm",
    "perc": "szm.z.perc",
    "gl_var": "szm.gl.var",
    "j_var": "szm.zs.var",
    "entropy": "szm.zs.entr",
}


def matrices(levels: np.ndarray, n_levels: int, in_slice: bool, zones: Zones | None = None) -> np.ndarray:
    zones = zones or find_zones(levels, in_slice)
    n_sizes = max(int(zones.size.max()) if zones.size.size else 1, 1)
    return zone_matrix(zones.level, zones.size, zones.slice, n_levels, n_sizes,
                       levels.shape[0] if in_slice else None)


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    zones = mats["glszm"]
    # the sizes that occur: a zone-size matrix is as wide as the largest zone, and mostly empty
    occurring = np.flatnonzero(zones.reshape(-1, zones.shape[-1]).any(axis=0))
    zones = zones[..., occurring]
    sizes = (occurring + 1).astype(np.float64)
    n_voxels = (zones * sizes).sum(axis=(-2, -1))
    return matrix_statistics.named(matrix_statistics.statistics(zones, n_voxels, sizes), NAMES)


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> aggregation.Rows:
    """The zones come from :meth:`DiscretisedRoi.zones`, labelled once for GLSZM and GLDZM."""
    roi, dims = inputs.discretised, settings.aggregations
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = {"glszm": matrices(roi.levels, roi.n_levels, True, roi.zones(True))}
    if "3D" in dims:
        volume = {"glszm": matrices(roi.levels, roi.n_levels, False, roi.zones(False))}
    return aggregation.slice_wise(features, per_slice, volume)


FAMILY = Family("glszm", prefix="szm", compute=compute, needs_discretisation=True)
