"""Fixtures of the inference unit tests: generated studies and a tiny model trained in seconds."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from inference_workers.pipeline import ModelSpec
from inference_workers.training import TrainConfig, train
from radlake.synthetic.chest_ct import chest_ct

SMALL_SHAPE = (24, 72, 72)


@pytest.fixture(scope="session")
def phantom():
    """A small study with two nodules (fixed seed)."""
    return chest_ct(11, shape=SMALL_SHAPE, min_nodules=2, max_nodules=2)


@pytest.fixture(scope="session")
def tiny_model():
    """(network, spec): a 4-channel model trained for one epoch on 8 studies (seconds; not accurate)."""

    torch.manual_seed(0)
    cfg = TrainConfig(train_studies=8, validation_studies=4, epochs=1, width=4, shape=SMALL_SHAPE)
    net, spec, metrics = train(cfg)
    return net, spec, metrics


@pytest.fixture(scope="session")
def eager_spec(tiny_model) -> ModelSpec:
    """The tiny model's spec with every window positive, so candidates, SEG and SR always exist."""

    return replace(tiny_model[1], presence_threshold=0.0, max_candidates=3)
