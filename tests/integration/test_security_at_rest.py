"""What stays on the platform host: the state dir is its owner's only, Vault audits every request with the
request values hashed, and no Vault secret shows in a process's arguments or a component's environment."""

from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path

import pytest

from infra import stack
from platform_layer.state import open_entries
from platform_layer.vault import transit_session
from radlake.deid.pseudonyms import patient_message, transit_key_name

pytestmark = pytest.mark.integration


def test_the_state_dir_is_private_to_its_owner(settings, vault, kafka_bootstrap, registry_url):
    assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700
    assert open_entries(settings.state_dir) == []


def test_vault_audits_every_transit_call_with_the_values_hashed(settings, vault):
    audit_log = settings.state_dir / "vault" / "audit.log"
    project = f"audit-{uuid.uuid4().hex[:8]}"
    secret = f"PATIENT-{uuid.uuid4().hex}"
    with transit_session(settings, project) as spec:
        transit = spec.open()
        transit.ensure_key()
        transit.hmac_many([patient_message("st-olav", secret)])
    text = audit_log.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    path = f"{settings.vault_transit_mount}/hmac/{transit_key_name(project)}/sha2-256"
    requests = [e for e in entries if e.get("type") == "request" and e["request"].get("path") == path]
    assert requests, f"no audit entry for {path}"
    sent = base64.b64encode(patient_message("st-olav", secret)).decode()
    assert secret not in text and sent not in text
    inputs = [item["input"] for e in requests for item in e["request"]["data"]["batch_input"]]
    assert inputs and all(value.startswith("hmac-sha256:") for value in inputs)
    assert stat.S_IMODE(audit_log.stat().st_mode) == 0o600


def test_no_secret_is_in_any_process_arguments_or_in_the_components_environment(settings, vault, kafka_bootstrap,
                                                                               registry_url):
    vault_component = stack.component("vault", settings)
    secrets = [*json.loads(vault_component.unseal_file.read_text())["shares"],
               json.loads(vault_component.admin_file.read_text())["secret_id"], str(vault.token)]
    pids = [p for p in (stack.component(name, settings).pid() for name in stack.COMPONENTS) if p]
    assert pids
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            arguments = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        assert not any(secret in arguments for secret in secrets), f"a Vault secret in the arguments of {proc.name}"
    for pid in pids:
        environment = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert not any(secret in environment for secret in secrets), f"a Vault secret in the environment of {pid}"
