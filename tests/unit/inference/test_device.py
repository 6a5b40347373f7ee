"""Device selection: CUDA when present, else the CPU with a warning."""

from __future__ import annotations

import pytest

from inference_workers.errors import InferenceError
from inference_workers.prediction import select_device


def test_device_falls_back_to_cpu_with_a_warning_without_cuda():
    import torch  # noqa: PLC0415 - the optional gpu extra


    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.warns(RuntimeWarning, match="CPU"):
        assert select_device("auto").type == "cpu"
    with pytest.raises(InferenceError):
        select_device("cuda:0")
