"""``compute_features``: one ROI in, IBSI 1 feature values out; the unit of work of every caller.

Processing follows IBSI 1 chapter 2: (optional) interpolation, re-segmentation of the intensity
mask, discretisation, then the feature families: those of :mod:`radlake.radiomics.registry`, each a
:class:`~radlake.radiomics.family.FeatureFamily` run on the same :class:`~radlake.radiomics.family.FamilyInputs`.
The whole ROI is processed at once with vectorised array code; ``device`` picks the backend of the
texture-matrix builders (numpy, torch on the CPU, or CUDA).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from radlake import __version__ as radlake_version
from radlake.radiomics.aggregation import AGGREGATION_IDS
from radlake.radiomics.backend import Backend, backend_for
from radlake.radiomics.discretisation import discretise
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason
from radlake.radiomics.family import DiscretisedRoi, FamilyInputs
from radlake.radiomics.geometry import roi_box
from radlake.radiomics.ibsi_tags import FEATURES
from radlake.radiomics.interpolation import interpolate
from radlake.radiomics.neighbourhood import pad
from radlake.radiomics.registry import FEATURE_FAMILIES, MAX_MARGIN_MM
from radlake.radiomics.resegmentation import resegment
from radlake.radiomics.settings import RadiomicsSettings

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


def _discretised(image: np.ndarray, morph_mask: np.ndarray, int_mask: np.ndarray, settings: RadiomicsSettings,
                 backend: Backend) -> DiscretisedRoi:
    """Discretise the ROI once for every family on grey levels. Texture matrices only need the ROI
    bounding box (plus the padding); the morphological mask contains the intensity mask, and its box
    also holds the GLDZM distance map."""
    box = roi_box(morph_mask)
    morph_box, int_box = morph_mask[box], int_mask[box]
    levels, n_levels = discretise(image[box], int_box, settings.discretisation, settings.resegmentation.range[0])
    distance = settings.texture.distance
    return DiscretisedRoi(levels=levels, n_levels=n_levels, morph_mask=morph_box, int_mask=int_box,
                          padded=backend.asarray(pad(levels, distance)), width=distance)


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
        # the margin of every family, selected or not: the resampled values do not depend on the selection
        image, mask, spacing = interpolate(image, mask, spacing, settings.interpolation, margin_mm=MAX_MARGIN_MM)
        if not mask.any():
            raise InvalidInputError(RadiomicsReason.EMPTY_MASK, "the ROI vanished after interpolation")
    # IBSI order, the families on grey levels after the others (discretisation is the last processing step;
    # so the intensity-volume histogram comes before the intensity histogram)
    families = sorted((f for f in FEATURE_FAMILIES if f.name in settings.families),
                      key=lambda family: family.needs_discretisation)
    # crop to the ROI bounding box, widened by as far as a family reads beyond the ROI
    margin_mm = max((family.margin_mm for family in families), default=0.0)
    box = roi_box(mask, tuple(int(np.ceil(margin_mm / s)) for s in spacing))
    image, morph_mask = image[box].astype(np.float64), mask[box]
    int_mask = resegment(image, morph_mask, settings.resegmentation)
    if not int_mask.any():
        raise InvalidInputError(
            RadiomicsReason.EMPTY_AFTER_RESEGMENTATION, "no ROI voxel is left after re-segmentation"
        )
    inputs = FamilyInputs(image=image, morph_mask=morph_mask, int_mask=int_mask, values=image[int_mask],
                          spacing=spacing, backend=backend)
    dims = set(settings.aggregations)
    rows: list[tuple[str, str, str, float]] = []  # family, tag, aggregation, value
    for family in families:
        if family.needs_discretisation and inputs.discretised_roi is None:
            inputs = replace(inputs, discretised_roi=_discretised(image, morph_mask, int_mask, settings, backend))
        rows += [(family.name, tag, agg, value) for tag, agg, value in family.compute(inputs, settings)
                 if not agg or agg.split(":")[0] in dims]

    digest = settings.digest()
    out = []
    for family_name, tag, agg, value in rows:
        ibsi_id = FEATURES[tag][0]
        out.append(FeatureValue(
            name=f"{tag}[{agg}]" if agg else tag,
            tag=tag,
            ibsi_id=ibsi_id,
            family=family_name,
            aggregation=agg,
            aggregation_id=AGGREGATION_IDS[agg],
            value=float(value),
            settings_hash=digest,
            code_version=CODE_VERSION,
        ))
    return out
