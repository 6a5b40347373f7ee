"""What one request to a provider's edge becomes: outcomes per input and the events to publish.

The de-identification is radlake's engine (:func:`radlake.deid.engine.deidentify_instances`), unchanged;
this module adds what the edge needs around it:

- settlement of duplicates *before* de-identifying (same original SOP Instance UID: identical bytes are
  released once, differing bytes are all ``CONFLICTING_DUPLICATE``), so nothing is stored for a conflict;
- the claim-check: every released instance is put in the content-addressed object store and described
  by an ``instance received`` event, or an ``annotation received`` event for a SEG, RTSTRUCT, SR, KOS or
  presentation state (deterministic event id: a re-sent instance gets the same id);
- quarantine: the original bytes and a record go to the edge's own quarantine folder (provider side,
  may hold PHI), and a ``quarantined`` event with a reason code and no PHI goes to the platform;
- study manifests: the provider's study/series UIDs are pseudonymised with the project's key exactly as
  the engine pseudonymises the instances' UIDs, so the manifest and the instances name the same study.

Nothing here talks to Kafka or HTTP; the NiFi processor and the tests call these functions.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path

import pydicom
from pydantic import BaseModel, ValidationError

from lake_schemas.events import (
    ManifestSeries,
    Quarantined,
    QuarantinedData,
    StudyManifest,
    StudyManifestData,
)
from nifi.edge.outbox import Outbox, PlannedObject
from nifi.edge.stow_rs import SpooledPart
from platform_layer.object_store import ObjectStore
from radlake import dicom_io
from radlake.deid import archives
from radlake.deid.confidentiality_profile import Rules
from radlake.deid.errors import QuarantineReason
from radlake.deid.instance_result import InstanceResult, Status
from radlake.deid.pipeline import BATCH, deidentify_instances
from radlake.deid.pseudonyms import Pseudonymiser, uid_from_digest, uid_message
from radlake.deid.quarantine import QuarantineRecord, append_records, keep_original
from radlake.deid.sealing import Sealer
from radlake.instance_events import InstanceEventError, store_and_describe

ACCEPTED, DUPLICATE, QUARANTINED, SKIPPED = "accepted", "duplicate", "quarantined", "skipped"

# Archive members de-identified together are held in memory together: at most this many bytes (and BATCH members).
BATCH_BYTES = 256 << 20
# A refused upload up to this size is kept, sealed, in the edge's quarantine (sealing holds it whole in memory).
KEEP_REFUSED_MAX_BYTES = 256 << 20

# Namespace of deterministic quarantine/manifest event ids (fixed: changing it changes every id).
_NAMESPACE = uuid.UUID("0c7d3f1e-9a0b-4c5e-8f21-5b6a7c8d9e10")

# Reasons whose messages radlake writes itself (no input values in them): kept in the event.
_SAFE_MESSAGES = {
    QuarantineReason.VERIFICATION_FAILED, QuarantineReason.CONFLICTING_DUPLICATE,
    QuarantineReason.BURNED_IN_ANNOTATION, QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN,
    QuarantineReason.ARCHIVE_TOO_DEEP, QuarantineReason.ARCHIVE_BOMB, QuarantineReason.ARCHIVE_TOO_LARGE,
    QuarantineReason.ARCHIVE_TOO_MANY_MEMBERS, QuarantineReason.SEQUENCE_TOO_DEEP, QuarantineReason.ELEMENT_TOO_LONG,
    QuarantineReason.PART_TOO_LARGE,
}


@dataclass(frozen=True)
class EdgeConfig:
    provider: str
    project: str
    deid_profile_version: str
    edge_dir: Path  # edge-local (provider side): quarantine/quarantine.jsonl and quarantine/files/<sha256>.bin
    sealer: Sealer | None = None  # seals quarantined originals and their records' identifying fields
    outbox: Outbox | None = None  # tickets for objects stored before their events are acknowledged


@dataclass(frozen=True)
class Outcome:
    """What became of one input. ``original_*`` stay provider side (the response, the journal)."""

    index: int
    status: str
    reason: str | None = None
    message: str = ""
    input_sha256: str | None = None
    original_study_uid: str | None = None
    original_sop_uid: str | None = None
    sop_class_uid: str | None = None
    study_uid: str | None = None  # pseudonymous from here on
    series_uid: str | None = None
    sop_instance_uid: str | None = None
    object_uri: str | None = None
    sha256: str | None = None
    event_id: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


@dataclass(frozen=True)
class EdgeResult:
    outcomes: tuple[Outcome, ...]
    events: tuple[BaseModel, ...] = field(default=())  # Instance/AnnotationReceived and Quarantined, input order
    unkept: int = 0  # refusals whose bytes the edge could not keep (an archive over KEEP_REFUSED_MAX_BYTES)
    tickets: tuple[Path, ...] = ()  # outbox tickets to close once the events are acknowledged

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        return dict(sorted(counts.items()))


# ------------------------------------------------------------------------------------------ pure parts


def settle(keys: Sequence[tuple[str | None, str]]) -> list[str]:
    """Per input ``(original SOP Instance UID or None, input sha256)``: ``process``, ``duplicate`` or ``conflict``.

    Identical bytes under one UID: the first is processed, the others are duplicates. Different bytes
    under one UID: all conflict (none is released; which one is right cannot be told at the edge).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for index, (uid, _) in enumerate(keys):
        if uid:
            groups[uid].append(index)
    decision = ["process"] * len(keys)
    for indices in groups.values():
        if len(indices) < 2:
            continue
        if len({keys[i][1] for i in indices}) == 1:
            for i in indices[1:]:
                decision[i] = "duplicate"
        else:
            for i in indices:
                decision[i] = "conflict"
    return decision


def settlement_keys(datas: Sequence[bytes], originals: Sequence[tuple[str | None, ...]],
                    digests: Sequence[str]) -> list[tuple[str | None, str]]:
    """Keys for :func:`settle`. As in ``radlake deid``, only inputs that read as valid instances take part:
    a truncated copy of an instance is quarantined as truncated and does not turn its intact twin into a
    conflict. Validity is checked only where a SOP Instance UID occurs more than once."""
    counts: dict[str, int] = defaultdict(int)
    for original in originals:
        if original[1]:
            counts[original[1]] += 1
    keys: list[tuple[str | None, str]] = []
    for data, original, digest in zip(datas, originals, digests, strict=True):
        uid = original[1]
        if uid and counts[uid] > 1 and not dicom_io.read_part10(data).ok:
            uid = None
        keys.append((uid, digest))
    return keys


def original_uids(data: bytes) -> tuple[str | None, str | None, str | None]:
    """Best effort ``(study, sop instance, sop class)`` UIDs of an input as sent (None when unreadable)."""
    try:
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"])
    except dicom_io.PARSE_ERRORS:
        return None, None, None
    values = (ds.get("StudyInstanceUID"), ds.get("SOPInstanceUID"), ds.get("SOPClassUID"))
    return tuple(str(v).strip() if v else None for v in values)  # type: ignore[return-value]


def public_message(reason: str, message: str) -> str:
    """The message a ``quarantined`` event may carry: radlake's own texts, else only the reason."""
    if reason in _SAFE_MESSAGES:
        return message[:500]
    return f"{reason.lower().replace('_', ' ')} (details in the edge's quarantine record)"


def quarantine_event_id(provider: str, project: str, identity: str, reason: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"quarantined/{provider}/{project}/{identity}/{reason}"))


def pseudonymise_uids(uids: Sequence[str], pseudonymiser: Pseudonymiser, provider: str) -> dict[str, str]:
    """Original UID → the ``2.25.`` UID the engine gives it under the same key."""
    unique = sorted(set(uids))
    digests = pseudonymiser.hmac_many([uid_message(provider, u) for u in unique]) if unique else []
    return {uid: uid_from_digest(d) for uid, d in zip(unique, digests, strict=True)}


# ------------------------------------------------------------------------------------------- instances


def _quarantine(index: int, data: bytes | None, identity: str, reason: str, message: str, config: EdgeConfig,
                original: tuple[str | None, str | None, str | None], pseudonyms: dict[str, str],
                label: str, kept: tuple[str, str | None] | None = None) -> tuple[Outcome, Quarantined]:
    """``kept``: (digest, stored_as) of bytes already kept for this refusal (the archive it was refused in; no
    ``stored_as`` for bytes that could not be kept)."""
    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    stored_as = keep_original(config.edge_dir, data, digest, config.sealer) if data is not None and digest else None
    event_key = digest or identity  # one event per refusal, also when several point at one kept archive
    if kept is not None:
        digest, stored_as = kept
    append_records(config.edge_dir, [QuarantineRecord(
        label, QuarantineReason(reason), message, original[1], digest, stored_as, config.provider)], config.sealer)
    study, sop, _ = original
    event = Quarantined(
        event_id=quarantine_event_id(config.provider, config.project, event_key, reason),
        provider=config.provider,
        data=QuarantinedData(
            project=config.project, stage="edge", reason=reason, message=public_message(reason, message),
            input_sha256=digest, study_uid=pseudonyms.get(study or ""), sop_instance_uid=pseudonyms.get(sop or ""),
            quarantine_uri=(config.edge_dir / stored_as).absolute().as_uri() if stored_as else None,
        ),
    )
    outcome = Outcome(index, QUARANTINED, reason, message, digest, study, sop, original[2],
                      pseudonyms.get(study or ""), None, pseudonyms.get(sop or ""), event_id=event.event_id)
    return outcome, event


def ingest_instances(datas: Sequence[bytes], *, rules: Rules, pseudonymiser: Pseudonymiser, store: ObjectStore,
                     config: EdgeConfig, labels: Sequence[str] | None = None, first_index: int = 0,
                     decisions: Sequence[str] | None = None) -> EdgeResult:
    """De-identify, store and describe Part-10 inputs; refused ones are quarantined. Raises ``PseudonymError``
    (Vault) and ``ObjectStoreError`` (store): infrastructure, the caller answers 503 and the sender retries."""
    labels = list(labels) if labels is not None else [f"part {first_index + i + 1}" for i in range(len(datas))]
    digests = [hashlib.sha256(d).hexdigest() for d in datas]
    originals = [original_uids(d) for d in datas]
    if decisions is None:
        decisions = settle(settlement_keys(datas, originals, digests))
    pseudonyms = pseudonymise_uids([u for o in originals for u in o[:2] if u], pseudonymiser, config.provider)
    outcomes: list[Outcome | None] = [None] * len(datas)
    events: list[BaseModel | None] = [None] * len(datas)
    tickets: list[Path] = []

    to_process = [i for i, d in enumerate(decisions) if d == "process"]
    for start in range(0, len(to_process), BATCH):
        batch = to_process[start : start + BATCH]
        results = deidentify_instances([datas[i] for i in batch], rules, pseudonymiser, config.provider)
        ticket = _open_ticket(results, store, config)
        if ticket is not None:
            tickets.append(ticket)
        for i, result in zip(batch, results, strict=True):
            index = first_index + i
            if result.status is Status.DEIDENTIFIED and result.encoded is not None:
                try:
                    event = store_and_describe(result.encoded, store, provider=config.provider,
                                               project=config.project,
                                               deid_profile_version=config.deid_profile_version)
                except InstanceEventError as err:
                    outcomes[i], events[i] = _quarantine(index, datas[i], digests[i], "DEID_FAILED", str(err),
                                                         config, originals[i], pseudonyms, labels[i])
                    continue
                d = event.data
                outcomes[i] = Outcome(index, ACCEPTED, None, "", digests[i], originals[i][0], originals[i][1],
                                      d.sop_class_uid, d.study_uid, d.series_uid, d.sop_instance_uid,
                                      d.object_uri, d.sha256, event.event_id)
                events[i] = event
            elif result.status is Status.SKIPPED:
                outcomes[i] = Outcome(index, SKIPPED, result.reason, result.message, digests[i])
            else:
                outcomes[i], events[i] = _quarantine(index, datas[i], digests[i], str(result.reason), result.message,
                                                     config, originals[i], pseudonyms, labels[i])
    first_of: dict[str, int] = {}
    for i, decision in enumerate(decisions):
        uid = originals[i][1] or ""
        if decision == "conflict":
            outcomes[i], events[i] = _quarantine(
                first_index + i, datas[i], digests[i], QuarantineReason.CONFLICTING_DUPLICATE,
                f"{sum(1 for o in originals if o[1] == uid)} different inputs share this SOP Instance UID",
                config, originals[i], pseudonyms, labels[i])
        elif decision == "process":
            first_of.setdefault(uid, i)
    for i, decision in enumerate(decisions):
        if decision == "duplicate":
            twin = outcomes[first_of[originals[i][1] or ""]] if (originals[i][1] or "") in first_of else None
            if twin is None:  # its twin is in another batch of the same archive: filled in by the caller
                outcomes[i] = Outcome(first_index + i, DUPLICATE, None, "identical to another part", digests[i],
                                      originals[i][0], originals[i][1], originals[i][2])
                continue
            outcomes[i] = Outcome(first_index + i, DUPLICATE, None, f"identical to part {twin.index + 1}", digests[i],
                                  twin.original_study_uid, twin.original_sop_uid, twin.sop_class_uid, twin.study_uid,
                                  twin.series_uid, twin.sop_instance_uid, twin.object_uri, twin.sha256, twin.event_id)
    return EdgeResult(tuple(o for o in outcomes if o is not None), tuple(e for e in events if e is not None),
                      tickets=tuple(tickets))


def _open_ticket(results: Sequence[InstanceResult], store: ObjectStore, config: EdgeConfig) -> Path | None:
    """The outbox ticket for the objects this batch is about to store (before the first is stored)."""
    if config.outbox is None:
        return None
    planned = []
    for result in results:
        if result.status is Status.DEIDENTIFIED and result.encoded is not None:
            study = pydicom.dcmread(BytesIO(result.encoded), stop_before_pixels=True,
                                    specific_tags=["StudyInstanceUID"]).get("StudyInstanceUID")
            if study is None:
                continue  # cannot be described: quarantined as DEID_FAILED before anything is announced
            digest = hashlib.sha256(result.encoded).hexdigest()
            planned.append(PlannedObject(store.uri_for(digest, f"{config.project}/{study}"), digest,
                                         len(result.encoded), config.provider, config.project,
                                         config.deid_profile_version))
    return config.outbox.open_ticket(planned)


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(archives.CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _header_uids(path: Path) -> tuple[str | None, str | None, str | None]:
    """:func:`original_uids` read from the file's header only (the pixel data stays on disk)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"])
    except dicom_io.PARSE_ERRORS:
        return None, None, None
    values = (ds.get("StudyInstanceUID"), ds.get("SOPInstanceUID"), ds.get("SOPClassUID"))
    return tuple(str(v).strip() if v else None for v in values)  # type: ignore[return-value]


def keep_refused_upload(upload: Path, digest: str, config: EdgeConfig) -> str | None:
    """Keep a refused upload's bytes in the edge's quarantine (sealed like every original, content-addressed);
    the path relative to ``edge_dir``, or None for one over :data:`KEEP_REFUSED_MAX_BYTES` (sealing holds it
    whole in memory): the sender (or the drop folder's ``refused/`` folder) then keeps it."""
    if upload.stat().st_size > KEEP_REFUSED_MAX_BYTES:
        return None
    return keep_original(config.edge_dir, upload.read_bytes(), digest, config.sealer)


def _batches(sizes: Sequence[int]) -> list[range]:
    """Consecutive members in batches of at most BATCH members and BATCH_BYTES bytes (one member at least)."""
    batches, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= BATCH or total + size > BATCH_BYTES):
            batches.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


def ingest_files(files: Sequence[archives.Member], *, rules: Rules, pseudonymiser: Pseudonymiser, store: ObjectStore,
                 config: EdgeConfig, first_index: int = 0) -> EdgeResult:
    """Part-10 inputs that wait on disk (archive members, STOW-RS parts): settled across all of them first, then
    de-identified in batches bounded in count and bytes (only a batch is in memory at a time)."""
    members = list(files)
    outcomes: list[Outcome] = []
    events: list[BaseModel] = []
    tickets: list[Path] = []
    # Settle across all inputs first: each one's original SOP UID (from its header) and hash.
    member_uids = [(_header_uids(member.path), _file_sha256(member.path)) for member in members]
    counts: dict[str, int] = defaultdict(int)
    for (original, _) in member_uids:
        if original[1]:
            counts[original[1]] += 1
    keys = []
    for member, (original, digest) in zip(members, member_uids, strict=True):
        uid = original[1]
        if uid and counts[uid] > 1 and not dicom_io.read_part10(member.path.read_bytes()).ok:
            uid = None
        keys.append((uid, digest))
    decisions = settle(keys)
    offset = first_index
    released: dict[str, Outcome] = {}
    for chunk in _batches([member.path.stat().st_size for member in members]):
        result = ingest_instances([members[i].path.read_bytes() for i in chunk], rules=rules,
                                  pseudonymiser=pseudonymiser, store=store, config=config,
                                  labels=[members[i].display for i in chunk], first_index=offset + chunk.start,
                                  decisions=[decisions[i] for i in chunk])
        for outcome in result.outcomes:
            if outcome.status == ACCEPTED and outcome.original_sop_uid:
                released[outcome.original_sop_uid] = outcome
            outcomes.append(outcome)
        events += result.events
        tickets += result.tickets
    for n, outcome in enumerate(outcomes):
        twin = released.get(outcome.original_sop_uid or "")
        if outcome.status == DUPLICATE and twin is not None and outcome.object_uri is None:
            outcomes[n] = Outcome(outcome.index, DUPLICATE, None, f"identical to part {twin.index + 1}",
                                  outcome.input_sha256, twin.original_study_uid, twin.original_sop_uid,
                                  twin.sop_class_uid, twin.study_uid, twin.series_uid, twin.sop_instance_uid,
                                  twin.object_uri, twin.sha256, twin.event_id)
    outcomes.sort(key=lambda o: o.index)
    return EdgeResult(tuple(outcomes), tuple(events), tickets=tuple(tickets))


def ingest_stow_parts(parts: Sequence[SpooledPart], *, rules: Rules, pseudonymiser: Pseudonymiser, store: ObjectStore,
                      config: EdgeConfig, max_part_bytes: int) -> EdgeResult:
    """The parts of a STOW-RS request spooled to disk (:func:`nifi.edge.stow_rs.spool_multipart_related`): the
    ones on disk as :func:`ingest_files`; a part refused while streaming (over the part cap) is quarantined with
    its reason, its bytes not kept (they were never held)."""
    kept = [n for n, part in enumerate(parts) if part.path is not None]
    members = [archives.Member(f"part {n + 1}", parts[n].path) for n in kept]  # type: ignore[arg-type]
    result = ingest_files(members, rules=rules, pseudonymiser=pseudonymiser, store=store, config=config)
    outcomes = [replace(o, index=kept[o.index]) for o in result.outcomes]
    events: list[BaseModel] = list(result.events)
    refused = 0
    for n, part in enumerate(parts):
        if part.refused is not None:
            refused += 1
            outcome, event = _quarantine(
                n, None, part.sha256, part.refused,
                f"part {n + 1} is larger than the edge's part cap of {max_part_bytes} bytes", config,
                (None, None, None), {}, f"part {n + 1}", kept=(part.sha256, None))
            outcomes.append(outcome)
            events.append(event)
    outcomes.sort(key=lambda o: o.index)
    return EdgeResult(tuple(outcomes), tuple(events), unkept=refused, tickets=result.tickets)


def ingest_archive(archive: Path, work_dir: Path, *, rules: Rules, pseudonymiser: Pseudonymiser, store: ObjectStore,
                   config: EdgeConfig, limits: archives.Limits = archives.Limits()) -> EdgeResult:
    """A zip/tar(.gz) upload: safe extraction (``radlake.deid.archives``), members settled across the whole
    archive, then de-identified in batches bounded in count and bytes; refused members become quarantine
    outcomes and events, and the upload's own bytes are kept in the quarantine for them (members refused
    inside an archive, or the whole archive refused, exist nowhere else)."""
    identity = _file_sha256(archive)
    members, refusals = archives.extract(archive, work_dir, limits, display="archive")
    outcomes: list[Outcome] = []
    events: list[BaseModel] = []
    tickets: list[Path] = []
    stored_as = keep_refused_upload(archive, identity, config) if refusals else None
    for n, refusal in enumerate(refusals):
        member_id = hashlib.sha256(f"{identity}/{refusal.display}".encode()).hexdigest()
        outcome, event = _quarantine(n, None, member_id, str(refusal.reason), refusal.message, config,
                                     (None, None, None), {}, refusal.display,
                                     kept=(identity, stored_as) if stored_as else None)
        outcomes.append(outcome)
        events.append(event)
    result = ingest_files(members, rules=rules, pseudonymiser=pseudonymiser, store=store, config=config,
                          first_index=len(outcomes))
    outcomes = sorted([*outcomes, *result.outcomes], key=lambda o: o.index)
    events += result.events
    tickets += result.tickets
    return EdgeResult(tuple(outcomes), tuple(events), unkept=len(refusals) if refusals and stored_as is None else 0,
                      tickets=tuple(tickets))


# ------------------------------------------------------------------------------------------- manifests


@dataclass(frozen=True)
class ManifestRequest:
    upload_id: str
    study_uid: str  # as the provider knows it
    series: tuple[tuple[str, int], ...]


# The upload id travels in ``study manifest`` events: a digest, never a name a person typed.
UPLOAD_ID = re.compile(r"^[0-9a-f]{16,64}$")


def parse_manifest_request(body: bytes) -> tuple[bool, str | None, ManifestRequest | None]:
    """``(ok, reason, request)`` for ``{"upload_id", "study_uid", "series": [{"series_uid", "expected_instances"}]}``."""
    try:
        raw = json.loads(body)
        series = tuple((str(s["series_uid"]), int(s["expected_instances"])) for s in raw["series"])
        request = ManifestRequest(str(raw["upload_id"]), str(raw["study_uid"]), series)
    except (ValueError, KeyError, TypeError) as err:
        return False, f"not a study manifest: {type(err).__name__}: {err}", None
    if not request.series or any(n < 1 for _, n in series) or not request.upload_id or not request.study_uid:
        return False, "a manifest needs an upload id, a study UID and at least one series with >= 1 instance", None
    if not UPLOAD_ID.fullmatch(request.upload_id):
        return False, "an upload id is 16 to 64 lower-case hex digits (it goes on the bus: no free text)", None
    return True, None, request


def manifest_event(request: ManifestRequest, pseudonymiser: Pseudonymiser, config: EdgeConfig) -> StudyManifest:
    """The ``study manifest`` event, with the study and series UIDs pseudonymised like the instances'."""
    pseudonyms = pseudonymise_uids([request.study_uid, *(s for s, _ in request.series)], pseudonymiser,
                                   config.provider)
    study = pseudonyms[request.study_uid]
    totals: dict[str, int] = defaultdict(int)
    for series_uid, count in request.series:
        totals[pseudonyms[series_uid]] += count
    series = tuple(ManifestSeries(series_uid=s, expected_instances=n) for s, n in sorted(totals.items()))
    expected = sum(totals.values())
    identity = f"study.manifest/{config.provider}/{config.project}/{request.upload_id}/{study}/{expected}"
    try:
        return StudyManifest(
            event_id=str(uuid.uuid5(_NAMESPACE, identity)), provider=config.provider,
            data=StudyManifestData(project=config.project, study_uid=study, upload_id=request.upload_id,
                                   expected_instances=expected, series=series),
        )
    except ValidationError as err:
        raise ValueError(f"manifest does not fit the study manifest contract: {err}") from err
