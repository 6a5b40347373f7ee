"""Erasure of one patient from the lake and the object store, with a proof report (GDPR art. 17).

The patient is named as the provider knows them (their patient ID at that provider) and found by the pseudonym
the edges gave them: the project's keyed HMAC of (provider, patient ID). Then, in this order, so that an
interrupted run is finished by the next:

1. **find** every lake table (every Delta table under the lake root, whatever its layer) with a
   ``pseudo_patient_id`` column holding the pseudonym; the patient's studies are the ``study_uid`` values of
   those rows;
2. **collect** the objects those rows point at (instances, masks, SEG, SR, Grad-CAM: every ``*_uri`` column,
   the URIs inside silver's ``instances`` and inside ``candidates_json``);
3. **delete** the rows — by pseudonym, and by study in tables that carry ``study_uid`` but no pseudonym
   (radiomics events, gate quarantine) — one Delta commit per table;
4. **purge history**: vacuum each touched table with no retention (the files of older versions, which still
   hold the rows, are deleted), then checkpoint it and drop the older log entries (their file statistics can
   hold the pseudonym as a column minimum or maximum), so that time travel cannot bring the rows back;
5. **delete the objects**;
6. **scan**: read every data file and log entry of every table, and look for every collected object, for any
   remaining reference to the pseudonym, the studies or the objects. The report states what it found.

Purging history costs every touched table its time travel: datasets pinned to an older version of such a table
can no longer be read, and say so. Events on Kafka are not rewritten: see docs/governance.md for the rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from lake_schemas.errors import RadlakeError
from spark_jobs.maintenance import find_tables

PATIENT = "pseudo_patient_id"
PROJECT = "project"
STUDY = "study_uid"
_URI_INSIDE = ("object_uri", "gradcam_uri", "seg_uri", "sr_uri", "mask_uri")


@dataclass(frozen=True)
class Key:
    """What is erased: the rows whose ``column`` holds ``value`` (a patient's pseudonym, a project's name)."""

    column: str
    value: str

    @classmethod
    def patient(cls, pseudonym: str) -> Key:
        return cls(PATIENT, pseudonym)

    @classmethod
    def project(cls, name: str) -> Key:
        return cls(PROJECT, name)

    @property
    def needles(self) -> list[str]:
        """What the scan looks for: a pseudonym anywhere; a project's name only as the value of its column (in a
        row as the scan renders it, and in a log entry's statistics)."""
        if self.column == PATIENT:
            return [self.value]
        return [f'"{self.column}": "{self.value}"', f'"{self.column}":"{self.value}"']

    def __str__(self) -> str:
        return f"patient {self.value}" if self.column == PATIENT else f"{self.column} {self.value}"


class ErasureError(RadlakeError):
    """A step of an erasure failed; running the same erasure again finishes it."""


@dataclass
class TableErasure:
    table: str
    version_before: int
    version_after: int = -1
    rows_deleted: int = 0
    vacuumed_files: int = 0


@dataclass
class ErasureReport:
    subject: str
    studies: list[str] = field(default_factory=list)
    tables: list[TableErasure] = field(default_factory=list)
    objects_found: list[str] = field(default_factory=list)
    objects_deleted: int = 0
    remaining: list[str] = field(default_factory=list)  # what the final scan still found: empty when erased
    started_at: str = ""
    finished_at: str = ""

    @property
    def complete(self) -> bool:
        return not self.remaining

    def as_json(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "tables"},
                "tables": [t.__dict__ for t in self.tables], "complete": self.complete}

    def as_text(self) -> str:
        lines = [f"erasure of {self.subject} ({self.started_at} .. {self.finished_at})",
                 f"studies: {len(self.studies)}"]
        if not self.tables:
            lines.append("no lake table holds it: nothing was found, nothing removed")
        for t in self.tables:
            lines.append(f"  {t.table}: {t.rows_deleted} row(s) deleted, version {t.version_before} -> "
                         f"{t.version_after}, {t.vacuumed_files} old file(s) purged")
        lines.append(f"objects: {len(self.objects_found)} referenced, {self.objects_deleted} deleted")
        lines.append("post-erasure scan: " + ("no reference left" if self.complete else
                                               f"{len(self.remaining)} reference(s) left:"))
        lines += [f"  {r}" for r in self.remaining]
        return "\n".join(lines) + "\n"


def _quote(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))


def _object_uris(rows: list[dict]) -> set[str]:
    found: set[str] = set()

    def visit(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, k)
        elif isinstance(value, list):
            for v in value:
                visit(v, key)
        elif isinstance(value, str) and value:
            if key.endswith("_uri") or key in _URI_INSIDE:
                found.add(value)
            elif key == "candidates_json":
                try:
                    visit(json.loads(value))
                except ValueError:
                    pass

    for row in rows:
        visit(row)
    return found


def _columns(table: DeltaTable) -> set[str]:
    return {f.name for f in table.schema().fields}


def _matching(table: DeltaTable, key: Key, studies: set[str]) -> list[dict]:
    columns = _columns(table)
    dataset = table.to_pyarrow_dataset()
    expression = None
    # Cast: a table's files may store a string column as string_view (another writer), which pyarrow does
    # not compare with a string scalar.
    if key.column in columns:
        expression = pc.field(key.column).cast(pa.string()) == key.value
    if STUDY in columns and studies:
        by_study = pc.field(STUDY).cast(pa.string()).isin(sorted(studies))
        expression = by_study if expression is None else (expression | by_study)
    return [] if expression is None else dataset.to_table(filter=expression).to_pylist()


def _predicate(table: DeltaTable, key: Key, studies: set[str]) -> str | None:
    columns, parts = _columns(table), []
    if key.column in columns:
        parts.append(f"{key.column} = {_quote([key.value])}")
    if STUDY in columns and studies:
        parts.append(f"{STUDY} IN ({_quote(studies)})")
    return " OR ".join(parts) or None


def _purge_history(table: DeltaTable) -> int:
    """Delete every file no longer in the current version, and every log entry before a new checkpoint."""
    removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    table.create_checkpoint()
    log_dir = Path(table.table_uri.removeprefix("file://")) / "_delta_log"
    current = table.version()
    for entry in log_dir.iterdir():
        stem = entry.name.split(".")[0]
        if stem.isdigit() and int(stem) < current and (entry.name.endswith(".json") or ".checkpoint" in entry.name):
            entry.unlink()
    for crc in log_dir.glob("*.crc"):
        crc.unlink()
    return len(removed)


def _scan(lake_root: str, key: Key, studies: set[str], objects: set[str]) -> list[str]:
    """Every place under the lake (data files and logs, current or not) and every object still referring to
    the subject."""
    remaining = _references(lake_root, [*key.needles, *sorted(studies)],
                            skip=tuple(str(Path(lake_root) / name) for name in KEPT))
    for uri in sorted(objects):
        fs, object_path = fsspec.core.url_to_fs(uri)
        if fs.exists(object_path):
            remaining.append(uri)
    return remaining


def _references(root: str, needles: list[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Files under ``root`` that mention any needle: Parquet files are read (their pages are compressed),
    log files searched as text."""
    remaining: list[str] = []
    for current, _dirs, files in os.walk(root):
        if skip and current.startswith(skip):
            continue
        for name in files:
            path = Path(current) / name
            if name.endswith(".parquet"):
                try:
                    text = json.dumps(pq.read_table(path).to_pylist(), default=str)
                except (OSError, ValueError) as err:
                    remaining.append(f"{path}: unreadable ({err})")
                    continue
            elif name.endswith((".json", ".crc")):
                text = path.read_text(errors="replace")
            else:
                continue
            if any(needle in text for needle in needles):
                remaining.append(str(path))
    return remaining


# Governance tables that name erased patients on purpose (the erasure records, the deny list) or hold no
# patient data by construction (the audit trail): neither searched nor scanned.
KEPT = ("governance/erasures", "governance/audit")


def find(lake_root: str, key: Key, *, known_studies: Iterable[str] = (),
         known_objects: Iterable[str] = ()) -> tuple[set[str], set[str]]:
    """The subject's studies and the objects their rows point at (with what earlier runs found)."""
    tables = _tables(lake_root)
    studies, objects = set(known_studies), set(known_objects)
    for table in tables.values():  # the key first: it names the studies
        if key.column in _columns(table):
            studies |= {r[STUDY] for r in _matching(table, key, set()) if r.get(STUDY)}
    for table in tables.values():
        objects |= _object_uris(_matching(table, key, studies))
    return studies, objects


def _tables(lake_root: str) -> dict[str, DeltaTable]:
    return {name: DeltaTable(f"{lake_root}/{name}") for name in find_tables(lake_root) if name not in KEPT}


def erase(lake_root: str, key: Key, studies: set[str], objects: set[str]) -> ErasureReport:
    """Erase every row of the subject (by its key, and by ``studies``) from the lake at ``lake_root`` and
    the ``objects``, purge the touched tables' history, and scan. Idempotent: a run after a complete one
    deletes nothing and scans again; a run after an interrupted one finishes it (given what :func:`find`
    found the first time: the rows that named the objects may be gone)."""
    report = ErasureReport(subject=str(key), started_at=datetime.now(UTC).isoformat())
    tables = _tables(lake_root)
    report.studies, report.objects_found = sorted(studies), sorted(objects)
    for name, table in tables.items():
        predicate = _predicate(table, key, studies)
        if predicate is None:
            continue
        rows = _matching(table, key, studies)
        # An earlier, interrupted run may have deleted the rows but not yet purged the history that holds them.
        if not rows and not _references(f"{lake_root}/{name}", [*key.needles, *studies]):
            continue
        entry = TableErasure(name, table.version())
        try:
            if rows:
                metrics = table.delete(predicate)
                entry.rows_deleted = int(metrics.get("num_deleted_rows", len(rows)))
            entry.vacuumed_files = _purge_history(table)
        except (DeltaError, OSError) as err:
            raise ErasureError(f"erasing from {name} failed ({err}); run the erasure again to finish it") from err
        entry.version_after = table.version()
        report.tables.append(entry)
    for uri in sorted(objects):
        fs, object_path = fsspec.core.url_to_fs(uri)
        if fs.exists(object_path):
            fs.rm(object_path)
            report.objects_deleted += 1
    report.remaining = _scan(lake_root, key, studies, objects)
    report.finished_at = datetime.now(UTC).isoformat()
    return report
