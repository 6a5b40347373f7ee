"""The IBSI 1 feature families that :func:`radlake.radiomics.features.compute_features` runs.

Adding a family: a module whose ``FAMILY`` satisfies :class:`radlake.radiomics.family.FeatureFamily`,
listed here, and its name in :data:`radlake.radiomics.settings.Family` (the settings' vocabulary).
"""

from __future__ import annotations

from radlake.radiomics import (
    glcm,
    gldzm,
    glrlm,
    glszm,
    intensity_histogram,
    intensity_statistics,
    intensity_volume_histogram,
    local_intensity,
    morphology,
    ngldm,
    ngtdm,
)
from radlake.radiomics.family import FeatureFamily
from radlake.radiomics.settings import FAMILIES

FEATURE_FAMILIES: tuple[FeatureFamily, ...] = (
    morphology.FAMILY,
    local_intensity.FAMILY,
    intensity_statistics.FAMILY,
    intensity_histogram.FAMILY,
    intensity_volume_histogram.FAMILY,
    glcm.FAMILY,
    glrlm.FAMILY,
    glszm.FAMILY,
    gldzm.FAMILY,
    ngtdm.FAMILY,
    ngldm.FAMILY,
)
"""In IBSI 1 order (reference manual chapter 3), the order of :data:`radlake.radiomics.settings.FAMILIES`."""

if tuple(family.name for family in FEATURE_FAMILIES) != FAMILIES:
    raise ImportError(f"the registered feature families {[f.name for f in FEATURE_FAMILIES]} differ from the "
                      f"settings' {list(FAMILIES)} (radlake.radiomics.settings.Family)")

MAX_MARGIN_MM = max(family.margin_mm for family in FEATURE_FAMILIES)
"""The farthest any family reads beyond the ROI, in mm."""
