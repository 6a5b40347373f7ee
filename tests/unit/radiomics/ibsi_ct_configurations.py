"""Image-processing configurations A-E of the IBSI 1 lung-cancer CT phantom (manual, chapter 5)."""

from __future__ import annotations

from radlake.radiomics.settings import RadiomicsSettings, settings_from_mapping

_TEXTURE_2D = ["2D", "2.5D"]

CONFIGURATIONS: dict[str, RadiomicsSettings] = {
    "A": settings_from_mapping({
        "resegmentation": {"range": [-500, 400]},
        "discretisation": {"method": "fbs", "bin_size": 25},
        "ivh_discretisation": {"method": "none"},
        "aggregations": _TEXTURE_2D,
    }),
    "B": settings_from_mapping({
        "interpolation": {"spacing": [None, 2.0, 2.0], "method": "linear", "round_intensities": True,
                          "in_plane_only": True},
        "resegmentation": {"range": [-500, 400]},
        "discretisation": {"method": "fbn", "bin_number": 32},
        "ivh_discretisation": {"method": "none"},
        "aggregations": _TEXTURE_2D,
    }),
    "C": settings_from_mapping({
        "interpolation": {"spacing": [2.0, 2.0, 2.0], "method": "linear", "round_intensities": True},
        "resegmentation": {"range": [-1000, 400]},
        "discretisation": {"method": "fbs", "bin_size": 25},
        "ivh_discretisation": {"method": "fbs", "bin_size": 2.5},
        "aggregations": ["3D"],
    }),
    "D": settings_from_mapping({
        "interpolation": {"spacing": [2.0, 2.0, 2.0], "method": "linear", "round_intensities": True},
        "resegmentation": {"outlier_sigma": 3.0},
        "discretisation": {"method": "fbn", "bin_number": 32},
        "ivh_discretisation": {"method": "none"},
        "aggregations": ["3D"],
    }),
    "E": settings_from_mapping({
        "interpolation": {"spacing": [2.0, 2.0, 2.0], "method": "cubic", "round_intensities": True},
        "resegmentation": {"range": [-1000, 400], "outlier_sigma": 3.0},
        "discretisation": {"method": "fbn", "bin_number": 32},
        "ivh_discretisation": {"method": "fbn", "bin_number": 1000},
        "aggregations": ["3D"],
    }),
}
