"""Per-provider endpoint tokens, kept in Vault KV v2 (``<kv mount>/radlake/providers/<name>``), and the
Vault policy and token the provider's edge runs with (read its own token, HMAC with its project's key).

:func:`check_bearer` is pure: ``(ok, reason)`` with reason ``MISSING_CREDENTIALS`` (HTTP 401) or
``INVALID_CREDENTIALS`` (HTTP 403: wrong token, including another provider's).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import hvac
import hvac.exceptions

from nifi.edge.errors import TokenError
from platform_layer.kafka_credentials import kafka_kv_path
from platform_layer.principals import EDGE_TOKEN_ROLE, KAFKA_EDGE
from platform_layer.transit import VAULT_ERRORS, at_rest_key_name
from radlake.deid.pseudonyms import transit_key_name

MISSING, INVALID = "MISSING_CREDENTIALS", "INVALID_CREDENTIALS"


def kv_path(provider: str) -> str:
    return f"radlake/providers/{provider}"


def edge_tokens_path(provider: str) -> str:
    """Where the accessors of the edge's Vault tokens are kept (outside what the edge itself may read)."""
    return f"radlake/edge-tokens/{provider}"


def policy_name(provider: str) -> str:
    return f"radlake-edge-{provider}"


def check_bearer(authorization: str | None, expected: str) -> tuple[bool, str | None]:
    """``Authorization: Bearer <token>`` against the provider's token, in constant time."""
    if not authorization or not authorization.strip():
        return False, MISSING
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or not expected:
        return False, INVALID
    given = hashlib.sha256(token.strip().encode()).digest()
    wanted = hashlib.sha256(expected.encode()).digest()
    return (True, None) if hmac.compare_digest(given, wanted) else (False, INVALID)


_VAULT_ERRORS = (*VAULT_ERRORS, KeyError, TypeError)  # KeyError, TypeError: an answer without the token


def read_token(client: hvac.Client, provider: str, mount: str = "secret") -> str:
    try:
        answer = client.secrets.kv.v2.read_secret_version(path=kv_path(provider), mount_point=mount,
                                                          raise_on_deleted_version=True)
        return str(answer["data"]["data"]["token"])
    except _VAULT_ERRORS as err:
        raise TokenError(f"cannot read the endpoint token of provider {provider!r} from Vault: {err}") from err


def rotate_token(client: hvac.Client, provider: str, mount: str = "secret") -> str:
    """A new endpoint token for the provider (256 random bits); the edge refuses the old one from its next
    request on (:class:`EdgeCredentials` reads the token on every request)."""
    read_token(client, provider, mount)  # the provider must exist
    return _store_new_token(client, provider, mount)


def _store_new_token(client: hvac.Client, provider: str, mount: str) -> str:
    token = secrets.token_urlsafe(32)
    try:
        client.secrets.kv.v2.create_or_update_secret(path=kv_path(provider), secret={"token": token},
                                                     mount_point=mount)
    except _VAULT_ERRORS as err:
        raise TokenError(f"cannot store the endpoint token of provider {provider!r} in Vault: {err}") from err
    return token


class EdgeCredentials:
    """What the edge knows of its provider's endpoint token: read from Vault on every request (a rotated
    token refuses the old one at once; Vault unreachable answers 503, the sender retries), and the edge's
    own periodic Vault token renewed every ``renew_every_s`` while the edge lives."""

    def __init__(self, client: hvac.Client, provider: str, mount: str = "secret", *,
                 renew_every_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._provider = provider
        self._mount = mount
        self._renew_every_s = renew_every_s
        self._clock = clock
        self._renewed_at = clock()

    def endpoint_token(self) -> str:
        if self._clock() - self._renewed_at >= self._renew_every_s:
            try:
                self._client.auth.token.renew_self()
            except _VAULT_ERRORS as err:
                raise TokenError(f"cannot renew the edge's Vault token: {err}") from err
            self._renewed_at = self._clock()
        return read_token(self._client, self._provider, self._mount)


def ensure_token(client: hvac.Client, provider: str, mount: str = "secret") -> str:
    """The provider's token; created (256 random bits) the first time."""
    try:
        return read_token(client, provider, mount)
    except TokenError:
        return _store_new_token(client, provider, mount)


def _edge_accessors(client: hvac.Client, provider: str, mount: str) -> list[str]:
    try:
        answer = client.secrets.kv.v2.read_secret_version(path=edge_tokens_path(provider), mount_point=mount,
                                                          raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        return []
    return list(answer["data"]["data"].get("accessors", []))


def revoke_edge_tokens(client: hvac.Client, provider: str, mount: str = "secret") -> int:
    """Revoke every Vault token issued to the provider's edge; returns how many were still valid."""
    revoked = 0
    try:
        for accessor in _edge_accessors(client, provider, mount):
            try:
                client.auth.token.revoke_accessor(accessor)
                revoked += 1
            except hvac.exceptions.InvalidRequest:  # expired or revoked already
                continue
        client.secrets.kv.v2.delete_metadata_and_all_versions(path=edge_tokens_path(provider), mount_point=mount)
    except _VAULT_ERRORS as err:
        raise TokenError(f"cannot revoke the edge tokens of provider {provider!r}: {err}") from err
    return revoked


def delete_token(client: hvac.Client, provider: str, mount: str = "secret") -> None:
    """Remove the provider from Vault: its edge tokens revoked, its endpoint token and edge policy deleted."""
    revoke_edge_tokens(client, provider, mount)
    try:
        client.secrets.kv.v2.delete_metadata_and_all_versions(path=kv_path(provider), mount_point=mount)
        client.sys.delete_policy(policy_name(provider))
    except _VAULT_ERRORS as err:
        raise TokenError(f"cannot delete provider {provider!r}'s secrets from Vault: {err}") from err


def edge_vault_token(client: hvac.Client, provider: str, project: str, *, kv_mount: str = "secret",
                     transit_mount: str = "transit") -> str:
    """A periodic Vault token for the provider's edge (token role ``radlake-edge``: an orphan, renewable every
    32 days): read its own endpoint token and the edge's Kafka credentials, HMAC with the project key, and
    make data keys under the provider's at-rest key to seal its quarantine — never unwrap one: what the edge
    sealed, only the administrator opens. Its accessor is kept, so that :func:`delete_token`
    (``radlake provider remove``) revokes it."""
    key = transit_key_name(project)
    policy = (
        f'path "{kv_mount}/data/{kv_path(provider)}" {{ capabilities = ["read"] }}\n'
        f'path "{transit_mount}/datakey/plaintext/{at_rest_key_name(provider)}" {{ capabilities = ["update"] }}\n'
        f'path "{transit_mount}/hmac/{key}" {{ capabilities = ["update"] }}\n'
        f'path "{transit_mount}/hmac/{key}/*" {{ capabilities = ["update"] }}\n'
        f'path "{transit_mount}/keys/{key}" {{ capabilities = ["read"] }}\n'
        f'path "{kv_mount}/data/{kafka_kv_path(KAFKA_EDGE)}" {{ capabilities = ["read"] }}\n'
    )
    try:
        client.sys.create_or_update_policy(policy_name(provider), policy)
        answer = client.auth.token.create(role_name=EDGE_TOKEN_ROLE, policies=[policy_name(provider)],
                                          display_name=f"radlake-edge-{provider}")
        accessors = [*_edge_accessors(client, provider, kv_mount), answer["auth"]["accessor"]]
        client.secrets.kv.v2.create_or_update_secret(path=edge_tokens_path(provider),
                                                     secret={"accessors": accessors}, mount_point=kv_mount)
        return str(answer["auth"]["client_token"])
    except _VAULT_ERRORS as err:
        raise TokenError(f"cannot create the edge's Vault token for {provider!r}: {err}") from err
