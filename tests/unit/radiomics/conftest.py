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


def tolerance(row: dict[str, str]) -> float:
    """The manual's tolerance, or (where it prints none) half a unit in the last printed digit."""
    if row["tolerance"]:
        return float(row["tolerance"])
    mantissa, _, exponent = row["value"].partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10 ** (int(exponent or 0) - decimals)
