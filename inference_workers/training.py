"""Training and evaluation of the nodule model on generated, labelled chest CT.

Studies come from :mod:`radlake.synthetic.chest_ct` with disjoint seed ranges for training,
validation (threshold choice) and test (``radlake model evaluate``), so the test set is independent.
Training patches are cut from the same pre-processed grid the worker sees (:func:`pre_process`):
positives centred within ``POSITIVE_OFFSET`` voxels of a nodule, hard negatives just beyond that,
and random lung windows. Evaluation runs the whole ``pre_process / predict / post_process`` pipeline
per study and scores the study-level malignancy score against the study label.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from inference_workers import metrics
from inference_workers.model_registry import (
    ModelRegistry,
    RegisteredModel,
    json_safe,
    network_to_bytes,
)
from inference_workers.network import NoduleNet3D
from inference_workers.pipeline import (
    ModelSpec,
    _patches,
    post_process,
    pre_process,
    predict,
)
from radlake.imaging.volume import Volume
from radlake.synthetic.chest_ct import ChestCT, chest_ct

log = logging.getLogger(__name__)

TRAIN_SEEDS = 1_000_000
VALIDATION_SEEDS = 2_000_000
TEST_SEEDS = 3_000_000
POSITIVE_OFFSET = 3  # voxels (Chebyshev) from the nodule centre: label "present"
NEGATIVE_OFFSET = 7  # beyond this, "absent"


@dataclass(frozen=True)
class TrainConfig:
    train_studies: int = 240
    validation_studies: int = 60
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 3e-3
    jitters_per_nodule: int = 4
    negatives_per_study: int = 6
    width: int = 8
    seed: int = 0
    shape: tuple[int, int, int] = (40, 112, 112)
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8)


def phantom_volume(ct: ChestCT) -> Volume:
    """The generated array as a series volume (axial, LPS-aligned, origin at 0)."""
    return Volume.from_axes(ct.image.astype(np.float32), ct.spacing, (0.0, 0.0, 0.0),
                    (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _study(seed: int, cfg: TrainConfig) -> ChestCT:
    return chest_ct(seed, shape=cfg.shape, spacing=cfg.spacing)


def training_patches(ct: ChestCT, spec: ModelSpec, cfg: TrainConfig, rng: np.random.Generator):
    """(patches (n, 1, P, P, P), presence (n,), malignancy (n,), malignancy_known (n,)) for one study."""
    prepared = pre_process(phantom_volume(ct), spec)
    geometry = prepared.geometry
    centres, presence, malignancy, known = [], [], [], []
    nodule_iso = [geometry.source_to_iso(np.asarray(n.centre_vox)) for n in ct.nodules]
    limit = np.asarray(geometry.iso_shape) - 1
    for nodule, iso in zip(ct.nodules, nodule_iso):
        for _ in range(cfg.jitters_per_nodule):
            centres.append(np.clip(np.round(iso + rng.integers(-POSITIVE_OFFSET, POSITIVE_OFFSET + 1, 3)), 0, limit))
            presence.append(1.0), malignancy.append(float(nodule.malignant)), known.append(1.0)
        direction = rng.normal(size=3)
        offset = direction / np.abs(direction).max() * rng.uniform(NEGATIVE_OFFSET + 1, NEGATIVE_OFFSET + 4)
        centres.append(np.clip(np.round(iso + offset), 0, limit))
        presence.append(0.0), malignancy.append(0.0), known.append(0.0)
    far = [c for c in prepared.centres
           if all(np.abs(c - iso).max() > NEGATIVE_OFFSET for iso in nodule_iso)]
    for index in rng.permutation(len(far))[:cfg.negatives_per_study]:
        centres.append(far[index])
        presence.append(0.0), malignancy.append(0.0), known.append(0.0)
    patches = _patches(prepared.image, np.asarray(centres, dtype=np.int64).reshape(-1, 3), spec.patch)
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    return patches, as_tensor(presence), as_tensor(malignancy), as_tensor(known)


def _augment(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    dims = [d for d in (2, 3, 4) if rng.random() < 0.5]
    out = torch.flip(batch, dims) if dims else batch
    return out.transpose(3, 4) if rng.random() < 0.5 else out


def study_scores(net: NoduleNet3D, studies: list[ChestCT], spec: ModelSpec, batch_studies: int = 4) -> np.ndarray:
    """The pipeline's study-level malignancy score per study (no Grad-CAM)."""
    scores = []
    for start in range(0, len(studies), batch_studies):
        chunk = studies[start:start + batch_studies]
        prepared = [pre_process(phantom_volume(ct), spec, key=str(k)) for k, ct in enumerate(chunk)]
        raw = predict(net, prepared, spec, explain=False)
        scores += [post_process(p, r, spec).malignancy_score for p, r in zip(prepared, raw)]
    return np.asarray(scores)


def train(cfg: TrainConfig, spec: ModelSpec | None = None, progress=None) -> tuple[NoduleNet3D, ModelSpec, dict]:
    """Train on generated studies; choose the study-score threshold on the validation studies."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    spec = spec or ModelSpec(width=cfg.width)
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    parts = [training_patches(_study(TRAIN_SEEDS + i, cfg), spec, cfg, rng) for i in range(cfg.train_studies)]
    patches = torch.cat([p[0] for p in parts])
    presence, malignancy, known = (torch.cat([p[k] for p in parts]) for k in (1, 2, 3))
    say(f"{len(patches)} training patches ({int(presence.sum())} with a nodule, "
        f"{int((malignancy * known).sum())} malignant) from {cfg.train_studies} studies "
        f"in {time.monotonic() - started:.0f}s")

    net = NoduleNet3D(spec.width)
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=1e-4)
    steps = cfg.epochs * int(np.ceil(len(patches) / cfg.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=cfg.learning_rate, total_steps=max(steps, 1))
    history = []
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.as_tensor(rng.permutation(len(patches)))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            logits = net(_augment(patches[idx], rng))
            loss_presence = F.binary_cross_entropy_with_logits(logits[:, 0], presence[idx])
            mal = F.binary_cross_entropy_with_logits(logits[:, 1], malignancy[idx], reduction="none")
            loss = loss_presence + (mal * known[idx]).sum() / known[idx].sum().clamp_min(1.0)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        history.append(round(total / len(patches), 4))
        say(f"epoch {epoch + 1}/{cfg.epochs} loss {history[-1]:.4f} ({time.monotonic() - started:.0f}s)")

    net.eval()
    validation = [_study(VALIDATION_SEEDS + i, cfg) for i in range(cfg.validation_studies)]
    labels = np.array([ct.malignant for ct in validation])
    scores = study_scores(net, validation, spec)
    threshold = metrics.youden_threshold(labels, scores) if labels.any() and (~labels).any() else 0.5
    spec = ModelSpec(**{**asdict(spec), "malignancy_threshold": float(threshold)})
    validation_metrics = {
        "validation_auc": metrics.roc_auc(labels, scores),
        "validation_studies": len(validation),
        "validation_malignant": int(labels.sum()),
        **{f"validation_{k}": v for k, v in metrics.rates_at(labels, scores, threshold).as_dict().items()},
        "train_loss": history,
        "train_seconds": round(time.monotonic() - started, 1),
    }
    say(f"validation AUC {validation_metrics['validation_auc']:.3f}, threshold {threshold:.3f}")
    return net, spec, validation_metrics


def evaluate(net: NoduleNet3D, spec: ModelSpec, studies: int, seed_base: int = TEST_SEEDS,
             shape=(40, 112, 112), spacing=(2.5, 0.8, 0.8), n_boot: int = 2000) -> dict:
    """Study-level AUC (95 % bootstrap CI) and rates at the model's threshold; nodule detection rates."""
    cases = [chest_ct(seed_base + i, shape=shape, spacing=spacing) for i in range(studies)]
    labels = np.array([ct.malignant for ct in cases])
    found = nodules = false_positives = 0
    scores = []
    for start in range(0, len(cases), 4):
        chunk = cases[start:start + 4]
        prepared = [pre_process(phantom_volume(ct), spec, key=str(k)) for k, ct in enumerate(chunk)]
        raw = predict(net, prepared, spec, explain=False)
        for ct, p, r in zip(chunk, prepared, raw):
            result = post_process(p, r, spec)
            scores.append(result.malignancy_score)
            hits = set()
            for f in result.findings:
                label = int(ct.labels[tuple(int(round(v)) for v in f.centre_voxel)]) if all(
                    0 <= round(v) < n for v, n in zip(f.centre_voxel, ct.labels.shape)) else 0
                match = [k for k, n in enumerate(ct.nodules)
                         if label == k + 1 or np.linalg.norm((np.asarray(f.centre_voxel) - n.centre_vox) * ct.spacing)
                         <= max(n.diameter_mm / 2, 5.0)]
                if match:
                    hits.add(match[0])
                else:
                    false_positives += 1
            found += len(hits)
            nodules += len(ct.nodules)
    scores = np.asarray(scores)
    low, high = metrics.bootstrap_auc_ci(labels, scores, n_boot=n_boot)
    rates = metrics.rates_at(labels, scores, spec.malignancy_threshold)
    return {
        "test_studies": studies,
        "test_malignant": int(labels.sum()),
        "test_seed_base": seed_base,
        "test_auc": metrics.roc_auc(labels, scores),
        "test_auc_ci95": [low, high],
        **{f"test_{k}": v for k, v in rates.as_dict().items()},
        "test_nodule_sensitivity": found / nodules if nodules else float("nan"),
        "test_false_positives_per_study": false_positives / studies,
    }


def train_and_register(registry: ModelRegistry, name: str, cfg: TrainConfig, *, stage: str,
                       progress=None) -> RegisteredModel:
    """Train on generated studies and register the network as a new version of ``name`` at ``stage``."""
    net, spec, metrics = train(cfg, progress=progress)
    return registry.register(name, network_to_bytes(net), spec, asdict(cfg), json_safe(metrics), stage=stage)
