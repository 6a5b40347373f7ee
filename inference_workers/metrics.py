"""Evaluation metrics in the form the seeds report: AUC with a 95 % bootstrap CI, and the confusion-matrix
rates (sensitivity, specificity, PPV, NPV) at a chosen threshold. Pure numpy, no scikit-learn."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half). NaN if one class is absent."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[order[start:start + count]] = start + (count + 1) / 2.0
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bootstrap_auc_ci(labels: np.ndarray, scores: np.ndarray, n_boot: int = 2000, alpha: float = 0.05,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the AUC, resampling cases with replacement (stratified by class)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        values[b] = roc_auc(y[idx], s[idx])
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


@dataclass(frozen=True)
class Rates:
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    @property
    def sensitivity(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return self._ratio(self.tn, self.tn + self.fp)

    @property
    def ppv(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def npv(self) -> float:
        return self._ratio(self.tn, self.tn + self.fn)

    def as_dict(self) -> dict:
        return {**asdict(self), "sensitivity": self.sensitivity, "specificity": self.specificity,
                "ppv": self.ppv, "npv": self.npv}


def rates_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Rates:
    """Confusion matrix at ``score >= threshold`` = positive."""
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(scores, dtype=float) >= threshold
    return Rates(threshold, int((p & y).sum()), int((p & ~y).sum()), int((~p & ~y).sum()), int((~p & y).sum()))


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity - 1 (ties: the higher threshold)."""
    s = np.asarray(scores, dtype=float)
    best, best_j = 0.5, -1.0
    for t in np.unique(s)[::-1]:
        r = rates_at(labels, s, float(t))
        j = (0 if np.isnan(r.sensitivity) else r.sensitivity) + (0 if np.isnan(r.specificity) else r.specificity) - 1
        if j > best_j + 1e-12:
            best, best_j = float(t), j
    return best
