"""Vault against the stack's OpenBao: Transit HMACs stable across a restart, edge tokens revoked with their provider."""

from __future__ import annotations

import base64
import uuid

import hvac
import pytest

from infra import stack
from nifi.edge.tokens import EdgeCredentials, delete_token, edge_vault_token, ensure_token, kv_path, rotate_token
from platform_layer.vault import admin_client

pytestmark = pytest.mark.integration


def _hmac(vault, key: str, value: bytes) -> str:
    return vault.secrets.transit.generate_hmac(
        name=key, hash_input=base64.b64encode(value).decode(), algorithm="sha2-256"
    )["data"]["hmac"]


def test_transit_hmac_is_stable_across_a_vault_restart(settings, vault):
    key = f"test-{uuid.uuid4().hex[:8]}"
    vault.secrets.transit.create_key(name=key)
    before = _hmac(vault, key, b"PATIENT-0001")
    assert before.startswith("vault:v1:")
    assert _hmac(vault, key, b"PATIENT-0002") != before

    component = stack.component("vault", settings)
    component.kill()  # SIGKILL: the restart must recover from storage alone
    component.start()  # unseals with the key kept in the state dir
    assert _hmac(admin_client(settings), key, b"PATIENT-0001") == before


def test_kv_v2_is_enabled(vault):
    path = f"tests/{uuid.uuid4().hex[:8]}"
    vault.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": "abc"}, mount_point="secret")
    read = vault.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"token": "abc"}


def test_unseal_key_and_root_token_are_private(settings, vault):
    init_file = stack.component("vault", settings).init_file
    assert init_file.stat().st_mode & 0o077 == 0


def test_removing_a_provider_revokes_its_edge_tokens_at_once(vault, settings):
    provider = f"revoke-{uuid.uuid4().hex[:8]}"
    ensure_token(vault, provider, settings.vault_kv_mount)
    tokens = [edge_vault_token(vault, provider, "revoke-test", kv_mount=settings.vault_kv_mount,
                               transit_mount=settings.vault_transit_mount) for _ in range(2)]  # added twice
    edges = [hvac.Client(url=vault.url, token=token) for token in tokens]
    assert all(edge.secrets.kv.v2.read_secret_version(path=kv_path(provider), mount_point=settings.vault_kv_mount,
                                                      raise_on_deleted_version=True) for edge in edges)
    delete_token(vault, provider, settings.vault_kv_mount)
    for edge in edges:
        assert not edge.is_authenticated()


def test_a_rotated_endpoint_token_is_what_the_edge_checks_from_its_next_request(vault, settings):
    provider = f"rotate-{uuid.uuid4().hex[:8]}"
    old = ensure_token(vault, provider, settings.vault_kv_mount)
    edge = hvac.Client(url=vault.url, token=edge_vault_token(vault, provider, "rotate-test",
                                                            kv_mount=settings.vault_kv_mount,
                                                            transit_mount=settings.vault_transit_mount))
    credentials = EdgeCredentials(edge, provider, settings.vault_kv_mount, renew_every_s=0)  # renews every call
    assert credentials.endpoint_token() == old
    new = rotate_token(vault, provider, settings.vault_kv_mount)
    assert new != old and credentials.endpoint_token() == new
    assert edge.auth.token.lookup_self()["data"]["ttl"] > 0
    delete_token(vault, provider, settings.vault_kv_mount)
