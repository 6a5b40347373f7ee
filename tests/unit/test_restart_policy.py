"""The supervisor's policy (back-off, unhealthy grace, crash-loop limit), its log's summary, and the systemd units."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from infra import stack, units
from infra.supervision import Action, RestartPolicy, Supervisor, Watch, decide
from platform_layer.settings import Settings
from platform_layer.supervision import SupervisionEvent, append, read, summary

POLICY = RestartPolicy(unhealthy_after_s=60, backoff_initial_s=5, backoff_max_s=40, crash_loop_restarts=4,
                       crash_loop_window_s=600)


def test_a_healthy_component_is_left_alone():
    action, watch = decide(Watch(), alive=True, healthy=True, now=100.0, policy=POLICY)
    assert action is Action.NONE and watch == Watch()


def test_a_dead_component_is_restarted_at_once_then_after_a_doubling_back_off():
    action, watch = decide(Watch(), alive=False, healthy=False, now=0.0, policy=POLICY)
    assert action is Action.RESTART and watch.restarts == (0.0,)
    assert decide(watch, alive=False, healthy=False, now=4.9, policy=POLICY)[0] is Action.WAIT
    action, watch = decide(watch, alive=False, healthy=False, now=5.0, policy=POLICY)
    assert action is Action.RESTART
    assert decide(watch, alive=False, healthy=False, now=14.9, policy=POLICY)[0] is Action.WAIT  # 5 s, then 10 s
    assert decide(watch, alive=False, healthy=False, now=15.0, policy=POLICY)[0] is Action.RESTART
    assert [POLICY.backoff_s(n) for n in range(1, 6)] == [5, 10, 20, 40, 40]  # capped at backoff_max_s


def test_an_unhealthy_but_running_component_gets_a_grace_period_then_a_restart():
    action, watch = decide(Watch(), alive=True, healthy=False, now=0.0, policy=POLICY)
    assert action is Action.NONE and watch.unhealthy_since == 0.0
    assert decide(watch, alive=True, healthy=False, now=59.0, policy=POLICY)[0] is Action.NONE
    healed = decide(watch, alive=True, healthy=True, now=30.0, policy=POLICY)[1]
    assert healed.unhealthy_since is None  # healthy again: the grace starts over
    assert decide(watch, alive=True, healthy=False, now=60.0, policy=POLICY)[0] is Action.RESTART


def test_the_crash_loop_limit_gives_up_once_and_then_waits_for_someone():
    watch, actions, now = Watch(), [], 0.0
    while len(actions) < 100:  # longer than 5 + 10 + 20 s of back-off
        action, watch = decide(watch, alive=False, healthy=False, now=now, policy=POLICY)
        actions.append(action)
        now += 1.0
    assert actions.count(Action.RESTART) == POLICY.crash_loop_restarts
    assert actions.count(Action.GIVE_UP) == 1 and watch.gave_up
    assert actions[-1] is Action.NONE  # given up: not restarted forever
    action, watch = decide(watch, alive=True, healthy=True, now=now, policy=POLICY)  # `stack up` brought it back
    assert action is Action.RECOVERED and watch == Watch()


def test_restarts_outside_the_window_no_longer_count():
    watch = Watch(restarts=(0.0, 100.0, 200.0))
    action, watch = decide(watch, alive=False, healthy=False, now=650.0, policy=POLICY)
    assert action is Action.RESTART and watch.restarts == (100.0, 200.0, 650.0)


def test_the_log_summary_counts_restarts_and_forgets_a_give_up_when_the_component_recovers(tmp_path):
    log = tmp_path / "events.jsonl"
    for event in ("watching", "restarted", "restart-failed", "restarted", "gave-up"):
        append(log, SupervisionEvent(1.0, "kafka", event))
    append(log, SupervisionEvent(1.0, "nifi", "restarted"))
    with open(log, "a") as out:
        out.write('{"half a line')
    records = summary(read(log))
    assert (records["kafka"].restarts, records["kafka"].failed_restarts, records["kafka"].gave_up) == (2, 1, True)
    assert not records["nifi"].gave_up
    append(log, SupervisionEvent(2.0, "kafka", "recovered"))
    assert not summary(read(log))["kafka"].gave_up


@pytest.fixture
def unit_files(tmp_path) -> dict[str, str]:
    settings = Settings(state_dir=tmp_path / "state", supervisor_crash_loop_restarts=3,
                        supervisor_crash_loop_window_s=120, vault_token="s.not-in-any-unit")
    components = [stack.component(n, settings) for n in ("vault", "kafka", "gateway")]
    return {u.name: u.text for u in units.units(settings, components, tmp_path / "secrets.env")}


def test_units_follow_the_start_order_restart_on_failure_and_hold_no_secret(unit_files):
    assert set(unit_files) == {"radlake-vault.service", "radlake-kafka.service", "radlake-gateway.service",
                               "radlake.target"}
    parsed = {}
    for name, text in unit_files.items():
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read_string(text)
        parsed[name] = parser
        assert "s.not-in-any-unit" not in text and "RADLAKE_VAULT_TOKEN" not in text
    gateway = parsed["radlake-gateway.service"]
    assert gateway["Unit"]["After"].split() == ["radlake-vault.service", "radlake-kafka.service"]
    assert gateway["Service"]["Restart"] == "on-failure"
    assert gateway["Unit"]["StartLimitBurst"] == "3" and gateway["Unit"]["StartLimitIntervalSec"] == "120"
    assert "apps.cli gateway serve" in gateway["Service"]["ExecStart"]  # the stack's own command
    assert "After" not in parsed["radlake-vault.service"]["Unit"]
    assert parsed["radlake.target"]["Unit"]["Wants"].split() == [
        "radlake-vault.service", "radlake-kafka.service", "radlake-gateway.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_units_and_rejects_a_broken_one(unit_files, tmp_path):
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in unit_files.items():
        (folder / name).write_text(text)
    checked = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(map(str, folder.iterdir()))],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    broken = folder / "radlake-broken.service"
    broken.write_text(unit_files["radlake-vault.service"].replace("ExecStart=", "ExecStart=/nonexistent/x ", 1)
                      .replace("ExecStart=/nonexistent/x /", "ExecStart=/nonexistent/"))
    refused = subprocess.run(["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True,
                             check=False)
    assert refused.returncode != 0 and "nonexistent" in refused.stderr


def test_install_units_writes_them_where_asked(tmp_path, monkeypatch, capsys):
    from apps.stack import main  # noqa: PLC0415 - the command, called as a test calls any command

    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path / "state"))
    assert main(["install-units", "vault", "spark", "--dir", str(tmp_path / "out")]) == 0
    written = sorted(Path(p).name for p in capsys.readouterr().out.split())
    assert written == ["radlake-vault.service", "radlake.target"]  # spark's local mode runs no process


class _Renewing:
    """A component as the renewal pass sees it: alive or not, healthy or not, and what renewing it does."""

    def __init__(self, name, *, alive=True, healthy=True, renews=False, fails=False):
        self.name, self._alive, self._healthy, self._renews, self._fails = name, alive, healthy, renews, fails
        self.asked = 0

    def pid(self):
        return 4242 if self._alive else None

    def healthy(self):
        return self._healthy

    def renew_certificates(self):
        self.asked += 1
        if self._fails:
            raise RuntimeError("vault sealed")
        return self._renews


def test_the_renewal_pass_records_what_it_renewed_and_what_failed_and_skips_what_is_down(tmp_path):
    settings = Settings(state_dir=tmp_path)
    parts = {"vault": _Renewing("vault"), "kafka": _Renewing("kafka", renews=True),
             "keycloak": _Renewing("keycloak", fails=True), "nifi": _Renewing("nifi", alive=False),
             "gateway": _Renewing("gateway", healthy=False)}
    edges: list[str] = []
    supervisor = Supervisor(settings, parts.__getitem__, list(parts),
                            renew_edges=lambda: edges.append("asked") or ["h1"])
    supervisor.renew(names=["vault", "kafka", "keycloak", "gateway"])
    events = [(e.component, e.event) for e in read(supervisor.log_path)]
    assert events == [("kafka", "renewed"), ("keycloak", "renew-failed")]
    assert [p.asked for p in parts.values()] == [1, 1, 1, 0, 0]  # down or unhealthy: left to the restart policy
    assert edges == []  # NiFi is not among them
    supervisor.renew(names=["nifi"])
    assert edges == []  # NiFi is down: its edges cannot be pointed at anything
    parts["nifi"] = _Renewing("nifi")
    supervisor.renew(names=["nifi"])
    assert edges == ["asked"] and read(supervisor.log_path)[-1].component == "edges"
