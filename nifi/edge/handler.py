"""One request to a provider's edge, from method/path/headers/body to the HTTP answer.

Routes (the NiFi flow's HandleHttpRequest accepts only these paths):

| request | body | answer |
| --- | --- | --- |
| ``POST /dicomweb/studies[/{study}]`` | STOW-RS ``multipart/related; type="application/dicom"`` | DICOM JSON store response (200/202/409) |
| ``POST /archives`` | a zip or tar(.gz) archive | radlake JSON report (200/202/409) |
| ``POST /manifests`` | ``{"upload_id", "study_uid", "series": [...]}`` | ``{"study_uid": pseudonymous, "event_id"}`` |
| drop folder file (no HTTP) | an instance or an archive | radlake JSON report |

Every request needs ``Authorization: Bearer <the provider's token>`` (401 without, 403 with another).
Events are published and acknowledged before the answer: a 2xx means stored and announced. Vault,
object store or Kafka trouble answers 503 and the sender retries (same event ids).
``Accept: application/vnd.radlake.ingest+json`` gets the radlake report from ``/dicomweb/studies`` too.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lake_schemas.errors import RegistryError
from nifi.edge import stow_rs
from nifi.edge.edge import (
    ACCEPTED,
    DUPLICATE,
    QUARANTINED,
    EdgeConfig,
    EdgeResult,
    ingest_archive,
    ingest_instances,
    ingest_stow_parts,
    manifest_event,
    parse_manifest_request,
)
from nifi.edge.errors import EdgeUnavailable, StowError, TokenError
from nifi.edge.tokens import MISSING, check_bearer
from platform_layer.edge_metrics import EdgeTelemetry
from platform_layer.object_store import ObjectStore, ObjectStoreError
from radlake.deid import archives
from radlake.deid.confidentiality_profile import Rules
from radlake.deid.errors import PseudonymError
from radlake.deid.pseudonyms import Pseudonymiser
from radlake.deid.sealing import SealError

RADLAKE_REPORT = "application/vnd.radlake.ingest+json"
# Summary key: refusals whose bytes the edge did not keep (an archive too large to seal); a drop-folder file
# with any is moved aside (see disposal), never deleted.
UNKEPT = "unkept"
JSON = "application/json"


@dataclass(frozen=True)
class Response:
    status: int
    media_type: str
    body: bytes
    summary: dict  # counts for logs and FlowFile attributes (no PHI)


@dataclass
class EdgeRuntime:
    """What a running edge holds: the engine's rules, the Vault pseudonymiser, the store, the publisher."""

    config: EdgeConfig
    rules: Rules
    pseudonymiser: Pseudonymiser
    store: ObjectStore
    publisher: object  # EventPublisher (anything with publish(events))
    endpoint_token: Callable[[], str]  # the provider's current token (EdgeCredentials.endpoint_token)
    work_dir: Path
    housekeeping: Callable[[], None] = lambda: None  # Housekeeping: sweeps the edge's folders now and then
    stow_limits: stow_rs.StowLimits = stow_rs.StowLimits()
    telemetry: EdgeTelemetry | None = None  # per-provider counters, served by the lag exporter


def internal_error(err: BaseException) -> Response:
    """500 for what no handler expected: the error's type only (a message could quote what was sent). The
    sender retries; the edge's log has the same line."""
    name = type(err).__name__
    return _json(500, {"error": "EDGE_INTERNAL_ERROR", "message": name}, {"status": 500, "error": name})


def unavailable(message: str) -> Response:
    """503: the sender retries."""
    return _json(503, {"error": "EDGE_UNAVAILABLE", "message": message}, {"status": 503, "error": "EDGE_UNAVAILABLE"})


def _json(status: int, payload: dict, summary: dict | None = None, media: str = JSON) -> Response:
    return Response(status, media, json.dumps(payload, sort_keys=True).encode(), summary or {"status": status})


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def _report(result: EdgeResult, kind: str, config: EdgeConfig) -> tuple[int, dict]:
    counts = result.counts()
    released = counts.get(ACCEPTED, 0) + counts.get(DUPLICATE, 0)
    refused = counts.get(QUARANTINED, 0)
    status = 409 if refused and not released else 202 if refused else 200
    return status, {"provider": config.provider, "project": config.project, "kind": kind, "counts": counts,
                    "outcomes": [o.to_json() for o in result.outcomes]}


def _stow(result: EdgeResult) -> tuple[int, dict]:
    stored = [stow_rs.Stored(o.sop_class_uid or "", o.original_sop_uid or "", o.object_uri or "")
              for o in result.outcomes if o.status in (ACCEPTED, DUPLICATE)]
    failed = [stow_rs.Failed(o.sop_class_uid, o.original_sop_uid, o.reason or "DEID_FAILED")
              for o in result.outcomes if o.status == QUARANTINED]
    return stow_rs.store_response(None, stored, failed)


def _timings(started: float, processed: float) -> dict[str, float]:
    """Seconds spent de-identifying + storing, and publishing (until every acknowledgement)."""
    return {"deid_store_s": round(processed - started, 4), "publish_s": round(time.perf_counter() - processed, 4)}


def _publish(runtime: EdgeRuntime, result: EdgeResult) -> None:
    """Publish and wait for every acknowledgement; only then are the outbox tickets of its objects closed."""
    runtime.publisher.publish(list(result.events))  # type: ignore[attr-defined]
    if runtime.config.outbox is not None:
        runtime.config.outbox.close(result.tickets)


def _bytes(body: bytes | Path) -> bytes:
    return body.read_bytes() if isinstance(body, Path) else body


def _kind(route: str) -> str:
    """The metrics' name of a route (pure)."""
    if route == "/dicomweb/studies" or route.startswith("/dicomweb/studies/"):
        return "stow"
    return {"/archives": "archive", "/drop": "drop", "/manifests": "manifest"}.get(route, "other")


def _size(body: bytes | Path) -> int:
    try:
        return body.stat().st_size if isinstance(body, Path) else len(body)
    except OSError:
        return 0


def _count(runtime: EdgeRuntime, result: EdgeResult, deid_s: float) -> None:
    if runtime.telemetry is None:
        return
    outcomes: dict[tuple[str, str], int] = {}
    for o in result.outcomes:
        key = (o.status, (o.reason or "") if o.status == QUARANTINED else "")
        outcomes[key] = outcomes.get(key, 0) + 1
    runtime.telemetry.counters.ingested(outcomes, deid_s)


def handle(runtime: EdgeRuntime, method: str, path: str, headers: Mapping[str, str], body: bytes | Path,
           *, authenticated: bool = False) -> Response:
    """Answer one request; ``body`` is the bytes or the file holding them (NiFi spools request bodies to disk
    so they never cross the Python bridge). ``authenticated`` is for drop-folder files (trusted by the
    folder's permissions). Every answer is counted (``runtime.telemetry``)."""
    response = _handle(runtime, method, path, headers, body, authenticated=authenticated)
    if runtime.telemetry is not None:
        runtime.telemetry.answered(_kind(path.split("?", 1)[0].rstrip("/")), response.status, _size(body))
    return response


def _handle(runtime: EdgeRuntime, method: str, path: str, headers: Mapping[str, str], body: bytes | Path,
            *, authenticated: bool) -> Response:
    runtime.housekeeping()
    if not authenticated:
        try:
            expected = runtime.endpoint_token()
        except TokenError as err:
            return unavailable(str(err))
        ok, reason = check_bearer(_header(headers, "Authorization"), expected)
        if not ok:
            status = 401 if reason == MISSING else 403
            return _json(status, {"error": reason, "provider": runtime.config.provider},
                         {"status": status, "refused": reason})
    route = path.split("?", 1)[0].rstrip("/")
    if method.upper() != "POST":
        return _json(405, {"error": f"{method} is not supported"})
    try:
        if route == "/dicomweb/studies" or route.startswith("/dicomweb/studies/"):
            return _studies(runtime, headers, body)
        if route in ("/archives", "/drop"):
            return _archive_or_instance(runtime, body, "archive" if route == "/archives" else "drop")
        if route == "/manifests":
            return _manifest(runtime, body)
    except (PseudonymError, SealError, ObjectStoreError, RegistryError, EdgeUnavailable, OSError) as err:
        return _json(503, {"error": "EDGE_UNAVAILABLE", "message": f"{type(err).__name__}: {err}"},
                     {"status": 503, "error": type(err).__name__})
    return _json(404, {"error": f"no route {route}"})


def _studies(runtime: EdgeRuntime, headers: Mapping[str, str], body: bytes | Path) -> Response:
    """The body is streamed into one spool file per part (never held whole); the spool goes when answered."""
    limits = runtime.stow_limits
    size = body.stat().st_size if isinstance(body, Path) else len(body)
    if size > limits.max_request_bytes:
        return _stow_refused(StowError(f"the request is larger than the edge accepts ({limits.max_request_bytes} "
                                       "bytes)", status=413, reason=stow_rs.REQUEST_TOO_LARGE))
    started = time.perf_counter()
    runtime.work_dir.mkdir(parents=True, exist_ok=True)
    spool = Path(tempfile.mkdtemp(prefix="stow-", dir=runtime.work_dir))
    try:
        with body.open("rb") if isinstance(body, Path) else io.BytesIO(body) as stream:
            parts = stow_rs.spool_multipart_related(stream, _header(headers, "Content-Type"), spool, limits)
        if not parts:
            return _json(400, {"error": "BAD_STOW_REQUEST", "message": "no parts"})
        result = ingest_stow_parts(parts, rules=runtime.rules, pseudonymiser=runtime.pseudonymiser,
                                   store=runtime.store, config=runtime.config, max_part_bytes=limits.max_part_bytes)
    except StowError as err:
        return _stow_refused(err)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    processed = time.perf_counter()
    _count(runtime, result, processed - started)
    _publish(runtime, result)
    summary = {"kind": "stow", **result.counts(), **_timings(started, processed)}
    if RADLAKE_REPORT in _header(headers, "Accept"):
        status, payload = _report(result, "stow", runtime.config)
        return _json(status, {**payload, "timings": _timings(started, processed)}, {"status": status, **summary},
                     RADLAKE_REPORT)
    status, payload = _stow(result)
    return _json(status, payload, {"status": status, **summary}, stow_rs.DICOM_JSON)


def _stow_refused(err: StowError) -> Response:
    return _json(err.status, {"error": err.reason, "message": str(err)},
                 {"status": err.status, "kind": "stow", "refused": err.reason})


def _archive_or_instance(runtime: EdgeRuntime, body: bytes | Path, kind: str) -> Response:
    started = time.perf_counter()
    runtime.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="req-", dir=runtime.work_dir))
    try:
        if isinstance(body, Path):
            upload = body
        else:
            upload = work / "upload"
            upload.write_bytes(body)
        if archives.is_archive(upload):
            result = ingest_archive(upload, work / "members", rules=runtime.rules, pseudonymiser=runtime.pseudonymiser,
                                    store=runtime.store, config=runtime.config)
        else:
            result = ingest_instances([upload.read_bytes()], rules=runtime.rules, pseudonymiser=runtime.pseudonymiser,
                                      store=runtime.store, config=runtime.config, labels=[kind])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    processed = time.perf_counter()
    _count(runtime, result, processed - started)
    _publish(runtime, result)
    status, payload = _report(result, kind, runtime.config)
    timings = _timings(started, processed)
    summary = {"status": status, "kind": kind, **result.counts(), **timings}
    if result.unkept:
        summary[UNKEPT] = result.unkept
    return _json(status, {**payload, "timings": timings}, summary, RADLAKE_REPORT)


def dispose_dropped(dropped: Path, response: Response, refused_dir: Path) -> str:
    """What becomes of a drop-folder file once answered: ``kept`` (a 5xx: left in place, the flow retries it),
    ``deleted`` (every input released, or refused with its bytes kept in the edge's quarantine) or ``moved``
    to ``refused_dir`` (refused, and too large for the edge to keep: the file is the only copy)."""
    if response.status >= 500:
        return "kept"
    if response.summary.get(UNKEPT):
        refused_dir.mkdir(parents=True, exist_ok=True)
        target = refused_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}-{dropped.name}"
        shutil.move(dropped, target)
        os.utime(target)  # its retention (the quarantine's, see housekeeping) starts now
        return "moved"
    dropped.unlink(missing_ok=True)
    return "deleted"


def _manifest(runtime: EdgeRuntime, body: bytes | Path) -> Response:
    ok, reason, request = parse_manifest_request(_bytes(body))
    if not ok or request is None:
        return _json(400, {"error": "BAD_MANIFEST", "message": reason})
    try:
        event = manifest_event(request, runtime.pseudonymiser, runtime.config)
    except ValueError as err:
        return _json(400, {"error": "BAD_MANIFEST", "message": str(err)})
    _publish(runtime, EdgeResult((), (event,)))
    return _json(200, {"study_uid": event.data.study_uid, "event_id": event.event_id,
                       "expected_instances": event.data.expected_instances}, {"status": 200, "kind": "manifest"})
