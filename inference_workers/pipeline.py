"""Nodule detection and malignancy classification as ``pre_process / predict / post_process``.

* :func:`pre_process` (one study): orientation to the canonical axial LPS grid, trilinear resampling to
  isotropic voxels and HU windowing on the compute device, a body/lung mask, and the sliding-window
  patches whose centres lie in the lungs.
* :func:`predict` (a batch of studies): the window pass over every study's patches in one stream of
  batches, candidate proposal (:func:`propose_candidates`, pure numpy), a second pass on patches centred
  on each candidate (presence + malignancy), and a Grad-CAM map per candidate.
* :func:`post_process` (one study): candidates in patient millimetres and source voxels, a label volume
  on the source grid (for DICOM SEG), and the study-level malignancy score.

Each step runs on CPU in a test; the worker only moves studies between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from inference_workers.errors import InferenceReason, StudyRejected
from inference_workers.network import NoduleNet3D, grad_cam
from radlake.imaging.volume import Volume


@dataclass(frozen=True)
class ModelSpec:
    """How a model version reads a volume; stored with its weights in the registry."""

    width: int = 8
    patch: int = 24  # voxels per side
    spacing_mm: float = 1.25  # isotropic input spacing
    stride: int = 6  # sliding-window step (voxels)
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    solid_hu: float = -500.0  # nodule tissue threshold for the candidate mask
    presence_threshold: float = 0.5
    malignancy_threshold: float = 0.5  # study score threshold, chosen on the validation set
    nms_mm: float = 10.0
    max_candidates: int = 8

    def windowed(self, hu: float) -> float:
        lo, hi = self.hu_window
        return (min(max(hu, lo), hi) - lo) / (hi - lo)


@dataclass(frozen=True)
class Geometry:
    """Maps the pre-processed (canonical, isotropic) grid back to the source series."""

    permutation: tuple[int, int, int]  # canonical axis k is source axis permutation[k]
    flips: tuple[bool, bool, bool]  # canonical axis k runs against its source axis
    source_shape: tuple[int, int, int]
    canonical_shape: tuple[int, int, int]
    iso_shape: tuple[int, int, int]
    iso_spacing: tuple[float, float, float]  # effective spacing of the isotropic grid (mm)
    source: Volume = field(repr=False, compare=False)

    def iso_to_source(self, iso_zyx: np.ndarray) -> np.ndarray:
        iso = np.asarray(iso_zyx, dtype=float)
        scale = np.array([(c - 1) / (i - 1) if i > 1 else 0.0 for c, i in zip(self.canonical_shape, self.iso_shape)])
        canonical = iso * scale
        source = np.empty_like(canonical)
        for k, axis in enumerate(self.permutation):
            value = canonical[..., k]
            source[..., axis] = (self.source_shape[axis] - 1 - value) if self.flips[k] else value
        return source

    def source_to_iso(self, source_zyx: np.ndarray) -> np.ndarray:
        source = np.asarray(source_zyx, dtype=float)
        scale = np.array([(i - 1) / (c - 1) if c > 1 else 0.0 for c, i in zip(self.canonical_shape, self.iso_shape)])
        canonical = np.empty_like(source)
        for k, axis in enumerate(self.permutation):
            value = source[..., axis]
            canonical[..., k] = (self.source_shape[axis] - 1 - value) if self.flips[k] else value
        return canonical * scale

    def iso_to_patient(self, iso_zyx: np.ndarray) -> np.ndarray:
        return self.source.geometry.index_to_patient(self.iso_to_source(iso_zyx))

    def iso_affine(self) -> np.ndarray:
        """4x4 matrix from iso index (z, y, x, 1) to patient LPS mm."""
        base = self.iso_to_patient(np.zeros(3))
        cols = [self.iso_to_patient(np.eye(3)[k]) - base for k in range(3)]
        affine = np.eye(4)
        affine[:3, :3] = np.stack(cols, axis=1)
        affine[:3, 3] = base
        return affine


@dataclass(frozen=True)
class PreparedStudy:
    key: str
    image: torch.Tensor  # (Z+P, Y+P, X+P) windowed, padded by P/2 with air, on the device
    centres: np.ndarray  # (N, 3) int iso indices of the window centres
    patches: torch.Tensor  # (N, 1, P, P, P)
    geometry: Geometry


@dataclass(frozen=True)
class Candidate:
    centre_iso: tuple[float, float, float]
    box_start: tuple[int, int, int]  # where ``mask`` sits in the iso grid
    mask: np.ndarray  # bool, iso grid, solid part of the nodule
    window_probability: float


@dataclass(frozen=True)
class RawPrediction:
    key: str
    window_probabilities: np.ndarray  # (N,)
    candidates: tuple[Candidate, ...]
    presence: np.ndarray  # (C,) second pass
    malignancy: np.ndarray  # (C,)
    cams: np.ndarray  # (C, P, P, P) Grad-CAM of the malignancy logit, iso grid around the candidate


@dataclass(frozen=True)
class Finding:
    centre_mm: tuple[float, float, float]  # patient LPS
    centre_voxel: tuple[float, float, float]  # (z, y, x) index in the source series (slice order)
    diameter_mm: float  # equivalent-sphere diameter of the solid part
    probability: float  # a nodule is there
    malignancy: float  # P(malignant | nodule)
    cam: np.ndarray  # (P, P, P) Grad-CAM, iso grid
    cam_affine: np.ndarray  # 4x4, cam index (z, y, x) -> patient LPS mm


@dataclass(frozen=True)
class StudyPrediction:
    key: str
    findings: tuple[Finding, ...]
    labels: np.ndarray  # (z, y, x) uint8 on the source grid: k = finding k-1
    malignancy_score: float  # study level: max over findings of probability * malignancy, 0 without findings


def _canonical_axes(volume: Volume) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    directions = volume.geometry.axes_zyx()
    permutation, flips = [0, 0, 0], [False, False, False]
    seen = set()
    for axis, d in enumerate(directions):
        patient_axis = int(np.argmax(np.abs(d)))
        if abs(d[patient_axis]) < 0.99 * np.linalg.norm(d) or patient_axis in seen:
            raise StudyRejected(InferenceReason.INCONSISTENT_GEOMETRY, "oblique orientation is not supported")
        seen.add(patient_axis)
        k = 2 - patient_axis  # canonical (z, y, x) = patient (S, P, L)
        permutation[k] = axis
        flips[k] = bool(d[patient_axis] < 0)
    return tuple(permutation), tuple(flips)


def _lung_mask(windowed: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Air inside the body (not connected to the volume border in its slice), dilated to reach the pleura."""
    air = windowed < spec.windowed(-400.0)
    inside = np.zeros_like(air)
    for k, plane in enumerate(air):
        labels, _ = ndimage.label(plane)
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        inside[k] = plane & ~np.isin(labels, border)
    return ndimage.binary_dilation(inside, iterations=2)


def pre_process(volume: Volume, spec: ModelSpec, device: torch.device | str = "cpu", key: str = "") -> PreparedStudy:
    """Orient, resample, window and cut one study into sliding-window patches (no input is modified)."""
    permutation, flips = _canonical_axes(volume)
    image = torch.as_tensor(np.ascontiguousarray(volume.array), dtype=torch.float32, device=device)
    image = image.permute(*permutation)
    flip_dims = [k for k in range(3) if flips[k]]
    if flip_dims:
        image = torch.flip(image, flip_dims)
    canonical_spacing = [volume.geometry.spacing[a] for a in permutation]
    canonical_shape = tuple(int(n) for n in image.shape)
    iso_shape = tuple(max(2, round((n - 1) * s / spec.spacing_mm) + 1) for n, s in zip(canonical_shape, canonical_spacing))
    iso = F.interpolate(image[None, None], size=iso_shape, mode="trilinear", align_corners=True)[0, 0]
    lo, hi = spec.hu_window
    windowed = (iso.clamp(lo, hi) - lo) / (hi - lo)
    half = spec.patch // 2
    padded = F.pad(windowed, (half, half, half, half, half, half), value=0.0)

    lungs = _lung_mask(windowed.cpu().numpy(), spec)
    grid = [np.arange(0, n, spec.stride) for n in iso_shape]
    zz, yy, xx = np.meshgrid(*grid, indexing="ij")
    centres = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1)
    centres = centres[lungs[centres[:, 0], centres[:, 1], centres[:, 2]]]
    patches = _patches(padded, centres, spec.patch)
    iso_spacing = tuple((c - 1) * s / (i - 1) for c, s, i in zip(canonical_shape, canonical_spacing, iso_shape))
    geometry = Geometry(permutation, flips, tuple(volume.array.shape), canonical_shape, iso_shape, iso_spacing, volume)
    return PreparedStudy(key, padded, centres, patches, geometry)


def _patches(padded: torch.Tensor, centres: np.ndarray, size: int) -> torch.Tensor:
    """Patches of ``size`` centred on ``centres`` (iso indices) from the padded volume."""
    if len(centres) == 0:
        return padded.new_zeros((0, 1, size, size, size))
    offsets = torch.arange(size, device=padded.device)
    starts = torch.as_tensor(np.asarray(centres, dtype=np.int64), device=padded.device)
    z = (starts[:, 0, None] + offsets)[:, :, None, None]
    y = (starts[:, 1, None] + offsets)[:, None, :, None]
    x = (starts[:, 2, None] + offsets)[:, None, None, :]
    return padded[z, y, x][:, None]


def _fixed_batches(patches: torch.Tensor, batch_size: int):
    """(chunk padded to ``batch_size``, real length): one input shape, so oneDNN / cuDNN build their
    kernels once instead of once per odd-sized tail."""
    for start in range(0, len(patches), batch_size):
        chunk = patches[start:start + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = torch.cat([chunk, chunk.new_zeros((batch_size - n, *chunk.shape[1:]))])
        yield chunk, n


def _scores(model: NoduleNet3D, patches: torch.Tensor, batch_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Sigmoid of both heads, (N, 2), in fixed-size batches; bf16 via autocast."""
    out = []
    with torch.inference_mode():
        for chunk, n in _fixed_batches(patches, batch_size):
            with torch.autocast(device_type=chunk.device.type, dtype=dtype, enabled=dtype != torch.float32):
                out.append(torch.sigmoid(model(chunk).float())[:n])
    return torch.cat(out) if out else patches.new_zeros((0, 2))


def propose_candidates(centres: np.ndarray, probabilities: np.ndarray, windowed: np.ndarray,
                       spec: ModelSpec) -> tuple[Candidate, ...]:
    """Greedy non-maximum suppression over positive windows; each candidate is the solid blob at its centre.

    ``windowed`` is the unpadded iso volume. Thin structures (vessels) are removed by an opening before
    the blob is chosen; a positive window without a blob within 5 mm of its centre is dropped.
    """
    half = spec.patch // 2
    accepted: list[Candidate] = []
    order = np.argsort(-probabilities, kind="stable")
    solid = windowed > spec.windowed(spec.solid_hu)
    near = 5.0 / spec.spacing_mm
    for index in order:
        p = float(probabilities[index])
        if p < spec.presence_threshold or len(accepted) >= spec.max_candidates:
            break
        c = centres[index]
        if any(np.linalg.norm(np.subtract(a.centre_iso, c)) * spec.spacing_mm < spec.nms_mm for a in accepted):
            continue
        lo = np.maximum(c - half, 0)
        hi = np.minimum(c + half, solid.shape)
        box = solid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        core = ndimage.binary_opening(box, structure=ndimage.generate_binary_structure(3, 1))
        labels, count = ndimage.label(core)
        if count == 0:
            continue
        local = c - lo
        coms = np.array(ndimage.center_of_mass(core, labels, range(1, count + 1))).reshape(-1, 3)
        distances = np.linalg.norm(coms - local, axis=1)
        best = int(np.argmin(distances))
        if distances[best] > near:
            continue
        blob = ndimage.binary_dilation(labels == best + 1) & box
        centre = tuple(float(v) for v in coms[best] + lo)
        if any(np.linalg.norm(np.subtract(a.centre_iso, centre)) * spec.spacing_mm < spec.nms_mm for a in accepted):
            continue
        accepted.append(Candidate(centre, tuple(int(v) for v in lo), blob, p))
    return tuple(accepted)


def predict(model: NoduleNet3D, studies: list[PreparedStudy], spec: ModelSpec, batch_size: int = 64,
            dtype: torch.dtype = torch.float32, explain: bool = True) -> list[RawPrediction]:
    """Both passes for a batch of studies: their patches go through the model together."""
    model.eval()
    if not studies:
        return []
    half = spec.patch // 2
    window_scores = _scores(model, torch.cat([s.patches for s in studies]), batch_size, dtype)[:, 0].cpu().numpy()
    splits = np.cumsum([len(s.centres) for s in studies])[:-1]
    per_study = np.split(window_scores, splits)

    proposals = []
    for study, probabilities in zip(studies, per_study):
        windowed = study.image[half:-half, half:-half, half:-half].cpu().numpy()
        proposals.append(propose_candidates(study.centres, probabilities, windowed, spec))
    candidate_patches = [
        _patches(s.image, np.array([np.round(c.centre_iso) for c in cands], dtype=np.int64).reshape(-1, 3), spec.patch)
        for s, cands in zip(studies, proposals)
    ]
    stacked = torch.cat(candidate_patches)
    scores = _scores(model, stacked, batch_size, dtype).cpu().numpy()
    if explain and len(stacked):
        cam_batch = min(batch_size, 16)
        cams = torch.cat([grad_cam(model, chunk)[:n] for chunk, n in _fixed_batches(stacked, cam_batch)])
        cams = cams.cpu().numpy().astype(np.float32)
    else:
        cams = np.zeros((len(stacked), spec.patch, spec.patch, spec.patch), dtype=np.float32)
    out, start = [], 0
    for study, probabilities, cands in zip(studies, per_study, proposals):
        stop = start + len(cands)
        out.append(RawPrediction(study.key, probabilities, cands, scores[start:stop, 0], scores[start:stop, 1],
                                 cams[start:stop]))
        start = stop
    return out


def _equivalent_diameter(voxels: int, spacing: tuple[float, float, float]) -> float:
    volume = voxels * float(np.prod(spacing))
    return 2.0 * (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)


def post_process(prepared: PreparedStudy, raw: RawPrediction, spec: ModelSpec) -> StudyPrediction:
    """Keep candidates the second pass confirms; map them to the source series and patient space."""
    geometry = prepared.geometry
    half = spec.patch // 2
    iso_labels = np.zeros(geometry.iso_shape, dtype=np.uint8)
    findings: list[Finding] = []
    affine = geometry.iso_affine()
    for candidate, presence, malignancy, cam in zip(raw.candidates, raw.presence, raw.malignancy, raw.cams):
        if presence < spec.presence_threshold:
            continue
        lo = candidate.box_start
        hi = [a + b for a, b in zip(lo, candidate.mask.shape)]
        region = iso_labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        region[candidate.mask & (region == 0)] = len(findings) + 1
        cam_origin = np.round(candidate.centre_iso) - half
        cam_affine = affine.copy()
        cam_affine[:3, 3] = affine[:3, :3] @ cam_origin + affine[:3, 3]
        findings.append(Finding(
            centre_mm=tuple(float(v) for v in geometry.iso_to_patient(np.asarray(candidate.centre_iso))),
            centre_voxel=tuple(float(v) for v in geometry.iso_to_source(np.asarray(candidate.centre_iso))),
            diameter_mm=_equivalent_diameter(int(candidate.mask.sum()), geometry.iso_spacing),
            probability=float(presence),
            malignancy=float(malignancy),
            cam=cam,
            cam_affine=cam_affine,
        ))
    labels = _to_source_grid(iso_labels, geometry)
    score = max((f.probability * f.malignancy for f in findings), default=0.0)
    return StudyPrediction(raw.key, tuple(findings), labels, float(score))


def _to_source_grid(iso_labels: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Nearest-neighbour resampling of an iso label volume back onto the source series' grid."""
    if not iso_labels.any():
        return np.zeros(geometry.source_shape, dtype=np.uint8)
    canonical = F.interpolate(torch.as_tensor(iso_labels, dtype=torch.float32)[None, None],
                              size=geometry.canonical_shape, mode="nearest-exact")[0, 0]
    flip_dims = [k for k in range(3) if geometry.flips[k]]
    if flip_dims:
        canonical = torch.flip(canonical, flip_dims)
    inverse = [geometry.permutation.index(axis) for axis in range(3)]
    return canonical.permute(*inverse).numpy().astype(np.uint8)
