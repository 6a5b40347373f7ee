"""The Vault Transit pseudonymiser against the stack's real OpenBao, and `radlake deid` using it."""

from __future__ import annotations

import json
import uuid

import pytest

from apps import deid as cli
from infra import stack
from platform_layer.settings import get_settings
from platform_layer.tls import ca_file
from platform_layer.transit import VaultTransitHmac, VaultTransitSpec
from platform_layer.vault import transit_session
from radlake.deid.confidentiality_profile import Profile, compile_rules
from radlake.deid.errors import PseudonymError
from radlake.deid.instance_result import Status
from radlake.deid.pipeline import deidentify_instances
from radlake.deid.pseudonyms import transit_key_name
from radlake.synthetic import phi_dicom

pytestmark = pytest.mark.integration


@pytest.fixture
def project() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def datas() -> list[bytes]:
    return [phi_dicom.to_bytes(ds) for ds in phi_dicom.ct_series(3, size=16)[0]]


def test_batched_hmac_with_cache(vault, settings, project):
    with transit_session(settings, project) as spec:
        run = spec.client()
        transit = VaultTransitHmac(run, spec.key_name, mount=spec.mount, batch_size=3)
        transit.ensure_key()
        transit.ensure_key()  # idempotent
        messages = [f"message-{i}".encode() for i in range(10)]
        digests = transit.hmac_many(messages)
        assert transit.requests == 4  # ceil(10 / 3) batches
        assert all(len(d) == 32 for d in digests)
        assert len(set(digests)) == 10
        assert transit.hmac_many(list(reversed(messages))) == list(reversed(digests))
        assert transit.requests == 4  # all from the local cache
        fresh = VaultTransitHmac(run, spec.key_name, mount=spec.mount)
        assert fresh.hmac_many(messages[:2]) == digests[:2]
        assert fresh.describe()["key_versions"] == [1]


def _deidentify(spec: VaultTransitSpec, datas: list[bytes]):
    transit = spec.open()
    transit.ensure_key()
    return deidentify_instances(datas, compile_rules(Profile()), transit)


def test_projects_cannot_be_linked(vault, settings, project, datas):
    results = {}
    for name in (project, project + "-other"):
        with transit_session(settings, name) as spec:
            results[name] = _deidentify(spec, datas)
    for a, b in zip(results[project], results[project + "-other"]):
        assert a.status is b.status is Status.DEIDENTIFIED
        assert a.relative_path != b.relative_path
        assert a.encoded != b.encoded


def test_same_output_across_a_vault_restart(vault, settings, project, datas):
    component = stack.component("vault", settings)
    if component.external:
        pytest.skip("Vault is external to this stack; not restarting it")
    with transit_session(settings, project) as spec:
        before = _deidentify(spec, datas)
        component.stop()
        component.start()
        after = _deidentify(spec, datas)
    assert [r.encoded for r in before] == [r.encoded for r in after]
    assert all(r.status is Status.DEIDENTIFIED for r in after)


def test_command_uses_vault(vault, settings, project, datas, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for i, data in enumerate(datas):
        (src / f"IM{i}").write_bytes(data)
    monkeypatch.setenv("RADLAKE_VAULT_ADDR", str(vault.url))
    monkeypatch.setenv("RADLAKE_VAULT_TOKEN", str(vault.token))
    monkeypatch.setenv("RADLAKE_VAULT_CA_FILE", str(ca_file(settings)))
    monkeypatch.setenv("RADLAKE_VAULT_TRANSIT_MOUNT", settings.vault_transit_mount)
    get_settings.cache_clear()
    try:
        out = tmp_path / "out"
        assert cli.main([str(src), "--out", str(out), "--project", project, "--workers", "2", "--no-progress"]) == 0
    finally:
        get_settings.cache_clear()
    report = json.loads((out / "report.json").read_text())
    assert report["by_status"] == {"deidentified": 3}
    assert report["pseudonymiser"]["kind"] == "vault-transit-hmac-sha256"
    assert report["pseudonymiser"]["key"] == transit_key_name(project)


def test_a_run_gets_a_token_for_its_project_key_only_revoked_when_it_ends(vault, settings, project):
    other = f"other-{uuid.uuid4().hex[:8]}"
    VaultTransitHmac(vault, transit_key_name(other), mount=settings.vault_transit_mount).ensure_key()
    with transit_session(settings, project) as spec:
        assert spec.token != vault.token
        transit = spec.open()
        transit.ensure_key()
        assert len(transit.hmac_many([b"uid\x1f1.2.3"])[0]) == 32
        foreign = VaultTransitSpec(spec.addr, transit_key_name(other), spec.token, mount=spec.mount, ca=spec.ca).open()
        with pytest.raises(PseudonymError):
            foreign.hmac_many([b"uid\x1f1.2.3"])
        run_client = spec.client()
        assert run_client.is_authenticated()
    assert not run_client.is_authenticated()
