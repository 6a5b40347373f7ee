"""The supervisor brings back a component killed with -9 (healthy: Vault unsealed, Kafka's clients served), and gives
up on one that crashes at every start instead of restarting it forever.

Each test runs a stack of its own (its own state dir, and ports 1000 above the session's, so that two engineers'
sessions stay apart) with a supervisor that checks every second and backs off from one second.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from polling import poll

from infra import process, stack
from infra.components.supervisor import Supervisor
from infra.supervision import set_supervised, status_file, supervised
from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST
from monitoring.exporter import SupervisorCollector
from nifi import providers
from nifi.edge.client import Uploader, plan, wait_until_listening
from platform_layer import kafka
from platform_layer.registration import register, schema_admin
from platform_layer.settings import Settings
from platform_layer.supervision import events_file, read
from platform_layer.tls import ca_file
from radlake.synthetic import phi_dicom

pytestmark = pytest.mark.integration


def poll_slow(check, what: str, timeout_s: float = 300.0):
    return poll(check, what, timeout_s, interval_s=1.0)



def _own(settings: Settings, state_dir, **more: Any) -> Settings:
    s = settings
    return Settings(
        state_dir=state_dir, cache_dir=s.cache_dir,
        vault_port=s.vault_port + 1000, keycloak_port=s.keycloak_port + 1000, kafka_port=s.kafka_port + 1000,
        kafka_controller_port=s.kafka_controller_port + 1000, kafka_broker_port=s.kafka_broker_port + 1000,
        schema_registry_port=s.schema_registry_port + 1000, nifi_port=s.nifi_port + 1000,
        gateway_port=s.gateway_port + 1000,
        supervisor_interval_s=1.0, supervisor_backoff_initial_s=1.0, supervisor_backoff_max_s=4.0,
        supervisor_unhealthy_after_s=30.0, **more)


@pytest.fixture
def own_stack(tmp_path, settings) -> Iterator[Settings]:
    own = _own(settings, tmp_path / "state", supervisor_crash_loop_restarts=5, supervisor_crash_loop_window_s=600.0)
    yield own
    stack.down(own)


def _events(settings: Settings, component: str, event: str) -> list[Any]:
    return [e for e in read(events_file(settings.state_dir)) if e.component == component and e.event == event]


def test_a_killed_component_comes_back_healthy(own_stack):
    names = ["vault", "keycloak", "kafka", "registry"]
    stack.up(own_stack, names)
    assert set(supervised(own_stack)) == set(names)
    supervisor_pid = json.loads(status_file(own_stack).read_text())["pid"]
    assert process.pid_alive(supervisor_pid)

    for name in ("vault", "kafka", "registry"):
        component = stack.component(name, own_stack)
        before = component.pid()
        component.kill()

        def back() -> int | None:
            pid = component.pid()
            return pid if pid is not None and pid != before and component.healthy() else None

        poll_slow(back, f"{name} restarted and healthy")
        poll_slow(lambda n=name: _events(own_stack, n, "restarted"), f"{name}'s restart in the supervisor's log")
    assert stack.component("vault", own_stack).healthy()  # healthy means unsealed: 200 from sys/health
    assert json.loads(status_file(own_stack).read_text())["pid"] == supervisor_pid  # one supervisor throughout

    samples = {(s.name, s.labels.get("component")): s.value
               for m in SupervisorCollector(own_stack.state_dir).collect() for s in m.samples}
    assert all(samples[("radlake_supervisor_restarts_total", n)] >= 1 for n in ("vault", "kafka", "registry"))
    assert samples[("radlake_supervisor_gave_up", "kafka")] == 0

    stack.down(own_stack, ["registry"])  # stopped on purpose: not brought back
    assert json.loads(status_file(own_stack).read_text())["pid"] != supervisor_pid  # down stopped it, then restarted
    poll_slow(lambda: "registry" not in json.loads(status_file(own_stack).read_text())["components"]
         and json.loads(status_file(own_stack).read_text())["components"].get("kafka"),
         "the new supervisor watching what is left")
    assert stack.component("registry", own_stack).pid() is None
    stack.down(own_stack)
    assert not process.pid_alive(supervisor_pid)


def test_a_component_that_crashes_at_every_start_hits_the_crash_loop_limit(tmp_path, settings):
    own = _own(settings, tmp_path / "state", supervisor_crash_loop_restarts=3, supervisor_crash_loop_window_s=600.0)
    try:
        stack.up(own, ["vault"])
        vault = stack.component("vault", own)
        vault.kill()
        # a key that no TLS library reads: OpenBao exits at once at every start
        (vault.tls_dir / "vault.key").write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        gave_up = poll_slow(lambda: _events(own, "vault", "gave-up"), "the supervisor giving up on vault")
        failed = _events(own, "vault", "restart-failed")
        assert len(failed) == 3 and len(gave_up) == 1
        assert "vault" in failed[0].reason  # the start error, naming the component
        # several more passes of the supervisor: no more attempts
        seen = json.loads(status_file(own).read_text())["time"]
        poll_slow(lambda: json.loads(status_file(own).read_text())["time"] > seen + 5, "five more supervisor passes")
        assert len(_events(own, "vault", "restart-failed")) == 3
        assert json.loads(status_file(own).read_text())["components"]["vault"]["gave_up"] is True
        samples = {(s.name, s.labels.get("component")): s.value
                   for m in SupervisorCollector(own.state_dir).collect() for s in m.samples}
        assert samples[("radlake_supervisor_gave_up", "vault")] == 1
        assert samples[("radlake_supervisor_failed_restarts_total", "vault")] == 3
    finally:
        stack.down(own)


def test_nifi_killed_comes_back_with_its_edges_serving(settings, vault, nifi_url, kafka_bootstrap, registry_url,
                                                       tmp_path):
    """The session's NiFi under supervision (`stack up nifi` on the running stack): killed with -9, it is restarted
    by the supervisor and a provider's edge accepts an upload again without anyone touching the flow."""
    run = uuid.uuid4().hex[:6]
    provider = f"s{run}"
    names = {"instance_topic": f"test.sup.instances.{run}", "quarantine_topic": f"test.sup.quarantined.{run}",
             "manifest_topic": f"test.sup.manifests.{run}"}
    contracts = (INSTANCE_RECEIVED.with_name(names["instance_topic"]),
                 QUARANTINED.with_name(names["quarantine_topic"]), STUDY_MANIFEST.with_name(names["manifest_topic"]))
    kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(t.name, 3) for t in contracts])
    register(schema_admin(settings), contracts)
    data = tmp_path / "upload"
    data.mkdir()
    datasets, _ = phi_dicom.ct_series(4, patient=phi_dicom.Patient(patient_id=f"MRN{run}"), study=7, size=32)
    for n, ds in enumerate(datasets):
        (data / f"{n}.dcm").write_bytes(phi_dicom.to_bytes(ds))
    edge = providers.add(settings, provider, f"sup-{run}", topics=names)
    supervised_before = supervised(settings)
    try:
        wait_until_listening(edge.url, 120, verify=ca_file(settings))
        stack.up(settings, ["nifi"])  # running already: nothing restarts, NiFi is now supervised
        nifi = stack.component("nifi", settings)
        before = nifi.pid()
        nifi.kill()
        poll_slow(lambda: nifi.pid() not in (None, before) and nifi.healthy(), "NiFi restarted by the supervisor")
        wait_until_listening(edge.url, 240, verify=ca_file(settings))
        uploader = Uploader(edge.url, providers.endpoint_token(settings, provider), tmp_path / "journal.jsonl",
                            verify=ca_file(settings), on_progress=lambda _: None)
        try:
            records = uploader.upload(plan([data], max_instances=4), f"{run}00c0ffee00")
        finally:
            uploader.close()
        outcomes = [o for r in records for o in r["outcomes"]]
        assert [o["status"] for o in outcomes] == ["accepted"] * 4
        poll_slow(lambda: _events(settings, "nifi", "restarted"), "NiFi's restart in the supervisor's log")
    finally:
        providers.remove(settings, provider)
        # leave the session's stack as it was: its NiFi running, unsupervised unless it was before
        Supervisor(settings).stop()
        set_supervised(settings, supervised_before)
        if supervised_before:
            Supervisor(settings).start()
