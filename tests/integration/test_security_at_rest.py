"""What stays on the platform host: the state dir is its owner's only, and Vault audits every request
with the request values hashed."""

from __future__ import annotations

import base64
import json
import stat
import uuid

import pytest

from platform_layer.state import open_entries
from platform_layer.transit import VaultTransitHmac
from radlake.deid.pseudonyms import patient_message, transit_key_name

pytestmark = pytest.mark.integration


def test_the_state_dir_is_private_to_its_owner(settings, vault, kafka_bootstrap, registry_url):
    assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700
    assert open_entries(settings.state_dir) == []


def test_vault_audits_every_transit_call_with_the_values_hashed(settings, vault):
    audit_log = settings.state_dir / "vault" / "audit.log"
    project = f"audit-{uuid.uuid4().hex[:8]}"
    transit = VaultTransitHmac(vault, transit_key_name(project), mount=settings.vault_transit_mount)
    transit.ensure_key()
    secret = f"PATIENT-{uuid.uuid4().hex}"
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
