"""The generated chest CT the nodule model is trained on: it lives in :mod:`radlake.synthetic.chest_ct`
(domain data shared by the demo, the workers and the tests); re-exported here for existing imports."""

from radlake.synthetic.chest_ct import (  # noqa: F401
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    ChestCT,
    Nodule,
    chest_ct,
    malignancy_probability,
    nodule_mask,
)

__all__ = ["DEFAULT_SHAPE", "DEFAULT_SPACING", "ChestCT", "Nodule", "chest_ct", "malignancy_probability", "nodule_mask"]
