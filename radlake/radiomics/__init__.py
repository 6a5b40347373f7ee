"""IBSI 1 radiomics: image processing and feature families, vectorised on numpy or torch.

Entry point: :func:`compute_features` (one ROI -> list of :class:`FeatureValue`). Modules are named
after the IBSI 1 reference manual: ``morphology``, ``local_intensity``, ``intensity_statistics``,
``intensity_histogram``, ``intensity_volume_histogram``, ``glcm``, ``glrlm``, ``glszm``, ``gldzm``,
``ngtdm``, ``ngldm``; ``interpolation``, ``resegmentation``, ``discretisation``, ``aggregation``.
Each family module exposes a :class:`~radlake.radiomics.family.FeatureFamily` (``FAMILY``);
:mod:`~radlake.radiomics.registry` lists them.
"""

from radlake.radiomics.errors import InvalidInputError, RadiomicsError, RadiomicsReason, SettingsError
from radlake.radiomics.features import CODE_VERSION, FeatureValue, compute_features
from radlake.radiomics.settings import IBSI_DIGITAL_PHANTOM, RadiomicsSettings, load_settings

__all__ = [
    "CODE_VERSION",
    "FeatureValue",
    "IBSI_DIGITAL_PHANTOM",
    "InvalidInputError",
    "RadiomicsError",
    "RadiomicsReason",
    "RadiomicsSettings",
    "SettingsError",
    "compute_features",
    "load_settings",
]
