"""Image-processing and feature-extraction settings (IBSI 1, chapter 2), one frozen object.

A settings file is YAML with the sections below; every key is optional::

    interpolation:            # IBSI 2.4, "interpolation"; omitted or null: no resampling
      spacing: [2.0, 2.0, 2.0]   # mm, (z, y, x); a null element keeps that axis' spacing
      method: linear          # nearest | linear | cubic
      mask_threshold: 0.5     # partial-volume threshold of the interpolated ROI mask
      round_intensities: false  # round to integers after interpolation (CT: true)
      in_plane_only: false    # 2D interpolation: keep the slice spacing
    resegmentation:           # IBSI 2.5
      range: [-1000, 400]     # either bound may be null
      outlier_sigma: null     # e.g. 3 for mu +- 3 sigma
    discretisation:           # IBSI 2.7, for texture and intensity-histogram features
      method: fbn             # fbn (fixed bin number) | fbs (fixed bin size) | none
      bin_number: 32
      bin_size: 25.0
    ivh_discretisation:       # IBSI 4.5; none = use the intensities as they are
      method: none
    texture:
      distance: 1             # Chebyshev distance for GLCM, NGTDM, NGLDM
      ngldm_alpha: 0          # NGLDM coarseness parameter
    families: [morphology, local_intensity, ...]   # default: all
    aggregations: [2D, 2.5D, 3D]                   # default: all
    moran_geary_max_voxels: null    # skip Moran's I / Geary's C above this ROI size (0: never compute)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from radlake.radiomics.errors import SettingsError

Family = Literal[
    "morphology",
    "local_intensity",
    "intensity_statistics",
    "intensity_histogram",
    "intensity_volume_histogram",
    "glcm",
    "glrlm",
    "glszm",
    "gldzm",
    "ngtdm",
    "ngldm",
]
FAMILIES: tuple[str, ...] = get_args(Family)  # IBSI 1 order; one list, the type is the source
Dimension = Literal["2D", "2.5D", "3D"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Interpolation(_Frozen):
    spacing: tuple[float | None, float | None, float | None]
    method: Literal["nearest", "linear", "cubic"] = "linear"
    mask_threshold: float = 0.5
    round_intensities: bool = False
    in_plane_only: bool = False


class Resegmentation(_Frozen):
    range: tuple[float | None, float | None] = (None, None)
    outlier_sigma: float | None = None


class Discretisation(_Frozen):
    method: Literal["fbn", "fbs", "none"] = "fbn"
    bin_number: int = 32
    bin_size: float = 25.0

    @model_validator(mode="after")
    def _positive(self) -> Discretisation:
        if self.bin_number < 1 or self.bin_size <= 0:
            raise ValueError("bin_number must be >= 1 and bin_size > 0")
        return self


class Texture(_Frozen):
    distance: int = 1
    ngldm_alpha: int = 0


class RadiomicsSettings(_Frozen):
    """Everything that changes a feature value; its :meth:`digest` goes into every result row."""

    interpolation: Interpolation | None = None
    resegmentation: Resegmentation = Resegmentation()
    discretisation: Discretisation = Discretisation()
    ivh_discretisation: Discretisation = Discretisation(method="none")
    texture: Texture = Texture()
    families: tuple[Family, ...] = FAMILIES
    aggregations: tuple[Dimension, ...] = ("2D", "2.5D", "3D")
    moran_geary_max_voxels: int | None = None

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form: equal settings give equal hashes."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def settings_from_mapping(data: dict | None) -> RadiomicsSettings:
    try:
        return RadiomicsSettings.model_validate(data or {})
    except ValidationError as err:
        raise SettingsError(str(err)) from err


def load_settings(path: Path | str | None) -> RadiomicsSettings:
    """Read a YAML settings file; ``None`` gives the defaults."""
    if path is None:
        return RadiomicsSettings()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SettingsError(f"cannot read settings file {path}: {err}") from err
    if data is not None and not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a mapping")
    return settings_from_mapping(data)


IBSI_DIGITAL_PHANTOM = RadiomicsSettings(
    discretisation=Discretisation(method="none"),
    ivh_discretisation=Discretisation(method="none"),
)
"""Settings of the IBSI 1 digital phantom: no interpolation, re-segmentation or discretisation."""
