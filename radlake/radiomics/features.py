"""``compute_features``: one ROI in, IBSI 1 feature values out; the unit of work of every caller.

Processing follows IBSI 1 chapter 2: (optional) interpolation, re-segmentation of the intensity
mask, discretisation, then the feature families. The whole ROI is processed at once with
vectorised array code; ``device`` picks the backend of the texture-matrix builders (numpy, torch
on the CPU, or CUDA).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from radlake import __version__ as radlake_version
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
from radlake.radiomics.aggregation import AGGREGATION_IDS
from radlake.radiomics.backend import backend_for
from radlake.radiomics.discretisation import discretise
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason
from radlake.radiomics.geometry import roi_box
from radlake.radiomics.ibsi_tags import FEATURES
from radlake.radiomics.interpolation import interpolate
from radlake.radiomics.neighbourhood import pad
from radlake.radiomics.resegmentation import resegment
from radlake.radiomics.settings import RadiomicsSettings
from radlake.radiomics.zones import find_zones

FEATURE_CODE_VERSION = "2"
"""Bumped whenever a change alters any feature value; part of :data:`CODE_VERSION`."""
CODE_VERSION = f"radlake-{radlake_version}+features.{FEATURE_CODE_VERSION}"


class FeatureValue(NamedTuple):
    """One feature of one ROI. ``name`` is the IBSI tag plus ``[aggregation]`` where one applies.
    (A named tuple: immutable, and built in less than half the time of a frozen dataclass, which
    counts at ~200 values per ROI.)"""

    name: str
    tag: str
    ibsi_id: str
    family: str
    aggregation: str
    aggregation_id: str
    value: float
    settings_hash: str
    code_version: str


def _check_inputs(image: np.ndarray, mask: np.ndarray, spacing) -> None:
    if image.ndim != 3:
        raise InvalidInputError(RadiomicsReason.GEOMETRY_MISMATCH, f"image must be 3D, got shape {image.shape}")
    if mask.shape != image.shape:
        raise InvalidInputError(
            RadiomicsReason.GEOMETRY_MISMATCH,
            f"mask shape {mask.shape} differs from image shape {image.shape}",
        )
    if len(spacing) != 3 or any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise InvalidInputError(RadiomicsReason.GEOMETRY_MISMATCH, f"invalid voxel spacing {tuple(spacing)}")
    count = int(np.count_nonzero(mask))
    if count == 0:
        raise InvalidInputError(RadiomicsReason.EMPTY_MASK, "the ROI mask holds no voxel")
    if count == 1:
        raise InvalidInputError(
            RadiomicsReason.SINGLE_VOXEL_ROI, "the ROI holds a single voxel; texture and shape are undefined"
        )


def _crop(image: np.ndarray, masks: list[np.ndarray], margin: tuple[int, int, int]):
    """Crop to the ROI bounding box plus ``margin`` voxels (kept for the local-intensity sphere)."""
    box = roi_box(masks[0], margin)
    return image[box], [m[box] for m in masks]


def compute_features(
    image: np.ndarray,
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    settings: RadiomicsSettings,
    device: str = "cpu",
) -> list[FeatureValue]:
    """Compute the IBSI 1 features of one ROI.

    ``image`` and ``mask`` are (z, y, x) arrays on the same grid; ``spacing`` is (dz, dy, dx) in mm.
    Inputs are not modified. Raises :class:`InvalidInputError` for an empty or single-voxel ROI
    or mismatched arrays.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _compute_features(image, mask, spacing, settings, device)


def _compute_features(image, mask, spacing, settings: RadiomicsSettings, device: str) -> list[FeatureValue]:
    image = np.asarray(image)
    mask = np.asarray(mask).astype(bool)
    spacing = tuple(float(s) for s in spacing)
    _check_inputs(image, mask, spacing)
    backend = backend_for(device)

    if settings.interpolation is not None:
        image, mask, spacing = interpolate(
            image, mask, spacing, settings.interpolation, margin_mm=local_intensity.RADIUS_MM
        )
        if not mask.any():
            raise InvalidInputError(RadiomicsReason.EMPTY_MASK, "the ROI vanished after interpolation")
    # only the local intensity peak looks beyond the ROI box (a 1 cm^3 sphere around each voxel)
    margin = (tuple(int(np.ceil(local_intensity.RADIUS_MM / s)) for s in spacing)
              if "local_intensity" in settings.families else (0, 0, 0))
    image, (morph_mask,) = _crop(image, [mask], margin)
    image = image.astype(np.float64)
    int_mask = resegment(image, morph_mask, settings.resegmentation)
    if not int_mask.any():
        raise InvalidInputError(
            RadiomicsReason.EMPTY_AFTER_RESEGMENTATION, "no ROI voxel is left after re-segmentation"
        )
    values = image[int_mask]
    families = set(settings.families)
    dims = set(settings.aggregations)
    rows: list[tuple[str, str, str, float]] = []  # family, tag, aggregation, value

    if "morphology" in families:
        rows += [("morphology", t, "", v) for t, v in morphology.compute(
            image, morph_mask, int_mask, spacing, settings.moran_geary_max_voxels)]
    if "local_intensity" in families:
        rows += [("local_intensity", t, "", v) for t, v in local_intensity.compute(image, int_mask, spacing)]
    if "intensity_statistics" in families:
        rows += [("intensity_statistics", t, "", v) for t, v in intensity_statistics.compute(values)]

    range_min = settings.resegmentation.range[0]
    if "intensity_volume_histogram" in families:
        ivh_values, grid = intensity_volume_histogram.ivh_values_and_grid(
            values, settings.ivh_discretisation, settings.resegmentation.range
        )
        rows += [("intensity_volume_histogram", t, "", v)
                 for t, v in intensity_volume_histogram.compute(ivh_values, grid)]

    texture = families & {"intensity_histogram", "glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm"}
    if texture:
        # texture matrices only need the ROI bounding box (plus the padding added below)
        # the morphological mask contains the intensity mask; its box also holds the GLDZM distance map
        img_box, (morph_box, int_box) = _crop(image, [morph_mask, int_mask], (0, 0, 0))
        levels, n_levels = discretise(img_box, int_box, settings.discretisation, range_min)
        distance = settings.texture.distance
        padded = backend.asarray(pad(levels, distance))
        if "intensity_histogram" in families:
            rows += [("intensity_histogram", t, "", v)
                     for t, v in intensity_histogram.compute(levels[int_box], n_levels)]
        family_rows = []
        zone_cache: dict[bool, object] = {}

        def zones(in_slice: bool):
            if in_slice not in zone_cache:
                zone_cache[in_slice] = find_zones(levels, in_slice)
            return zone_cache[in_slice]

        if "glcm" in families:
            family_rows += [("glcm", *r) for r in glcm.compute(backend, padded, distance, n_levels, distance, dims)]
        if "glrlm" in families:
            family_rows += [("glrlm", *r) for r in glrlm.compute(backend, levels, n_levels, dims)]
        if "glszm" in families:
            family_rows += [("glszm", *r) for r in glszm.compute(levels, n_levels, dims, zones)]
        if "gldzm" in families:
            family_rows += [("gldzm", *r) for r in gldzm.compute(levels, morph_box, n_levels, dims, zones)]
        if "ngtdm" in families:
            family_rows += [("ngtdm", *r) for r in ngtdm.compute(backend, padded, distance, n_levels, distance, dims)]
        if "ngldm" in families:
            family_rows += [("ngldm", *r) for r in ngldm.compute(
                backend, padded, distance, n_levels, distance, settings.texture.ngldm_alpha, dims)]
        rows += [(f, t, a, v) for f, t, a, v in family_rows if a.split(":")[0] in dims]

    digest = settings.digest()
    out = []
    for family, tag, agg, value in rows:
        ibsi_id = FEATURES[tag][0]
        out.append(FeatureValue(
            name=f"{tag}[{agg}]" if agg else tag,
            tag=tag,
            ibsi_id=ibsi_id,
            family=family,
            aggregation=agg,
            aggregation_id=AGGREGATION_IDS[agg],
            value=float(value),
            settings_hash=digest,
            code_version=CODE_VERSION,
        ))
    return out
