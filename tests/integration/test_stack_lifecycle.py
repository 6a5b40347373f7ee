"""`stack up` twice is harmless; `stack down` leaves no process behind; status tells the truth.

Runs on its own state dir and ports so it never disturbs the session's shared stack.
"""

from __future__ import annotations

import base64
import os
import socket

import pytest

from apps.stack import main as stack_cli
from infra import process, stack
from infra.components.supervisor import Supervisor
from platform_layer import kafka
from platform_layer.identities import stack_kafka_identity
from platform_layer.settings import Settings

pytestmark = pytest.mark.integration

COMPONENTS = ["vault", "keycloak", "kafka", "registry", "nifi"]
PORTS = (28200, 28201, 28443, 28444, 29092, 29093, 29094, 28081, 28082, 28080, 28180)


@pytest.fixture
def isolated(tmp_path, settings) -> Settings:
    own = Settings(
        state_dir=tmp_path / "state",
        cache_dir=settings.cache_dir,  # the downloads are shared, the state is not
        vault_port=28200,
        keycloak_port=28443,
        kafka_port=29092,
        kafka_controller_port=29093,
        kafka_broker_port=29094,
        schema_registry_port=28081,
        nifi_port=28080,
    )
    yield own
    stack.down(own, COMPONENTS)


def test_up_twice_is_harmless_and_down_leaves_nothing(isolated):
    # A cluster id may start with "-" (1 in 64 of the random ones): the storage is formatted all the same.
    kafka_home = isolated.state_dir / "kafka"
    kafka_home.mkdir(parents=True)
    (kafka_home / "cluster.id").write_text(base64.urlsafe_b64encode(b"\xf8" + os.urandom(15)).decode().rstrip("=") + "\n")
    assert (kafka_home / "cluster.id").read_text().startswith("-")
    first = stack.up(isolated, COMPONENTS)
    pids = {name: s.pid for name, s in first.items()}
    assert all(pids.values()) and all(s.healthy for s in first.values())
    pids["supervisor"] = Supervisor(isolated).pid()  # `stack up` started one supervisor for what it started
    assert pids["supervisor"] is not None and Supervisor(isolated).healthy()
    # Vault began on a bootstrap certificate and ends on one from its own PKI
    assert not stack.component("vault", isolated).bootstrap_ca.exists()

    second = stack.up(isolated, COMPONENTS)
    assert {name: s.pid for name, s in second.items()} | {"supervisor": Supervisor(isolated).pid()} == pids
    # nothing restarted, nothing duplicated

    stack.down(isolated, COMPONENTS)
    assert not any(process.pid_alive(pid) for pid in pids.values())
    assert not any(process.port_open(p) for p in PORTS)
    assert all(not s.healthy and s.pid is None for s in stack.status(isolated, COMPONENTS))
    assert Supervisor(isolated).pid() is None  # down stopped the supervisor and started none again


def test_status_command_prints_a_table_and_reports_health(isolated, capsys, monkeypatch):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(isolated.state_dir))
    monkeypatch.setenv("RADLAKE_VAULT_PORT", "28200")
    assert stack_cli(["status", "vault"]) == 3  # not running yet
    assert stack_cli(["up", "vault"]) == 0
    assert stack_cli(["status", "vault"]) == 0
    out = capsys.readouterr().out
    assert "COMPONENT" in out and "vault" in out and "healthy" in out


def test_a_taken_port_gives_a_one_line_error_naming_it(isolated, capsys, monkeypatch):

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 28200))
        squatter.listen()
        monkeypatch.setenv("RADLAKE_STATE_DIR", str(isolated.state_dir))
        monkeypatch.setenv("RADLAKE_VAULT_PORT", "28200")
        assert stack_cli(["up", "vault"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "28200" in err and "RADLAKE_VAULT_PORT" in err


def test_kafka_recovers_after_kill_9(isolated):

    stack.up(isolated, ["vault", "kafka"])
    component = stack.component("kafka", isolated)
    identity = stack_kafka_identity(isolated)  # this stack's administrator, not the session stack's
    kafka.ensure_topics(component.address, [kafka.TopicSpec("durable", 1)], identity=identity)
    producer = kafka.producer(component.address, client_id="test-durable", identity=identity)
    producer.produce("durable", value=b"before the crash")
    assert producer.flush(30) == 0
    component.kill()
    component.start()

    consumer = kafka.consumer(component.address, group_id="g", identity=identity)
    consumer.subscribe(["durable"])
    values = []
    for _ in range(30):
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            values.append(msg.value())
            break
    consumer.close()
    assert values == [b"before the crash"]
