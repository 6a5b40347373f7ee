"""The contract between :func:`radlake.radiomics.features.compute_features` and the IBSI 1 feature families.

Every family module (``morphology``, ``glcm``, ...) exposes ``FAMILY``, an object satisfying
:class:`FeatureFamily`: one ``compute(inputs, settings)`` that reads what it needs from
:class:`FamilyInputs` (the processed ROI, IBSI 1 chapter 2) and returns its feature rows. The
dispatcher knows no family by name; :mod:`radlake.radiomics.registry` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from radlake.radiomics.aggregation import Rows
from radlake.radiomics.backend import Backend
from radlake.radiomics.settings import RadiomicsSettings
from radlake.radiomics.zones import Zones, find_zones


@dataclass(frozen=True)
class DiscretisedRoi:
    """The ROI bounding box after discretisation (IBSI 1, section 2.7), computed once per ROI and
    shared by every family that needs grey levels."""

    levels: np.ndarray  # 1..n_levels inside the intensity mask, 0 elsewhere
    n_levels: int
    morph_mask: np.ndarray  # the masks on the same box (GLDZM distances are to the morphological edge)
    int_mask: np.ndarray
    padded: Any  # ``levels`` zero-padded by ``width`` on every side, as an array of the backend
    width: int  # the texture distance
    _zones: dict[bool, Zones] = field(default_factory=dict, init=False, repr=False, compare=False)

    def zones(self, in_slice: bool) -> Zones:
        """The zones of ``levels`` (in-slice or 3D), labelled once and shared by GLSZM and GLDZM."""
        if in_slice not in self._zones:
            self._zones[in_slice] = find_zones(self.levels, in_slice)
        return self._zones[in_slice]


@dataclass(frozen=True)
class FamilyInputs:
    """Everything a family may read: the ROI after interpolation and re-segmentation (IBSI 1 chapter 2)."""

    image: np.ndarray  # float64 intensities on the ROI box, widened by the selected families' largest margin_mm
    morph_mask: np.ndarray  # the morphological mask on the same box
    int_mask: np.ndarray  # the intensity mask (after re-segmentation) on the same box
    values: np.ndarray  # the intensities of the intensity mask, ``image[int_mask]``
    spacing: tuple[float, float, float]  # (dz, dy, dx) in mm
    backend: Backend  # where the texture matrices are built
    discretised_roi: DiscretisedRoi | None = None  # set before the first family with ``needs_discretisation``

    @property
    def discretised(self) -> DiscretisedRoi:
        """The discretised ROI, for the families with ``needs_discretisation``."""
        if self.discretised_roi is None:
            raise RuntimeError("the ROI is discretised only for the families with needs_discretisation")
        return self.discretised_roi


class FeatureFamily(Protocol):
    """One IBSI 1 feature family (reference manual chapter 3)."""

    @property
    def name(self) -> str:
        """Its name in :attr:`RadiomicsSettings.families` and :attr:`FeatureValue.family`."""

    @property
    def prefix(self) -> str:
        """The prefix of its feature tags (``cm`` for ``cm.joint.max``, ...)."""

    @property
    def needs_discretisation(self) -> bool:
        """Whether it reads :attr:`FamilyInputs.discretised` (then it runs after the families that do not)."""

    @property
    def margin_mm(self) -> float:
        """How far beyond the ROI it reads the image, in mm (:attr:`FamilyInputs.image` covers it)."""

    def compute(self, inputs: FamilyInputs, settings: RadiomicsSettings) -> Rows:
        """``(tag, aggregation, value)`` rows; the aggregation is ``""`` for a family computed over the
        3D ROI only. Rows of an aggregation that ``settings.aggregations`` leaves out are dropped."""


@dataclass(frozen=True)
class Family:
    """The :class:`FeatureFamily` of a module whose ``compute`` function does the work."""

    name: str
    prefix: str
    compute: Callable[[FamilyInputs, RadiomicsSettings], Rows]
    needs_discretisation: bool = False
    margin_mm: float = 0.0
