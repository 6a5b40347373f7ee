"""``radlake upload``: the provider-side client for historical folders and archives.

1. **Plan** (pure, :func:`plan`): loose files are grouped by their Study Instance UID into STOW-RS units
   (at most ``max_instances`` per request); files that are not readable DICOM go in one unit of their own
   (the edge quarantines them, with an event); each archive is one unit, sent as it is (the edge extracts
   it safely and quarantines refused members). Study manifests count each study's distinct SOP instances
   per series, archives included (read through radlake's safe extractor).
2. **Send** (:class:`Uploader`): manifests first, then units; each answer is journaled before the next unit
   is sent; units already in the journal are skipped, so an interrupted upload resumes where it stopped.
   Edges speak HTTPS only: the client verifies the edge's certificate against a CA (``verify``: the platform
   CA, which ``radlake provider ca`` prints); a certificate that does not verify stops the upload at once.
   Transport errors, 429 and 5xx are retried with exponential back-off; 401/403 stop the upload.
3. **Report**: per study: instances sent, accepted, duplicates, quarantined with reasons.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pydicom

from nifi.edge import journal
from nifi.edge.errors import UploadError
from nifi.edge.handler import RADLAKE_REPORT
from nifi.edge.stow_rs import build_multipart_related
from radlake import dicom_io
from radlake.annotations import annotation_kind
from radlake.deid import archives

UNSORTED = "(not readable as DICOM)"


@dataclass(frozen=True)
class Unit:
    unit_id: str
    kind: str  # "stow" | "archive"
    study: str | None  # original Study Instance UID (stow units)
    paths: tuple[Path, ...]
    size_bytes: int


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]
    # original study UID -> original series UID -> set of SOP instance UIDs
    studies: dict[str, dict[str, frozenset[str]]]
    instances: int

    def manifest(self, study: str, upload_id: str) -> dict:
        series = self.studies[study]
        return {"upload_id": upload_id, "study_uid": study,
                "series": [{"series_uid": s, "expected_instances": len(sops)} for s, sops in sorted(series.items())]}


def _header(data_or_path: Path) -> tuple[str | None, str | None, str | None, bool]:
    """(study, series, SOP instance) UIDs as sent, and whether it is an annotation (SEG, RTSTRUCT, SR, ...):
    annotations are announced on their own topic, so a study's manifest counts only its images."""
    try:
        ds = pydicom.dcmread(data_or_path, stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"])
    except dicom_io.PARSE_ERRORS:
        return None, None, None, False
    values = (ds.get("StudyInstanceUID"), ds.get("SeriesInstanceUID"), ds.get("SOPInstanceUID"))
    study, series, sop = (str(v).strip() if v else None for v in values)
    return study, series, sop, annotation_kind(ds.get("SOPClassUID")) is not None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for root in paths:
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                found += [Path(dirpath) / n for n in sorted(filenames) if not (Path(dirpath) / n).is_symlink()]
        elif root.is_file() and not root.is_symlink():
            found.append(root)
    return found


def plan(paths: Sequence[Path], *, max_instances: int = 100) -> Plan:
    """Group inputs into units and count studies (reads headers only; archives through the safe extractor)."""
    studies: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    by_study: dict[str | None, list[tuple[Path, str]]] = defaultdict(list)
    units: list[Unit] = []
    instances = 0
    for path in _files(paths):
        sha = _sha256(path)
        if archives.is_archive(path):
            units.append(Unit(journal.unit_id("archive", [sha]), "archive", None, (path,), path.stat().st_size))
            with tempfile.TemporaryDirectory(prefix="radlake-upload-") as work:
                members, _ = archives.extract(path, Path(work))
                for member in members:
                    study, series, sop, annotation = _header(member.path)
                    instances += 1
                    if study and series and sop and not annotation:
                        studies[study][series].add(sop)
            continue
        instances += 1
        study, series, sop, annotation = _header(path)
        if study and series and sop:
            if not annotation:
                studies[study][series].add(sop)
            by_study[study].append((path, sha))
        else:
            by_study[None].append((path, sha))
    for study in sorted(by_study, key=lambda s: (s is None, s or "")):
        files = by_study[study]
        for start in range(0, len(files), max_instances):
            chunk = files[start : start + max_instances]
            units.append(Unit(journal.unit_id("stow", [sha for _, sha in chunk]), "stow", study,
                              tuple(p for p, _ in chunk), sum(p.stat().st_size for p, _ in chunk)))
    frozen = {s: {se: frozenset(sops) for se, sops in series.items()} for s, series in studies.items()}
    return Plan(tuple(units), frozen, instances)


@dataclass
class Progress:
    units_total: int
    instances_total: int
    bytes_total: int
    started: float = field(default_factory=time.monotonic)
    units: int = 0
    instances: int = 0
    size: int = 0
    skipped_units: int = 0

    def line(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-6)
        return (f"units {self.units}/{self.units_total} (resumed past {self.skipped_units}), "
                f"inputs {self.instances}, {self.size / 1e6:.1f}/{self.bytes_total / 1e6:.1f} MB, "
                f"{self.size / 1e6 / seconds:.2f} MB/s")


def _describe(answer: httpx.Response) -> str:
    """An answer for an error message: the edge's own ``error``/``message`` when it answered JSON, else only the
    status, size and type (a body the edge did not write, a proxy's page or an echo, is never quoted: it could
    carry what the provider sent)."""
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and (payload.get("error") or payload.get("message")):
        said = ": ".join(str(payload[k]) for k in ("error", "message") if payload.get(k))
        return f"HTTP {answer.status_code}: {said[:300]}"
    kind = answer.headers.get("content-type", "no content type")
    return f"HTTP {answer.status_code} ({len(answer.content)} bytes of {kind})"


Verify = ssl.SSLContext | str | Path | bool


def tls_context(verify: Verify) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for an edge: a CA file (PEM) as a context that trusts it alone; a context or a bool
    as given (True: the system's trust store)."""
    if isinstance(verify, (str, Path)):
        return ssl.create_default_context(cafile=str(verify))
    return verify


def _untrusted(err: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a transport error, if that is what it is."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _refuse_untrusted(url: str, err: httpx.TransportError) -> None:
    failure = _untrusted(err)
    if failure is not None or "CERTIFICATE_VERIFY_FAILED" in str(err):
        why = failure.verify_message if failure is not None else str(err)
        raise UploadError(f"the certificate of the edge at {url} does not verify ({why}): is the CA the platform's "
                          "(`radlake provider ca`)?") from err


class Uploader:
    """Sends a plan to one provider edge over HTTPS (verified with ``verify``), journaling every acknowledged unit."""

    def __init__(self, url: str, token: str, journal_path: Path, *, verify: Verify = True, attempts: int = 8,
                 backoff_s: float = 0.5, timeout_s: float = 600.0,
                 on_progress: Callable[[str], None] | None = None) -> None:
        self.url = url.rstrip("/")
        self.journal_path = journal_path
        self._attempts = attempts
        self._backoff = backoff_s
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0), verify=tls_context(verify),
                                  headers={"Authorization": f"Bearer {token}", "Accept": RADLAKE_REPORT})
        self._progress = on_progress or (lambda line: print(line, file=sys.stderr))

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, content, headers: dict[str, str]) -> httpx.Response:
        delay = self._backoff
        last = ""
        for attempt in range(1, self._attempts + 1):
            try:
                answer = self._http.post(f"{self.url}{path}", content=content() if callable(content) else content,
                                         headers=headers)
            except httpx.TransportError as err:
                _refuse_untrusted(self.url, err)
                last = f"{type(err).__name__}: {err}"
            else:
                if answer.status_code in (401, 403):
                    raise UploadError(f"the edge refused the credentials ({_describe(answer)})")
                if answer.status_code < 500 and answer.status_code != 429:
                    return answer
                last = _describe(answer)
            if attempt < self._attempts:
                self._progress(f"retrying {path} in {delay:.1f}s (attempt {attempt}: {last})")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise UploadError(f"{path}: no answer after {self._attempts} attempts ({last})")

    def send_manifests(self, the_plan: Plan, upload_id: str) -> None:

        done = journal.load(self.journal_path).manifests
        for study in sorted(the_plan.studies):
            if study in done:
                continue
            answer = self._post("/manifests", json.dumps(the_plan.manifest(study, upload_id)).encode(),
                                {"Content-Type": "application/json"})
            if answer.status_code != 200:
                raise UploadError(f"manifest refused: {_describe(answer)}")
            journal.append(self.journal_path, journal.manifest_record(study, upload_id, answer.json()))

    def send_unit(self, unit: Unit, upload_id: str) -> dict:
        if unit.kind == "archive":
            path = unit.paths[0]

            def stream():
                with path.open("rb") as handle:
                    yield from iter(lambda: handle.read(1 << 20), b"")

            answer = self._post("/archives", stream, {"Content-Type": "application/octet-stream"})
        else:
            body, content_type = build_multipart_related([p.read_bytes() for p in unit.paths], uuid.uuid4().hex)
            answer = self._post("/dicomweb/studies", body, {"Content-Type": content_type})
        if answer.status_code not in (200, 202, 409):
            raise UploadError(f"unit {unit.unit_id} refused: {_describe(answer)}")
        report = answer.json()
        record = journal.ack_record(unit.unit_id, unit.kind, upload_id, answer.status_code,
                                    report.get("outcomes", []), len(unit.paths), unit.size_bytes, unit.study,
                                    {**report.get("timings", {}), "request_s": round(answer.elapsed.total_seconds(), 4)})
        journal.append(self.journal_path, record)
        return record

    def upload(self, the_plan: Plan, upload_id: str) -> list[dict]:
        """Manifests, then every unit not yet acknowledged; returns the journal's ack records of this plan."""
        self.send_manifests(the_plan, upload_id)
        state = journal.load(self.journal_path)
        progress = Progress(len(the_plan.units), the_plan.instances, sum(u.size_bytes for u in the_plan.units))
        records = []
        for unit in the_plan.units:
            if state.acknowledged(unit.unit_id):
                progress.skipped_units += 1
                records.append(state.acks[unit.unit_id])
                continue
            records.append(self.send_unit(unit, upload_id))
            progress.units += 1
            progress.instances += len(records[-1]["outcomes"])
            progress.size += unit.size_bytes
            self._progress(progress.line())
        return records


def wait_until_listening(edge_url: str, timeout_s: float = 180.0, *, verify: Verify = True) -> None:
    """Wait for a provider edge to accept connections: NiFi's HandleHttpRequest opens its port only once
    the edge's processors run, some seconds after ``radlake provider add`` or a NiFi restart. A certificate
    that does not verify against ``verify`` is an error at once."""
    deadline = time.monotonic() + timeout_s
    context = tls_context(verify)
    while True:
        try:
            httpx.post(f"{edge_url}/manifests", content=b"{}", timeout=10, verify=context)
            return
        except httpx.TransportError as err:
            _refuse_untrusted(edge_url, err)
            if time.monotonic() > deadline:
                raise UploadError(f"the edge at {edge_url} did not open its port within {timeout_s:.0f} s") from err
            time.sleep(0.5)


def study_report(records: Sequence[dict]) -> list[dict]:
    """Per original study: inputs sent, accepted, duplicates, quarantined by reason (pure)."""
    rows: dict[str, dict] = {}
    for record in records:
        for outcome in record.get("outcomes", []):
            study = outcome.get("original_study_uid") or record.get("original_study_uid") or UNSORTED
            row = rows.setdefault(study, {"study": study, "pseudonymous_study": None, "sent": 0, "accepted": 0,
                                          "duplicate": 0, "quarantined": 0, "skipped": 0, "reasons": Counter()})
            row["sent"] += 1
            row[outcome["status"]] = row.get(outcome["status"], 0) + 1
            if outcome.get("study_uid"):
                row["pseudonymous_study"] = outcome["study_uid"]
            if outcome["status"] == "quarantined":
                row["reasons"][outcome.get("reason") or "?"] += 1
    return [{**row, "reasons": dict(sorted(row["reasons"].items()))} for _, row in sorted(rows.items())]


def upload_id_for(paths: Sequence[Path], provider: str) -> str:
    """The same inputs from the same provider give the same upload id (so a resumed upload keeps it): a digest
    (:data:`nifi.edge.edge.UPLOAD_ID`), since it travels in events and file names must not."""
    joined = "\n".join([provider, *sorted(str(p.resolve()) for p in paths)])
    return hashlib.sha256(joined.encode()).hexdigest()[:32]

