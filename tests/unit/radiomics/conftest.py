from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

IBSI_DIR = Path(__file__).resolve().parents[2] / "data" / "ibsi"


@pytest.fixture(scope="session")
def phantom() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """IBSI 1 digital phantom as (image, mask, spacing) in (z, y, x) order."""
    image = np.asarray(nib.load(IBSI_DIR / "phantom.nii.gz").dataobj).transpose(2, 1, 0)
    mask = np.asarray(nib.load(IBSI_DIR / "mask.nii.gz").dataobj).transpose(2, 1, 0)
    return image, mask, (2.0, 2.0, 2.0)
