"""The de-identification engine's batch run: files, folders and archives in; output tree, quarantine and report out.

:func:`run` (used by ``radlake deid`` and the benchmarks) expands its inputs (:func:`expand`: folders
recursively, archives extracted under limits), de-identifies them in batches of
:data:`radlake.deid.pipeline.BATCH` on N processes, each batch with the per-instance pipeline
(:func:`radlake.deid.pipeline.deidentify_instances`), and writes each released instance atomically.
Duplicates are settled after all workers finish (:func:`settle_duplicates`): identical bytes for the
same SOP Instance UID are released once, differing bytes for one SOP Instance UID are all quarantined
as a conflict. The run ends with the quarantine records and ``report.json`` (:func:`build_report`).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from radlake.deid import archives
from radlake.deid.confidentiality_profile import STANDARD_EDITION, TABLE_VERSION, Profile, Rules, compile_rules
from radlake.deid.errors import QuarantineReason
from radlake.deid.instance_result import Status
from radlake.deid.pipeline import BATCH, deidentify_instances
from radlake.deid.pseudonyms import Pseudonymiser, PseudonymiserSpec
from radlake.deid.quarantine import QuarantineRecord, append_records, keep_original
from radlake.durable_files import write_durably, write_many_durably


@dataclass(frozen=True)
class Source:
    display: str
    path: Path


@dataclass(frozen=True)
class Outcome:
    """One line of the run's ledger (no PHI but the input path and original UID, kept provider-side)."""

    source: str
    status: Status
    provider: str
    reason: str | None = None
    message: str = ""
    original_sop_uid: str | None = None
    sha256: str | None = None  # of the input; for released instances only once their SOP UID is seen twice
    output: str | None = None
    verified: bool | None = None
    stored_as: str | None = None
    path: str | None = None  # where the input bytes were read from (an extracted member for archives)


@dataclass(frozen=True)
class Job:
    out_dir: Path
    profile: Profile
    provider: str | None
    spec: PseudonymiserSpec




def process_files(sources: Sequence[Source], job: Job, rules: Rules, pseudonymiser: Pseudonymiser) -> list[Outcome]:
    """Read, de-identify and write one batch of files; quarantined originals are stored, not journaled."""
    datas: list[bytes] = []
    readable: list[Source] = []
    outcomes: list[Outcome] = []
    for source in sources:
        try:
            datas.append(source.path.read_bytes())
            readable.append(source)
        except OSError as err:
            outcomes.append(Outcome(source.display, Status.QUARANTINED, job.provider or "unknown",
                                    QuarantineReason.NOT_DICOM, f"unreadable: {err}"))
    results = deidentify_instances(datas, rules, pseudonymiser, job.provider)
    # A file the report names survives a crash whole: the batch's outputs are written durably together.
    write_many_durably([(job.out_dir / r.relative_path, r.encoded_parts) for r in results
                        if r.status is Status.DEIDENTIFIED and r.encoded_parts is not None and r.relative_path])
    for source, data, result in zip(readable, datas, results, strict=True):
        digest = None
        stored = None
        if result.status is Status.QUARANTINED:
            digest = hashlib.sha256(data).hexdigest()
            stored = keep_original(job.out_dir, data, digest)
        message = result.message + (f": {', '.join(result.leaks)}" if result.leaks else "")
        outcomes.append(Outcome(source.display, result.status, result.provider,
                                str(result.reason) if result.reason else None, message,
                                result.original_sop_uid, digest, result.relative_path, result.verified, stored,
                                str(source.path)))
    return outcomes


_WORKER: dict[str, object] = {}

# Workers are forked from a clean server process, never from the caller: a caller that already runs
# threads (a Kafka client, a Spark gateway, a test runner) would hand each child locks held by threads
# that do not exist there, and the child dies or hangs when it collects one of the inherited objects.
# The server imports the caller's main module and this one once; workers forked from it import nothing.
_POOL_CONTEXT = multiprocessing.get_context("forkserver")
_POOL_CONTEXT.set_forkserver_preload(["__main__", __name__])


def _init_worker(job: Job) -> None:
    _WORKER["job"] = job
    _WORKER["rules"] = compile_rules(job.profile)
    _WORKER["pseudonymiser"] = job.spec.open()


def _worker_batch(sources: list[Source]) -> list[Outcome]:
    return process_files(sources, _WORKER["job"], _WORKER["rules"], _WORKER["pseudonymiser"])  # type: ignore[arg-type]


def _input_sha256(outcome: Outcome) -> str | None:
    """The input's digest: recorded, or read again from where it was read (``None`` when it is gone)."""
    if outcome.sha256 is not None:
        return outcome.sha256
    try:
        return hashlib.sha256(Path(outcome.path).read_bytes()).hexdigest() if outcome.path else None
    except OSError:
        return None


def settle_duplicates(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Identical inputs for one SOP Instance UID → released once; differing inputs → all conflicts.

    Inputs are hashed here, and only those whose SOP Instance UID was released more than once; an
    input that cannot be read again counts as different.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, outcome in enumerate(outcomes):
        if outcome.status is Status.DEIDENTIFIED and outcome.original_sop_uid:
            groups[outcome.original_sop_uid].append(i)
    settled = list(outcomes)
    for indices in groups.values():
        if len(indices) < 2:
            continue
        indices = sorted(indices, key=lambda i: outcomes[i].source)
        digests = {i: _input_sha256(outcomes[i]) for i in indices}
        if len(set(digests.values())) == 1 and None not in digests.values():
            for i in indices[1:]:
                settled[i] = replace(outcomes[i], status=Status.DUPLICATE, output=None, sha256=digests[i],
                                     message=f"identical to {outcomes[indices[0]].source}")
            settled[indices[0]] = replace(outcomes[indices[0]], sha256=digests[indices[0]])
        else:
            for i in indices:
                settled[i] = replace(outcomes[i], status=Status.QUARANTINED, output=None, verified=None,
                                     sha256=digests[i], reason=QuarantineReason.CONFLICTING_DUPLICATE,
                                     message=f"{len(indices)} different inputs share this SOP Instance UID")
    return settled


def expand(paths: Iterable[Path], work_dir: Path, limits: archives.Limits,
           exclude: Path | None = None) -> tuple[list[Source], list[Outcome]]:
    """Files, folders (recursively, sorted) and archives → sources; refusals become quarantine outcomes.

    ``exclude`` (the output folder) is never read as input, even when it lies inside a source folder.
    """
    sources: list[Source] = []
    refused: list[Outcome] = []
    counter = 0
    skip = exclude.resolve() if exclude is not None else None
    for root in paths:
        files: list[Path] = []
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if skip is None or (Path(dirpath) / d).resolve() != skip)
                files += [Path(dirpath) / name for name in sorted(filenames)]
        else:
            files.append(root)
        for path in files:
            if path.is_symlink():
                refused.append(Outcome(str(path), Status.SKIPPED, "unknown", "SYMLINK", "symbolic links are not followed"))
            elif archives.is_archive(path):
                counter += 1
                members, refusals = archives.extract(path, work_dir / f"{counter:05d}", limits, str(path))
                sources += [Source(m.display, m.path) for m in members]
                refused += [Outcome(r.display, Status.QUARANTINED, "unknown", r.reason, r.message) for r in refusals]
            else:
                sources.append(Source(str(path), path))
    return sources, refused


@dataclass(frozen=True)
class RunResult:
    outcomes: tuple[Outcome, ...]
    report: dict[str, object]


def run(
    paths: Sequence[Path],
    job: Job,
    *,
    workers: int = 1,
    limits: archives.Limits = archives.Limits(),
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """De-identify everything under ``paths`` into ``job.out_dir``. Raises :class:`PseudonymError` on Vault trouble."""
    started = time.monotonic()
    job.out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = job.out_dir / f".radlake-extract-{os.getpid()}"
    pseudonymiser = job.spec.open()
    try:
        ensure = getattr(pseudonymiser, "ensure_key", None)
        if ensure is not None:
            ensure()
        pseudonymiser.hmac_many([b"radlake-deid-healthcheck"])
        sources, outcomes = expand(paths, work_dir, limits, exclude=job.out_dir)
        outcomes = list(outcomes)
        batches = [list(sources[i : i + BATCH]) for i in range(0, len(sources), BATCH)]
        done = 0
        if progress:
            progress(0, len(sources))
        if workers <= 1:
            rules = compile_rules(job.profile)
            for batch in batches:
                outcomes += process_files(batch, job, rules, pseudonymiser)
                done += len(batch)
                if progress:
                    progress(done, len(sources))
        else:
            outcomes += _run_pool(batches, job, workers, len(sources), progress)
        settled = settle_duplicates(outcomes)
        _apply_settlement(outcomes, settled, job.out_dir)
        append_records(job.out_dir, [_record(o) for o in settled if o.status is Status.QUARANTINED])
        report = build_report(settled, job, pseudonymiser, time.monotonic() - started, workers)
        write_durably(job.out_dir / "report.json", _json(report).encode("utf-8"))
        return RunResult(tuple(settled), report)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run_pool(batches: list[list[Source]], job: Job, workers: int, total: int,
              progress: Callable[[int, int], None] | None) -> list[Outcome]:
    outcomes: list[Outcome] = []
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=_POOL_CONTEXT, initializer=_init_worker,
                             initargs=(job,)) as pool:
        pending: dict[Future[list[Outcome]], int] = {}
        queue = iter(batches)
        for batch in queue:
            pending[pool.submit(_worker_batch, batch)] = len(batch)
            if len(pending) >= workers * 4:
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done += pending.pop(future)
                outcomes += future.result()
                if progress:
                    progress(done, total)
                batch = next(queue, None)
                if batch is not None:
                    pending[pool.submit(_worker_batch, batch)] = len(batch)
    return outcomes


def _apply_settlement(before: Sequence[Outcome], after: Sequence[Outcome], out_dir: Path) -> None:
    """Remove outputs of conflicts and keep their originals (duplicates share their twin's output)."""
    for old, new in zip(before, after, strict=True):
        if new.reason == QuarantineReason.CONFLICTING_DUPLICATE and old.status is Status.DEIDENTIFIED:
            if old.output:
                (out_dir / old.output).unlink(missing_ok=True)
    for old, new in zip(before, after, strict=True):
        if new.reason == QuarantineReason.CONFLICTING_DUPLICATE and old.status is Status.DEIDENTIFIED:
            source = Path(old.path) if old.path else None
            if source is not None and source.is_file() and new.sha256:
                keep_original(out_dir, source.read_bytes(), new.sha256)


def _record(outcome: Outcome) -> QuarantineRecord:
    stored = outcome.stored_as
    if stored is None and outcome.reason == QuarantineReason.CONFLICTING_DUPLICATE and outcome.sha256:
        stored = f"quarantine/files/{outcome.sha256}.bin"
    return QuarantineRecord(outcome.source, QuarantineReason(outcome.reason), outcome.message,
                            outcome.original_sop_uid, outcome.sha256, stored, outcome.provider)


def build_report(outcomes: Sequence[Outcome], job: Job, pseudonymiser: Pseudonymiser, seconds: float,
                 workers: int) -> dict[str, object]:
    """Counts by outcome and reason, overall and per provider, with the verification pass rate."""
    def summary(items: Sequence[Outcome]) -> dict[str, object]:
        scanned = [o for o in items if o.verified is not None]
        passed = sum(1 for o in scanned if o.verified)
        return {
            "inputs": len(items),
            "by_status": dict(sorted(Counter(o.status.value for o in items).items())),
            "by_reason": dict(sorted(Counter(o.reason for o in items if o.reason).items())),
            "verification": {
                "scanned": len(scanned),
                "passed": passed,
                "pass_rate": round(passed / len(scanned), 6) if scanned else None,
            },
        }

    providers: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        providers[outcome.provider].append(outcome)
    return {
        "profile": {
            "name": job.profile.name,
            "standard": f"DICOM PS3.15 {STANDARD_EDITION} Annex E, Table E.1-1",
            "table_version": TABLE_VERSION,
            "options": sorted(o.value for o in job.profile.options),
        },
        "pseudonymiser": pseudonymiser.describe(),
        "workers": workers,
        "seconds": round(seconds, 3),
        **summary(outcomes),
        "providers": {name: summary(items) for name, items in sorted(providers.items())},
    }


def _json(report: dict[str, object]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def default_progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\rdeid [{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


__all__ = [
    "Job",
    "Outcome",
    "RunResult",
    "Source",
    "default_progress",
    "run",
    "settle_duplicates",
]
