"""Governed reads against the real stack: datasets of two projects, grants, the lake gateway (Arrow Flight over
TLS, Keycloak tokens verified), and one audit row per read.

The people are real users of the realm who log in with the device flow (approved on Keycloak's own pages by
``keycloak_browser``); their tokens are the only credential the reads carry.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from keycloak_browser import approve_device_code

from apps import dataset as dataset_cli
from apps import grant as grant_cli
from apps import project as project_cli
from apps import user as user_cli
from lake_schemas.tables import SILVER_STUDIES
from platform_layer import audit, governance
from platform_layer.device_authorization import poll_for_token
from platform_layer.governance import AccessRefused
from platform_layer.lake_access import LakeGatewayClient
from platform_layer.realm import cli_client, issuer
from platform_layer.tls import ca_file
from platform_layer.user_session import UserSession, save
from spark_jobs import notebook

pytestmark = pytest.mark.integration


def _studies(settings, project: str, count: int, start: int = 0) -> None:
    rows = [{"provider": "h1", "providers": ["h1"], "project": project, "study_uid": f"2.25.{uuid.uuid4().int}",
             "pseudo_patient_id": f"p-{i}", "status": "complete" if i % 2 == 0 else "receiving",
             "instance_count": 10 + i, "series_count": 1} for i in range(start, start + count)]
    write_deltalake(governance.lake_table_path(settings, "silver/studies"),
                    pa.Table.from_pylist(rows, schema=governance.arrow_schema(SILVER_STUDIES)), mode="append")


def _person(settings, capsys) -> tuple[str, str]:
    """A new user of the realm, logged in: (name, access token)."""
    name = f"sci-{uuid.uuid4().hex[:8]}"
    assert user_cli.main(["add", name, "--email", f"{name}@example.org"]) == 0
    password = capsys.readouterr().out.strip()
    with cli_client(settings) as client:
        authorization = client.start_device_authorization()
        approve_device_code(authorization.verification_uri_complete, name, password, ca_file=ca_file(settings),
                            new_password="a-long-Passphrase-2026")
        tokens = poll_for_token(client.device_token, authorization)
    return name, tokens


def _project(capsys) -> str:
    name = f"gov-{uuid.uuid4().hex[:8]}"
    assert project_cli.main(["create", name]) == 0
    capsys.readouterr()
    return name


def _reads(settings, dataset: str, outcome: str = "allowed") -> list[audit.AuditRecord]:
    return [r for r in audit.read(settings)
            if r.action == "dataset.read" and r.target == f"dataset {dataset}" and r.outcome == outcome]


def test_a_granted_user_reads_their_dataset_as_pinned_and_nothing_else(settings, gateway, capsys, tmp_path,
                                                                       monkeypatch):
    project_a, project_b = _project(capsys), _project(capsys)
    _studies(settings, project_a, 6)
    _studies(settings, project_b, 4)
    cohort_a, cohort_b = f"{project_a}-complete", f"{project_b}-all"
    # the filter names the other project: it still sees project A's rows only
    assert dataset_cli.main(["create", cohort_a, "--project", project_a, "--table", "silver/studies",
                             "--where", f"status = 'complete' OR project = '{project_b}'",
                             "--columns", "study_uid,instance_count,status"]) == 0
    assert dataset_cli.main(["create", cohort_b, "--project", project_b, "--table", "silver/studies"]) == 0
    _studies(settings, project_a, 2, start=100)  # after the pin: not part of the dataset
    ann, ann_tokens = _person(settings, capsys)
    bob, bob_tokens = _person(settings, capsys)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert grant_cli.main([ann, cohort_a, "--until", tomorrow]) == 0

    with LakeGatewayClient(settings, token=lambda: ann_tokens.access_token) as lake:
        assert cohort_a in lake.datasets() and cohort_b not in lake.datasets()
        rows = lake.read(cohort_a)
        assert rows.column_names == ["study_uid", "instance_count", "status"]
        assert sorted(rows.column("instance_count").to_pylist()) == [10, 12, 14]  # complete, A, pinned
        assert lake.read(cohort_a, ["instance_count"]).column_names == ["instance_count"]
        for forbidden in (cohort_b, "bronze/instances", "silver/studies", f"{cohort_a}' OR '1'='1"):
            with pytest.raises(AccessRefused, match="holds no active grant"):
                lake.read(forbidden)
    with LakeGatewayClient(settings, token=lambda: bob_tokens.access_token) as lake:
        assert cohort_a not in lake.datasets()
        with pytest.raises(AccessRefused):
            lake.read(cohort_a)
    for token in ("", "not-a-jwt", ann_tokens.access_token[:-4] + "AAAA"):
        with LakeGatewayClient(settings, token=lambda t=token: t) as lake, pytest.raises(AccessRefused):
            lake.read(cohort_a)

    # one audit row per read: who, what, which version and columns, how many rows
    reads = _reads(settings, cohort_a)
    assert len(reads) == 2 and {r.actor for r in reads} == {f"user:{ann}"}
    details = json.loads(reads[0].details)
    assert details["project"] == project_a and details["rows"] == 3
    assert details["columns"] == ["study_uid", "instance_count", "status"] and details["source_table"] == "silver/studies"
    assert json.loads(reads[1].details)["columns"] == ["instance_count"]
    assert {r.actor for r in _reads(settings, cohort_a, "refused")} == {f"user:{bob}"}
    assert len(_reads(settings, cohort_b, "refused")) == 1

    # the command a data scientist runs, with their own stored session
    token_file = tmp_path / "token.json"
    save(token_file, UserSession.from_tokens(issuer(settings), "radlake-cli", ann_tokens))
    monkeypatch.setenv("RADLAKE_TOKEN_FILE", str(token_file))
    out = tmp_path / "cohort.parquet"
    assert dataset_cli.main(["read", cohort_a, "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 3
    assert dataset_cli.main(["read", cohort_b]) == 1
    assert "holds no active grant" in capsys.readouterr().err

    # revoked: refused at the next read
    monkeypatch.delenv("RADLAKE_TOKEN_FILE")
    assert grant_cli.revoke_main([ann, cohort_a]) == 0
    with LakeGatewayClient(settings, token=lambda: ann_tokens.access_token) as lake, pytest.raises(AccessRefused):
        lake.read(cohort_a)
    changes = [r.action for r in audit.read(settings) if r.target == f"user {ann} dataset {cohort_a}"]
    assert changes == ["dataset.grant", "dataset.revoke"]
    assert audit.verify(settings).intact


def test_bad_definitions_and_grants_are_refused(settings, gateway, capsys):
    project = _project(capsys)
    _studies(settings, project, 2)
    base = ["create", f"{project}-x", "--project", project, "--table", "silver/studies", "--where"]
    assert dataset_cli.main([*base, "study_uid IN (SELECT study_uid FROM read_parquet('/etc/passwd'))"]) == 1
    assert "does not run over silver/studies alone" in capsys.readouterr().err
    assert dataset_cli.main([*base, "study_uid IN (SELECT dataset FROM grants)"]) == 1
    assert dataset_cli.main([*base, "true; DROP TABLE source"]) == 1
    assert dataset_cli.main(["create", f"{project}-y", "--project", "never-made", "--table", "silver/studies"]) == 1
    assert "no project 'never-made'" in capsys.readouterr().err
    assert dataset_cli.main(["create", f"{project}-z", "--project", project, "--table", "bronze/instances"]) == 2
    assert dataset_cli.main(["create", f"{project}-ok", "--project", project, "--table", "silver/studies"]) == 0
    assert grant_cli.main(["nobody-at-all", f"{project}-ok", "--until", "2999-01-01"]) == 1
    assert "no user 'nobody-at-all'" in capsys.readouterr().err
    name, _ = _person(settings, capsys)
    assert grant_cli.main([name, f"{project}-ok", "--until", "2001-01-01"]) == 1
    assert "not in the future" in capsys.readouterr().err
    assert grant_cli.main([name, "no-such-dataset", "--until", "2999-01-01"]) == 1


def test_publish_then_new_data_then_materialise_gives_the_same_bytes(settings, gateway, capsys, tmp_path):
    project = _project(capsys)
    _studies(settings, project, 5)
    cohort = f"{project}-cited"
    assert dataset_cli.main(["create", cohort, "--project", project, "--table", "silver/studies",
                             "--where", "instance_count >= 11"]) == 0
    capsys.readouterr()
    assert dataset_cli.main(["publish", cohort, "--creator", "A. Researcher", "--title", "a cohort"]) == 0
    pid = capsys.readouterr().out.strip()
    assert pid == f"radlake:{cohort}/1"
    assert dataset_cli.main(["materialise", pid, "--out", str(tmp_path / "first")]) == 0
    _studies(settings, project, 3, start=50)  # new data arrives after publication
    assert dataset_cli.main(["materialise", pid, "--out", str(tmp_path / "later")]) == 0
    first, later = (tmp_path / d / f"{cohort}.parquet" for d in ("first", "later"))
    assert first.read_bytes() == later.read_bytes() and pq.read_table(later).num_rows == 4
    capsys.readouterr()
    assert dataset_cli.main(["resolve", pid]) == 0
    metadata = json.loads(capsys.readouterr().out)
    assert metadata["identifier"]["identifier"] == pid and metadata["titles"] == [{"title": "a cohort"}]
    actions = [r.action for r in audit.read(settings) if r.target in (f"dataset {cohort}", f"snapshot {pid}")]
    assert actions == ["dataset.create", "dataset.publish", "dataset.materialise", "dataset.materialise"]


def test_spark_reads_a_granted_dataset_through_the_gateway_and_nothing_else(settings, gateway, spark, capsys):
    project = _project(capsys)
    _studies(settings, project, 4)
    cohort = f"{project}-spark"
    assert dataset_cli.main(["create", cohort, "--project", project, "--table", "silver/studies",
                             "--columns", "study_uid,instance_count"]) == 0
    ann, tokens = _person(settings, capsys)
    assert grant_cli.main([ann, cohort, "--until", (datetime.now(UTC) + timedelta(days=1)).isoformat()]) == 0
    frame = notebook.dataset(spark, cohort, token=tokens.access_token, settings=settings)
    assert frame.columns == ["study_uid", "instance_count"]
    assert sorted(r.instance_count for r in frame.collect()) == [10, 11, 12, 13]
    assert [r.study_uid for r in notebook.dataset(spark, cohort, ["study_uid"], token=tokens.access_token,
                                                  settings=settings).collect()]
    assert len(_reads(settings, cohort)) == 2  # one audited read per Spark read of the data
    _, other = _person(settings, capsys)
    with pytest.raises(Exception, match="holds no active grant"):  # noqa: B017 - Spark wraps the gateway's refusal
        notebook.dataset(spark, cohort, token=other.access_token, settings=settings).collect()
