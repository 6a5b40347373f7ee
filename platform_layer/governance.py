"""Datasets and grants: what a data scientist may read, kept in the lake's ``governance`` tables.

A **dataset** is a named cohort of one project: a boolean SQL filter (and optionally a list of columns) over
one lake table, pinned to the Delta version that table had when the dataset was made. Reading it always
gives the rows of that version of the project, whatever arrived since. A **grant** lets one user read one
dataset until a date; revoking it keeps the row (with ``revoked_at``) so the history stays readable.

Both tables are written by platform commands only (``radlake dataset``, ``radlake grant``/``revoke``) through
delta-rs, each change audited first (``platform_layer.audit``). The lake gateway (``spark_jobs.gateway``)
decides every read from them.

**Filters cannot escape their project.** A filter runs in a DuckDB connection that holds one relation,
``source`` — the pinned table version already cut to the dataset's project — with access to files, the
network and extensions switched off and the configuration locked. A filter that names any other table, reads
a file (``read_parquet(...)``) or holds a second statement fails when the dataset is made and at every read.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import duckdb
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lake_schemas.errors import RadlakeError
from lake_schemas.tables import DATASETS, GRANTS, SNAPSHOTS, LakeTableSpec
from platform_layer.settings import Settings

# Tables a dataset may be cut from: they carry a ``project`` column and no identifying data.
SOURCE_TABLES = ("silver/studies", "silver/series")
DATASET_NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")

_SCALARS = {"BIGINT": pa.int64(), "STRING": pa.string(), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
            "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}


class GovernanceError(RadlakeError):
    """A dataset or grant that cannot be made, found or used; the message says which and why."""


class AccessRefused(GovernanceError):
    """The caller holds no active grant for what they asked to read."""


def arrow_type(spark_type: str) -> pa.DataType:
    """The Arrow type of a column type used in the governance tables (scalars and ``ARRAY<scalar>``)."""
    if spark_type.startswith("ARRAY<") and spark_type.endswith(">"):
        return pa.list_(arrow_type(spark_type[6:-1]))
    return _SCALARS[spark_type]


def arrow_schema(spec: LakeTableSpec) -> pa.Schema:
    return pa.schema([(name, arrow_type(kind)) for name, kind in spec.columns])


def lake_table_path(settings: Settings, relative: str) -> str:
    return f"{settings.resolved_lake_uri.rstrip('/')}/{relative}"


# Each governance table as this process last read it, refreshed from the log entries added since: a gateway
# decides every call from the current grants without reading the whole table again.
_READ: dict[str, tuple[DeltaTable, int, tuple, list[dict]]] = {}
_READ_LOCK = threading.Lock()


def table_rows(settings: Settings, spec: LakeTableSpec) -> list[dict]:
    """Every row of a governance table as of its latest version (none when it does not exist yet)."""
    path = lake_table_path(settings, spec.relative_path)
    with _READ_LOCK:
        try:
            return _current_rows(path)
        except TableNotFoundError:
            _READ.pop(path, None)
            return []
        except (DeltaError, OSError) as err:
            _READ.pop(path, None)
            raise GovernanceError(f"the {spec.relative_path} table could not be read: {err}") from err


def _log_entry(path: str, version: int) -> tuple:
    """What identifies the table's log entry ``version`` on its store: a table deleted and made again under
    the same path (its version numbers start again) does not pass for the one read before."""
    fs, root = fsspec.core.url_to_fs(path)
    info = fs.info(f"{root}/_delta_log/{version:020d}.json")
    return info.get("size"), info.get("mtime") or info.get("LastModified"), info.get("ino")


def _current_rows(path: str) -> list[dict]:
    cached = _READ.get(path)
    if cached is not None:
        table, version, entry, rows = cached
        try:
            table.update_incremental()
            fresh = table.version() == version and _log_entry(path, version) == entry
        except (DeltaError, OSError):
            fresh = False
        if fresh:
            return rows
    table = DeltaTable(path)
    rows = table.to_pyarrow_table().to_pylist()
    _READ[path] = (table, table.version(), _log_entry(path, table.version()), rows)
    return rows


def write_rows(settings: Settings, spec: LakeTableSpec, rows: list[dict], *, replace_key: str | None = None) -> None:
    """Append rows to a governance table, or replace those with the same ``replace_key`` (one commit)."""
    path = lake_table_path(settings, spec.relative_path)
    table = pa.Table.from_pylist(rows, schema=arrow_schema(spec))
    try:
        if replace_key is None:
            write_deltalake(path, table, mode="append")
        else:
            keys = ", ".join("'" + str(r[replace_key]).replace("'", "''") + "'" for r in rows)
            write_deltalake(path, table, mode="overwrite", predicate=f"`{replace_key}` IN ({keys})")
    except (DeltaError, OSError, pa.ArrowException) as err:
        raise GovernanceError(f"the {spec.relative_path} table could not be written: {err}") from err


# -- datasets -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    dataset: str
    project: str
    source_table: str
    columns: list[str]
    filter: str
    source_version: int
    description: str
    created_by: str
    created_at: datetime

    @property
    def sql(self) -> str:
        selected = ", ".join(f'"{c}"' for c in self.columns) if self.columns else "*"
        return f"SELECT {selected} FROM source WHERE ({self.filter})"


def datasets(settings: Settings) -> list[Dataset]:
    return sorted((Dataset(**row) for row in table_rows(settings, DATASETS)), key=lambda d: d.dataset)


def dataset(settings: Settings, name: str) -> Dataset:
    found = [d for d in datasets(settings) if d.dataset == name]
    if not found:
        raise GovernanceError(f"no dataset {name!r} (`radlake dataset list`)")
    return found[0]


def _project_rows(settings: Settings, item: Dataset) -> pa.RecordBatchReader:
    """The pinned version of the dataset's table, cut to its project (the only rows a filter can see)."""
    try:
        source = DeltaTable(lake_table_path(settings, item.source_table), version=item.source_version)
        missing = [uri for uri in source.file_uris() if not _exists(uri)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of its data files are gone")
        scanner = source.to_pyarrow_dataset().scanner(filter=pc.field("project") == item.project)
    except (DeltaError, OSError) as err:
        raise GovernanceError(f"dataset {item.dataset}: {item.source_table} version {item.source_version} "
                              f"cannot be read ({err}); it was vacuumed (or erased) away") from err
    return scanner.to_reader()


def _exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return bool(fs.exists(path))


def _no_rows(settings: Settings, item: Dataset) -> pa.Table:
    """The dataset's source table version with no rows: what a filter is checked and a schema derived on."""
    try:
        source = DeltaTable(lake_table_path(settings, item.source_table), version=item.source_version)
    except (DeltaError, OSError) as err:
        raise GovernanceError(f"dataset {item.dataset}: {item.source_table} version {item.source_version} "
                              f"cannot be read ({err}); it may have been vacuumed") from err
    return pa.schema(source.schema().to_arrow()).empty_table()


def read_schema(settings: Settings, item: Dataset) -> pa.Schema:
    """The schema of the dataset's rows (its columns, with the lake's types)."""
    return _select(item, _no_rows(settings, item)).schema


# The position of each row in the project's cut: what a filter's query returns instead of the rows themselves.
_ROW = "__radlake_row"


def _select(item: Dataset, rows: pa.Table) -> pa.Table:
    """The rows that pass the dataset's filter, with its columns. DuckDB only decides *which* rows (it reads
    the columns the filter names and returns their positions); the rows themselves are taken by Arrow,
    so they keep the lake's types and are never converted twice."""
    numbered = rows.append_column(_ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    con = duckdb.connect(config={"enable_external_access": False, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        con.register("source", numbered)
        con.execute("SET lock_configuration = true")
        chosen = con.sql(f'SELECT "{_ROW}" FROM source WHERE ({item.filter})').fetchnumpy()[_ROW]
    except duckdb.Error as err:
        raise _filter_error(item, err) from err
    finally:
        con.close()
    unknown = [c for c in item.columns if c not in rows.column_names]
    if unknown:
        raise GovernanceError(f"dataset {item.dataset}: {item.source_table} has no column(s) {', '.join(unknown)}")
    keep = np.zeros(rows.num_rows, dtype=bool)
    keep[chosen] = True  # a mask keeps the rows in their order, and filters faster than a take
    return rows.filter(keep).select(item.columns or rows.column_names)


def _filter_error(item: Dataset, err: duckdb.Error) -> GovernanceError:
    return GovernanceError(f"dataset {item.dataset}: its filter does not run over {item.source_table} "
                           f"alone ({type(err).__name__}: {str(err).splitlines()[0]})")


def _run_filter(item: Dataset, rows: pa.RecordBatchReader | pa.Table, *, ordered: bool = False) -> pa.Table:
    con = duckdb.connect(config={"enable_external_access": False, "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        con.register("source", rows)
        con.execute("SET lock_configuration = true")
        return con.sql(item.sql + (" ORDER BY ALL" if ordered else "")).to_arrow_table()
    except duckdb.Error as err:
        raise _filter_error(item, err) from err
    finally:
        con.close()


def read(settings: Settings, item: Dataset) -> pa.Table:
    """The dataset's rows (its columns, its filter, its pinned version and project): the platform's read,
    for the gateway and for checks. Whoever calls it has already decided the caller may see them."""
    return _select(item, _project_rows(settings, item).read_all())


def create(settings: Settings, name: str, project: str, source_table: str, where: str, *,
           columns: Sequence[str] = (), description: str = "", created_by: str) -> Dataset:
    if not DATASET_NAME.match(name):
        raise GovernanceError(f"{name!r} is not a dataset name ({DATASET_NAME.pattern})")
    if source_table not in SOURCE_TABLES:
        raise GovernanceError(f"a dataset is cut from one of {', '.join(SOURCE_TABLES)}, not {source_table!r}")
    if ";" in where:
        raise GovernanceError("a dataset filter is one boolean expression: ';' is not allowed")
    if any(d.dataset == name for d in datasets(settings)):
        raise GovernanceError(f"dataset {name!r} exists already; datasets are never changed, make a new one")
    try:
        version = DeltaTable(lake_table_path(settings, source_table)).version()
    except TableNotFoundError as err:
        raise GovernanceError(f"the lake has no {source_table} table yet") from err
    item = Dataset(dataset=name, project=project, source_table=source_table, columns=list(columns),
                   filter=where, source_version=version, description=description, created_by=created_by,
                   created_at=datetime.now(UTC))
    # The filter must run where reads will run it: over the project's rows alone, in the locked connection.
    read_schema(settings, item)
    write_rows(settings, DATASETS, [item.__dict__])
    return item


# -- grants -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grant:
    grant_id: str
    user: str
    dataset: str
    granted_by: str
    granted_at: datetime
    until: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.until


def grants(settings: Settings, *, user: str | None = None, dataset_name: str | None = None) -> list[Grant]:
    found = [Grant(**row) for row in table_rows(settings, GRANTS)]
    return sorted((g for g in found if (user is None or g.user == user)
                   and (dataset_name is None or g.dataset == dataset_name)), key=lambda g: g.granted_at)


def grant(settings: Settings, user: str, dataset_name: str, until: datetime, *, granted_by: str) -> Grant:
    dataset(settings, dataset_name)  # it must exist
    now = datetime.now(UTC)
    if until <= now:
        raise GovernanceError(f"--until {until.isoformat()} is not in the future")
    item = Grant(grant_id=str(uuid.uuid4()), user=user, dataset=dataset_name, granted_by=granted_by,
                 granted_at=now, until=until)
    write_rows(settings, GRANTS, [item.__dict__])
    return item


def revoke(settings: Settings, user: str | None, dataset_name: str, *, revoked_by: str) -> list[Grant]:
    """End every active grant of ``dataset_name`` to ``user`` (``None``: to anyone); the grants ended (none:
    nothing to do)."""
    now = datetime.now(UTC)
    ended = [Grant(**{**g.__dict__, "revoked_by": revoked_by, "revoked_at": now})
             for g in grants(settings, user=user, dataset_name=dataset_name) if g.active(now)]
    if ended:
        write_rows(settings, GRANTS, [g.__dict__ for g in ended], replace_key="grant_id")
    return ended


def readable(settings: Settings, user: str, now: datetime | None = None) -> list[Dataset]:
    """The datasets ``user`` holds an active grant for."""
    moment = now or datetime.now(UTC)
    names = {g.dataset for g in grants(settings, user=user) if g.active(moment)}
    return [d for d in datasets(settings) if d.dataset in names]


def authorise(settings: Settings, user: str, name: str, now: datetime | None = None) -> Dataset:
    """The dataset, when ``user`` holds an active grant for it; :class:`AccessRefused` otherwise — the same
    answer whether the dataset does not exist, belongs to another project or the grant expired, so a refusal
    tells nothing about what exists."""
    moment = now or datetime.now(UTC)
    if not any(g.active(moment) for g in grants(settings, user=user, dataset_name=name)):
        raise AccessRefused(f"{user} holds no active grant to read {name!r}")
    return dataset(settings, name)


# -- citable snapshots --------------------------------------------------------------------------------------

PID_PREFIX = "radlake:"


@dataclass(frozen=True)
class Snapshot:
    pid: str
    dataset: str
    project: str
    source_table: str
    source_version: int
    sql: str
    rows: int
    content_sha256: str
    deid_profile_versions: list[str]
    published_by: str
    published_at: datetime
    metadata: str  # DataCite-shaped JSON


def _canonical_parquet(table: pa.Table) -> bytes:
    """The rows as Parquet with fixed writer settings: the same rows give the same bytes (same pyarrow)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", compression_level=3, use_dictionary=True,
                   write_statistics=True, row_group_size=1 << 20, store_schema=True)
    return buffer.getvalue()


def _snapshot_bytes(settings: Settings, item: Dataset) -> tuple[pa.Table, bytes]:
    rows = _run_filter(item, _project_rows(settings, item), ordered=True)  # ORDER BY ALL: one order, always
    return rows, _canonical_parquet(rows)


def snapshots(settings: Settings, dataset_name: str | None = None) -> list[Snapshot]:
    found = [Snapshot(**row) for row in table_rows(settings, SNAPSHOTS)]
    return sorted((s for s in found if dataset_name is None or s.dataset == dataset_name), key=lambda s: s.pid)


def resolve(settings: Settings, pid: str) -> Snapshot:
    found = [s for s in snapshots(settings) if s.pid == pid]
    if not found:
        raise GovernanceError(f"no snapshot {pid!r} (PIDs look like {PID_PREFIX}DATASET/N: "
                              "`radlake dataset show DATASET` lists them)")
    return found[0]


# What derived data of a snapshot's studies was computed with: the radiomics settings and code, the models.
_DERIVED = {"radiomics": ("gold/radiomics_features", ("settings_hash", "code_version")),
            "models": ("gold/predictions", ("model_name", "model_version"))}


def _derived_versions(settings: Settings, item: Dataset) -> dict[str, dict]:
    """For each derived table: its current version and the distinct settings (or models) of the dataset's
    studies in it, so a citation says which radiomics settings and model versions its features and
    predictions came from (and which table version to read them at)."""
    studies = _select(replace(item, columns=["study_uid"]), _project_rows(settings, item).read_all())
    wanted = sorted(set(studies.column("study_uid").to_pylist()))
    found: dict[str, dict] = {}
    for kind, (relative, columns) in _DERIVED.items():
        try:
            table = DeltaTable(lake_table_path(settings, relative))
        except TableNotFoundError:
            continue
        except (DeltaError, OSError) as err:
            raise GovernanceError(f"the {relative} table could not be read: {err}") from err
        rows = table.to_pyarrow_dataset().to_table(
            columns=list(columns), filter=(pc.field("project").cast(pa.string()) == item.project)
            & pc.field("study_uid").cast(pa.string()).isin(wanted))
        distinct = sorted({tuple(str(v) for v in row.values()) for row in rows.to_pylist()})
        found[kind] = {"table": relative, "table_version": table.version(),
                       "values": [dict(zip(columns, values, strict=True)) for values in distinct]}
    return found


def publish(settings: Settings, name: str, *, published_by: str, creators: Sequence[str] = (),
            title: str = "") -> Snapshot:
    """Freeze the dataset under a new persistent identifier: its table version, the rows' content hash and
    count, the de-identification profile versions in them, the radiomics settings and model versions of its
    studies' features and predictions (with those tables' versions), and DataCite-shaped metadata."""
    item = dataset(settings, name)
    rows, data = _snapshot_bytes(settings, item)
    number = len(snapshots(settings, name)) + 1
    pid = f"{PID_PREFIX}{name}/{number}"
    profiles: list[str] = []
    if "deid_profile_versions" in rows.column_names:
        profiles = sorted({v for values in rows.column("deid_profile_versions").to_pylist() for v in values or []})
    now = datetime.now(UTC)
    metadata = {
        "identifier": {"identifier": pid, "identifierType": "radlake-local"},
        "creators": [{"name": c} for c in creators] or [{"name": published_by}],
        "titles": [{"title": title or item.description or name}],
        "publisher": "radlake", "publicationYear": now.year,
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "imaging cohort (de-identified)"},
        "subjects": [{"subject": f"project {item.project}"}],
        "dates": [{"date": now.isoformat(), "dateType": "Issued"}],
        "formats": ["application/vnd.apache.parquet"], "sizes": [f"{rows.num_rows} rows", f"{len(data)} bytes"],
        "descriptions": [{"description": f"{item.sql} over {item.source_table} version {item.source_version} "
                                         f"of project {item.project}", "descriptionType": "Methods"}],
        "radlake": {"source_table": item.source_table, "source_version": item.source_version,
                    "content_sha256": hashlib.sha256(data).hexdigest(), "deid_profile_versions": profiles,
                    "derived": _derived_versions(settings, item), "pyarrow": pa.__version__},
    }
    snapshot = Snapshot(pid=pid, dataset=name, project=item.project, source_table=item.source_table,
                        source_version=item.source_version, sql=item.sql, rows=rows.num_rows,
                        content_sha256=hashlib.sha256(data).hexdigest(), deid_profile_versions=profiles,
                        published_by=published_by, published_at=now, metadata=json.dumps(metadata, sort_keys=True))
    write_rows(settings, SNAPSHOTS, [snapshot.__dict__])
    return snapshot


def materialise(settings: Settings, pid: str) -> tuple[Snapshot, bytes]:
    """The snapshot's rows again, as the same Parquet bytes; :class:`GovernanceError` when they cannot be
    reproduced (the table version was vacuumed or erased away, or the rows no longer hash the same)."""
    snapshot = resolve(settings, pid)
    item = dataset(settings, snapshot.dataset)
    try:
        _, data = _snapshot_bytes(settings, item)
    except GovernanceError as err:
        raise GovernanceError(f"{pid} cannot be reproduced: {err}") from err
    except OSError as err:  # a data file of that version is gone
        raise GovernanceError(f"{pid} cannot be reproduced: {item.source_table} version {item.source_version} "
                              f"is no longer complete ({err})") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != snapshot.content_sha256:
        raise GovernanceError(f"{pid} cannot be reproduced: its rows now hash to {digest}, published as "
                              f"{snapshot.content_sha256} (rows of that version were erased, or another "
                              f"pyarrow writes Parquet differently: published with "
                              f"{json.loads(snapshot.metadata)['radlake']['pyarrow']})")
    return snapshot, data
