"""The audit trail's hash chain: appends link, and every kind of tampering is found and named."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from apps.audit import main as audit_cli
from platform_layer import audit
from platform_layer.settings import Settings


@pytest.fixture()
def settings(tmp_path):
    return Settings(state_dir=tmp_path / "state", token_file=tmp_path / "no-token.json")


def _fill(settings, n=5):
    return [audit.append(settings, "role.grant", f"user u{i} role project:p:reader", details={"i": i})
            for i in range(n)]


def test_appends_form_an_intact_chain_and_read_back_as_written(settings):
    written = _fill(settings)
    stored = audit.read(settings)
    assert [r.seq for r in stored] == [1, 2, 3, 4, 5]
    assert stored == written
    assert stored[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:]))
    assert stored[0].actor.startswith("host:")
    result = audit.verify(settings)
    assert result.intact and result.rows == 5


def test_concurrent_writers_keep_one_linear_chain(settings):
    threads = [threading.Thread(target=_fill, args=(settings, 3)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = audit.verify(settings)
    assert result.rows == 12 and result.intact, result


def test_an_edited_row_is_named(settings):
    _fill(settings)
    path = audit.table_path(settings)
    rows = DeltaTable(path).to_pyarrow_table().to_pylist()
    edited = next(r for r in rows if r["seq"] == 3)
    edited["target"] = "user u3 role platform-admin"
    write_deltalake(path, pa.Table.from_pylist([edited], schema=audit.SCHEMA), mode="overwrite",
                    predicate="seq = 3")
    result = audit.verify(settings)
    assert not result.intact
    assert [(b.seq, "edited" in b.problem) for b in result.breaks] == [(3, True)]
    assert any("Overwrite" in rewrite for rewrite in result.rewrites)


def test_a_data_file_replaced_without_a_commit_is_named(settings):
    _fill(settings, 3)
    path = audit.table_path(settings)
    table = DeltaTable(path)
    victim = next(f for f in table.file_uris() if pq.read_table(f).column("seq").to_pylist() == [2])
    data = pq.read_table(victim).to_pylist()
    data[0]["outcome"] = "refused"
    pq.write_table(pa.Table.from_pylist(data, schema=pq.read_schema(victim)), victim)
    result = audit.verify(settings)
    assert not result.intact and not result.rewrites
    assert victim.rsplit("/", 1)[-1] in result.unreadable


def test_a_deleted_row_and_a_deleted_tail_are_named(settings):
    _fill(settings)
    DeltaTable(audit.table_path(settings)).delete("seq = 2 OR seq = 5")
    result = audit.verify(settings)
    assert [b.seq for b in result.breaks] == [3, 3]  # a gap, and a link to a row that is not there
    assert "rows 2..2 are missing" in str(result.breaks[0])
    assert "row 5 was written" in result.truncated
    assert any("DELETE" in rewrite for rewrite in result.rewrites)


def test_an_append_after_someone_else_wrote_reads_the_real_head(settings):
    _fill(settings, 2)
    [head] = (settings.state_dir / "audit").glob("head-*.json")
    head.write_text(json.dumps({"seq": 1, "hash": "f" * 64, "version": -1}))  # stale and wrong
    audit.append(settings, "project.create", "project p")
    assert audit.verify(settings).intact


def test_an_unwritable_trail_refuses_the_action(settings, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the lake folder should be")
    with pytest.raises(audit.AuditError, match="role.grant was not done"):
        audit.append(Settings(state_dir=settings.state_dir, lake_uri=str(blocked)), "role.grant", "user u")


def test_no_trail_is_an_intact_empty_one(settings):
    assert audit.read(settings) == []
    assert audit.verify(settings).intact


def test_the_commands_show_filter_and_verify(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RADLAKE_TOKEN_FILE", str(tmp_path / "no-token.json"))
    settings = Settings()
    audit.append(settings, "role.grant", "user ann role project:p:reader")
    audit.append(settings, "quarantine.open", "provider h1 original abc", outcome="allowed")
    assert audit_cli(["show", "--action", "quarantine", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["seq"], row["target"], row["details"]) == (2, "provider h1 original abc", {})
    assert audit_cli(["show", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
    assert audit_cli(["show", "--since", "yesterday"]) == 2
    assert audit_cli(["verify"]) == 0
    assert "intact: 2 row(s)" in capsys.readouterr().out
    DeltaTable(audit.table_path(settings)).delete("seq = 1")
    assert audit_cli(["verify"]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "row 2 (" in out and "rows 1..1 are missing" in out and "DELETE" in out
