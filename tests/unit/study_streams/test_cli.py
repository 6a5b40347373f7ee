from __future__ import annotations

import argparse
from datetime import timedelta

from apps.streams import _parser, config_from, main
from platform_layer.settings import Settings


def _args(**given) -> argparse.Namespace:
    names = ("app_id", "instance_id", "quiet_period_s", "tick_interval_s", "web_port", "partitions", "batch_size",
             "session_timeout_s", "commit_interval_s", "instance_topic", "manifest_topic", "completed_topic",
             "quarantined_topic", "dead_letter_topic")
    return argparse.Namespace(**{"bootstrap": "", "registry_url": ""} | {n: None for n in names} | given)


def test_defaults_come_from_the_contracts_and_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("RADLAKE_KAFKA_PORT", "29092")
    config = config_from(_args(), Settings())
    assert config.bootstrap == "127.0.0.1:29092"
    assert config.instance_topic == "radlake.instance.received.v1"
    assert config.dead_letter_topic == "radlake.dead-letter.v1"
    assert config.state_topic == "radlake-streams-state"


def test_flags_override(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path))
    config = config_from(_args(bootstrap="k:1", app_id="x", quiet_period_s=2.5, instance_topic="t.in"), Settings())
    assert (config.bootstrap, config.app_id, config.instance_topic) == ("k:1", "x", "t.in")
    assert config.quiet_period == timedelta(seconds=2.5)
    assert config.state_topic == "x-state"


def test_usage_errors_exit_2():
    assert main([]) == 2


def test_commit_when_drained_is_on_unless_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path))
    on = _parser().parse_args(["run"])
    off = _parser().parse_args(["run", "--no-commit-when-drained", "--commit-interval-s", "600"])
    assert config_from(on, Settings()).commit_when_drained is True
    assert config_from(off, Settings()).commit_when_drained is False
