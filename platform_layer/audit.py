"""The platform's audit trail: an append-only, hash-chained Delta table, ``governance/audit`` in the lake.

Every privileged action — a role granted or revoked, a project or provider made or removed, a quarantined
original or its identifying fields opened — appends one row *before* it takes effect, and the command is
refused when the row cannot be written (fail closed). An action that then fails appends a second row with
outcome ``failed`` naming the first. Each row carries the hash of the previous row, so an edited, deleted,
inserted or reordered row breaks the chain at that row: :func:`verify` recomputes it and says where.

Vault's own audit log is linked: a command that calls Vault for an audited action sends the row's
``entry_id`` as the request header ``X-Radlake-Audit-Id``, which Vault records in clear next to its request
id (the header is configured as audited by ``radlake stack up``).

Appends are serialised by a lock file in the state dir (one writer at a time on this host), and the chain's
head (sequence number, hash, table version) is remembered there, so an append reads the table only when
someone else wrote since. The table and its head are the platform's: both live under the state dir, locked
down to its owner (``platform_layer.state``).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lake_schemas.errors import RadlakeError
from lake_schemas.tables import AUDIT_TRAIL
from platform_layer import user_session
from platform_layer.governance import arrow_schema
from platform_layer.settings import Settings
from platform_layer.state import write_private

VAULT_AUDIT_HEADER = "X-Radlake-Audit-Id"
GENESIS = "0" * 64

# The columns a row's hash covers, in this order (everything but the hash itself).
_HASHED = ("seq", "entry_id", "recorded_at", "actor", "host_user", "origin", "action", "target", "outcome",
           "details", "prev_hash")
SCHEMA = arrow_schema(AUDIT_TRAIL)


class AuditError(RadlakeError):
    """The audit trail could not be written or read; the action that needed it did not happen."""


@dataclass(frozen=True)
class AuditRecord:
    """One row of the trail, as stored."""

    seq: int
    entry_id: str
    recorded_at: datetime
    actor: str
    host_user: str
    origin: str
    action: str
    target: str
    outcome: str
    details: str
    prev_hash: str
    hash: str = field(default="")

    def with_hash(self) -> AuditRecord:
        return AuditRecord(**{**self.__dict__, "hash": row_hash(self)})


def row_hash(record: AuditRecord) -> str:
    """SHA-256 over the row's canonical JSON (its hashed columns in a fixed order; times as ISO-8601 UTC µs)."""
    values = []
    for name in _HASHED:
        value = getattr(record, name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        values.append(value)
    return hashlib.sha256(json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    entry_id: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.seq} ({self.entry_id}): {self.problem}"


def chain_breaks(records: list[AuditRecord]) -> list[ChainBreak]:
    """Where the chain of ``records`` (in stored order) breaks; empty when every row is intact and linked."""
    breaks: list[ChainBreak] = []
    previous_hash, expected_seq = GENESIS, 1
    for record in sorted(records, key=lambda r: r.seq):
        if record.seq != expected_seq:
            missing = f"rows {expected_seq}..{record.seq - 1} are missing" if record.seq > expected_seq \
                else f"sequence number {record.seq} appears again"
            breaks.append(ChainBreak(record.seq, record.entry_id, missing))
        if record.prev_hash != previous_hash:
            breaks.append(ChainBreak(record.seq, record.entry_id,
                                     "does not follow the row before it (its previous-row hash differs)"))
        if row_hash(record) != record.hash:
            breaks.append(ChainBreak(record.seq, record.entry_id, "its contents do not match its hash (edited)"))
        previous_hash, expected_seq = record.hash, record.seq + 1
    return breaks


def table_path(settings: Settings) -> str:
    return f"{settings.resolved_lake_uri.rstrip('/')}/{AUDIT_TRAIL.relative_path}"


def _head_file(settings: Settings) -> Path:
    """Where this host remembers the head of the trail at :func:`table_path` (one file per trail location)."""
    where = hashlib.sha256(table_path(settings).encode()).hexdigest()[:16]
    return settings.state_dir / "audit" / f"head-{where}.json"


def current_actor(settings: Settings) -> str:
    """Who runs this command: the logged-in radlake user (``radlake login``) when there is one, else the host
    user (a platform command run by an administrator on the platform host)."""
    try:
        return f"user:{user_session.load(settings.token_file).username}"
    except (RadlakeError, OSError, ValueError, KeyError):
        return f"host:{getpass.getuser()}"


def _origin() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


@contextlib.contextmanager
def _writer_lock(settings: Settings) -> Iterator[None]:
    folder = settings.state_dir / "audit"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(_head_file(settings).with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# The appender's table per process, used under the writer lock only: an append then reads just the log
# entries added since the last one.
_APPENDING: dict[str, DeltaTable] = {}


def _open(path: str) -> DeltaTable | None:
    try:
        return DeltaTable(path)
    except TableNotFoundError:
        return None


def _open_for_append(path: str) -> DeltaTable | None:
    table = _APPENDING.get(path)
    if table is not None:
        table.update_incremental()
        return table
    table = _open(path)
    if table is not None:
        _APPENDING[path] = table
    return table


def _head(settings: Settings, table: DeltaTable | None) -> tuple[int, str]:
    """(last sequence number, its hash): from the remembered head when the table has not changed since."""
    if table is None:
        return 0, GENESIS
    try:
        head = json.loads(_head_file(settings).read_text())
        if head["version"] == table.version():
            return int(head["seq"]), str(head["hash"])
    except (OSError, ValueError, KeyError):
        pass
    columns = table.to_pyarrow_table(columns=["seq", "hash"]).to_pylist()
    if not columns:
        return 0, GENESIS
    last = max(columns, key=lambda row: row["seq"])
    return int(last["seq"]), str(last["hash"])


def append(settings: Settings, action: str, target: str, *, outcome: str = "allowed",
           details: Mapping[str, Any] | None = None, actor: str | None = None) -> AuditRecord:
    """Append one row and return it (with its ``entry_id`` for Vault's header). ``details`` must hold no PHI:
    names of roles, providers, projects, digests, counts — never a patient's identifiers."""
    path = table_path(settings)
    try:
        with _writer_lock(settings):
            table = _open_for_append(path)
            seq, previous = _head(settings, table)
            record = AuditRecord(
                seq=seq + 1, entry_id=str(uuid.uuid4()), recorded_at=datetime.now(UTC),
                actor=actor or current_actor(settings), host_user=getpass.getuser(), origin=_origin(),
                action=action, target=target, outcome=outcome,
                details=json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":")),
                prev_hash=previous,
            ).with_hash()
            rows = pa.Table.from_pylist([record.__dict__], schema=SCHEMA)
            write_deltalake(table if table is not None else path, rows, mode="append",
                            commit_properties=CommitProperties(custom_metadata={"radlake.audit.seq": str(record.seq)}))
            version = (table if table is not None else _open_for_append(path)).version()  # type: ignore[union-attr]
            write_private(_head_file(settings), json.dumps({"seq": record.seq, "hash": record.hash,
                                                             "version": version}))
    except (DeltaError, OSError, pa.ArrowException) as err:
        raise AuditError(f"the audit trail at {path} could not be written ({type(err).__name__}: {err}); "
                         f"{action} was not done") from err
    return record


@contextlib.contextmanager
def recorded(settings: Settings, action: str, target: str, *, details: Mapping[str, Any] | None = None,
             actor: str | None = None) -> Iterator[AuditRecord]:
    """Audit an action before it takes effect; when it then fails, a second row (outcome ``failed``, the
    error's type only) names the first. Nothing happens when the first row cannot be written. ``actor``: who
    acts, when it is not this process's user (a person logged in to the admin console)."""
    record = append(settings, action, target, details=details, actor=actor)
    try:
        yield record
    except BaseException as err:
        append(settings, action, target, outcome="failed",
               details={"entry_id": record.entry_id, "error": type(err).__name__}, actor=actor)
        raise


def link_vault(client: Any, record: AuditRecord) -> Any:
    """Send the row's id with every request of this hvac client, so Vault's audit log carries it."""
    client.adapter.session.headers[VAULT_AUDIT_HEADER] = record.entry_id
    return client


def read(settings: Settings) -> list[AuditRecord]:
    """Every row of the trail, in sequence order (empty when nothing was ever audited)."""
    table = _open(table_path(settings))
    if table is None:
        return []
    try:
        rows = table.to_pyarrow_table().to_pylist()
    except (DeltaError, OSError, pa.ArrowException) as err:
        raise AuditError(f"the audit trail at {table_path(settings)} could not be read: {err}") from err
    return sorted((AuditRecord(**{name: row[name] for name, _ in AUDIT_TRAIL.columns}) for row in rows),
                  key=lambda r: r.seq)


@dataclass(frozen=True)
class Verification:
    rows: int
    breaks: list[ChainBreak]
    rewrites: list[str]  # commits of the table that were not appends (a delete, an overwrite, a merge)
    truncated: str = ""  # the remembered head is beyond the table's last row
    unreadable: str = ""  # a data file of the table was replaced or damaged

    @property
    def intact(self) -> bool:
        return not (self.breaks or self.rewrites or self.truncated or self.unreadable)


def verify(settings: Settings) -> Verification:
    """Recompute the chain, check that every commit of the table was an append, and that the table still
    reaches the head this host remembers (a deleted tail leaves no break in the chain itself)."""
    try:
        records = read(settings)
    except AuditError as err:
        return Verification(0, [], [], unreadable=str(err))
    table = _open(table_path(settings))
    rewrites: list[str] = []
    if table is not None:
        for commit in table.history():
            parameters = commit.get("operationParameters") or {}
            appended = commit.get("operation") in {"WRITE", "CREATE TABLE"} and \
                str(parameters.get("mode", "Append")).lower() in {"append", "errorifexists"}
            if not appended:
                rewrites.append(f"version {commit.get('version')}: {commit.get('operation')} "
                                f"{json.dumps(parameters, sort_keys=True)}")
    truncated = ""
    try:
        head = json.loads(_head_file(settings).read_text())
        last = records[-1].seq if records else 0
        if int(head["seq"]) > last:
            truncated = f"the trail ends at row {last}, but row {head['seq']} was written (hash {head['hash']})"
    except (OSError, ValueError, KeyError):
        pass
    return Verification(len(records), chain_breaks(records), rewrites, truncated)
