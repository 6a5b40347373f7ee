"""AUC, its bootstrap CI and the threshold rates against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference_workers.metrics import bootstrap_auc_ci, rates_at, roc_auc, youden_threshold


def test_auc_of_a_hand_counted_example():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 1 + 2 = 3 of 4
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)


def test_auc_counts_ties_half():
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([0, 0, 1], [0.2, 0.7, 0.7]) == pytest.approx(0.75)


def test_auc_extremes_and_missing_class():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_auc_matches_the_pairwise_definition_on_random_data():
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.4
    s = np.round(rng.normal(size=200) + y, 1)  # rounding makes ties
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert roc_auc(y, s) == pytest.approx(pairwise)


def test_bootstrap_ci_brackets_the_auc_and_collapses_when_separation_is_perfect():
    rng = np.random.default_rng(4)
    y = rng.random(300) < 0.5
    s = rng.normal(size=300) + 1.2 * y
    low, high = bootstrap_auc_ci(y, s, n_boot=500, seed=1)
    assert low < roc_auc(y, s) < high
    assert 0.05 < high - low < 0.2  # ~ +-1.96 * SE of an AUC near 0.8 with 150/150 cases
    assert bootstrap_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_boot=50) == (1.0, 1.0)


def test_rates_at_threshold():
    r = rates_at([1, 1, 1, 0, 0, 0, 0], [0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.05], 0.5)
    assert (r.tp, r.fn, r.fp, r.tn) == (2, 1, 1, 3)
    assert r.sensitivity == pytest.approx(2 / 3)
    assert r.specificity == pytest.approx(3 / 4)
    assert r.ppv == pytest.approx(2 / 3)
    assert r.npv == pytest.approx(3 / 4)
    assert math.isnan(rates_at([0, 0], [0.1, 0.2], 0.5).sensitivity)


def test_youden_threshold_separates_separable_scores():
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9]) == pytest.approx(0.6)

