"""Array backend: the texture-matrix code runs on numpy or torch (CPU or CUDA) unchanged.

Only operations that numpy and torch spell the same way are used by the matrix builders
(slicing, comparisons, boolean indexing, arithmetic, ``reshape``); the few that differ
(``bincount``, dtype casts, sorting, transfers) go through :class:`Backend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from radlake.radiomics.errors import InvalidInputError, RadiomicsReason


@dataclass(frozen=True)
class Backend:
    device: str  # "numpy", "cpu" (torch on CPU) or "cuda"

    @property
    def is_torch(self) -> bool:
        return self.device != "numpy"

    def asarray(self, array: np.ndarray) -> Any:
        if not self.is_torch:
            return array
        import torch

        return torch.as_tensor(np.ascontiguousarray(array), device=self.device)

    def to_numpy(self, array: Any) -> np.ndarray:
        if not self.is_torch:
            return np.asarray(array)
        return array.detach().cpu().numpy()

    def int64(self, array: Any) -> Any:
        if not self.is_torch:
            return array.astype(np.int64)
        import torch

        return array.to(torch.int64)

    def int32(self, array: Any) -> Any:
        if not self.is_torch:
            return array.astype(np.int32)
        import torch

        return array.to(torch.int32)

    def float64(self, array: Any) -> Any:
        if not self.is_torch:
            return array.astype(np.float64)
        import torch

        return array.to(torch.float64)

    def bincount(self, index: Any, minlength: int, weights: Any | None = None) -> Any:
        if not self.is_torch:
            return np.bincount(index, weights=weights, minlength=minlength)
        import torch

        return torch.bincount(index, weights=weights, minlength=minlength)

    def abs(self, array: Any) -> Any:
        return abs(array)

    def zeros_like(self, array: Any) -> Any:
        if not self.is_torch:
            return np.zeros_like(array)
        import torch

        return torch.zeros_like(array)

    def argsort(self, array: Any) -> Any:
        if not self.is_torch:
            return np.argsort(array, kind="stable")
        import torch

        return torch.argsort(array, stable=True)

    def nonzero(self, array: Any) -> Any:
        if not self.is_torch:
            return np.flatnonzero(array)
        import torch

        return torch.nonzero(array.reshape(-1), as_tuple=True)[0]

    def concat(self, arrays: list[Any]) -> Any:
        if not self.is_torch:
            return np.concatenate(arrays)
        import torch

        return torch.cat(arrays)


def backend_for(device: str) -> Backend:
    """``cpu`` uses numpy; ``torch-cpu`` uses torch on the CPU; ``cuda`` needs a CUDA device."""
    if device == "cpu":
        return Backend("numpy")
    if device == "torch-cpu":
        return Backend("cpu")
    if device.startswith("cuda"):
        try:
            import torch
        except ImportError as err:
            raise InvalidInputError(RadiomicsReason.DEVICE_UNAVAILABLE, "torch is not installed") from err
        if not torch.cuda.is_available():
            raise InvalidInputError(RadiomicsReason.DEVICE_UNAVAILABLE, "no CUDA device is available")
        return Backend(device)
    raise InvalidInputError(RadiomicsReason.DEVICE_UNAVAILABLE, f"unknown device {device!r}")
