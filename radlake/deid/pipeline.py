"""The per-instance pipeline: Part-10 byte strings in, one :class:`InstanceResult` each out, no file system.

:func:`deidentify_instances` is the library entry point (used by the batch run in
:mod:`radlake.deid.engine` and by the NiFi edge). Every instance goes one of two paths behind
:class:`~radlake.deid.path_interface.DeidPath`: the byte path (:mod:`radlake.deid.byte_path`) when it
takes the instance, else the dataset path (:mod:`radlake.deid.dataset_path`). Per instance: read and
validate, burned-in guard, Table E.1-1 actions, encode, blocking verification scan. The messages all
instances need keyed MACs of go to the pseudonymiser in one batched call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from radlake.deid import byte_path, dataset_path
from radlake.deid.confidentiality_profile import Rules
from radlake.deid.instance_result import InstanceResult
from radlake.deid.path_interface import DeidPath, Prepared, Unsupported
from radlake.deid.pseudonyms import Pseudonymiser

BATCH = 32  # instances per deidentify_instances call, for callers that read their inputs in batches


@dataclass(frozen=True)
class _Taken:
    """An instance a path has prepared; ``paths`` starts with that path, then those that can take over."""

    paths: tuple[DeidPath, ...]
    prepared: Prepared[object]


def _take(data: bytes, rules: Rules, provider: str | None, paths: tuple[DeidPath, ...]) -> _Taken | InstanceResult:
    """The first of ``paths`` that takes the instance (the last one takes every instance)."""
    *others, last = paths
    for i, path in enumerate(others):
        try:
            prepared = path.prepare(data, rules, provider)
        except Unsupported:
            continue
        return prepared if isinstance(prepared, InstanceResult) else _Taken(paths[i:], prepared)
    prepared = last.prepare(data, rules, provider)
    return prepared if isinstance(prepared, InstanceResult) else _Taken((last,), prepared)


def _digests(taken: Iterable[_Taken | InstanceResult], pseudonymiser: Pseudonymiser,
             known: dict[bytes, bytes]) -> dict[bytes, bytes]:
    messages = sorted({m for t in taken if isinstance(t, _Taken) for m in t.prepared.messages} - known.keys())
    if not messages:
        return known
    return {**known, **dict(zip(messages, pseudonymiser.hmac_many(messages), strict=True))}


def deidentify_instances(
    datas: Sequence[bytes], rules: Rules, pseudonymiser: Pseudonymiser, provider: str | None = None,
    *, byte_level: bool = True,
) -> list[InstanceResult]:
    """De-identify many instances with one batched pseudonymiser call. Raises only :class:`PseudonymError`.

    Instances the byte path does not take go the dataset path; those it gives up on while rewriting
    (rare) too, with a second pseudonymiser call for what that path needs in addition.
    ``byte_level=False`` sends every instance the dataset path (comparisons).
    """
    paths: tuple[DeidPath, ...] = (byte_path, dataset_path) if byte_level else (dataset_path,)
    results: list[InstanceResult | None] = [None] * len(datas)
    todo = {i: _take(data, rules, provider, paths) for i, data in enumerate(datas)}
    digests: dict[bytes, bytes] = {}
    while todo:
        digests = _digests(todo.values(), pseudonymiser, digests)
        given_up: dict[int, tuple[DeidPath, ...]] = {}
        for i, taken in todo.items():
            if isinstance(taken, InstanceResult):
                results[i] = taken
                continue
            try:
                results[i] = taken.paths[0].finish(taken.prepared, rules, digests)
            except Unsupported:
                given_up[i] = taken.paths[1:]
        todo = {i: _take(datas[i], rules, provider, rest) for i, rest in given_up.items()}
    return results  # type: ignore[return-value]
