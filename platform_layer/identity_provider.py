"""Keycloak's OpenID Connect endpoints and admin REST API, over HTTPS verified against a CA file.

Nothing here knows radlake's realm: callers name the realm, the clients and the roles.
:class:`OidcClient` speaks for one client of one realm (client credentials, the device flow, refresh,
revocation); :class:`KeycloakAdmin` manages realms, roles, clients and users with an administrator
client's service-account token, fetched (and fetched again before it expires) from the realm the
administrator lives in. Every request has an explicit timeout; every failure is one of this module's
errors, raised from its cause.

httpx rather than python-keycloak: radlake needs about twenty admin calls, and python-keycloak would add
its own HTTP stacks (requests, requests-toolbelt) and jwcrypto for them.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt

from platform_layer.device_authorization import DeviceAuthorization
from platform_layer.errors import IdentityProviderError

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
PAGE = 100


class IdentityProviderUnavailable(IdentityProviderError):
    """Keycloak could not be reached, or its certificate did not verify against the CA file."""


class CredentialsRefused(IdentityProviderError):
    """The token endpoint refused the client's secret, or the refresh token / grant it was given."""


class RequestRefused(IdentityProviderError):
    """Keycloak answered a request with an error status; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class NotFound(RequestRefused):
    """What the request names does not exist."""


class Conflict(RequestRefused):
    """What the request would create exists already."""


def _ssl_context(ca_file: Path) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as err:
        raise IdentityProviderUnavailable(f"cannot read the CA file {ca_file}: {err}") from err


def _reason(response: httpx.Response) -> str:
    """Keycloak's own words for an error answer (its JSON fields), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("errorMessage") or body.get("error_description") or body.get("error") or body)
    return str(body)[:200]


def claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT, **not verified**: for showing who a token is for, when it came straight from
    the token endpoint over verified TLS. Never for an authorisation decision."""
    try:
        payload = jwt.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError) as err:
        raise IdentityProviderError(f"not a JWT ({err})") from err


@dataclass(frozen=True)
class Tokens:
    """A token response (RFC 6749 section 5.1) and when it was received (``time.time()``)."""

    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(default="", repr=False)
    refresh_expires_in: int = 0
    id_token: str = field(default="", repr=False)
    scope: str = ""
    received_at: float = 0.0

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any], received_at: float | None = None) -> Tokens:
        return cls(str(answer["access_token"]), int(answer.get("expires_in") or 0),
                   str(answer.get("refresh_token") or ""), int(answer.get("refresh_expires_in") or 0),
                   str(answer.get("id_token") or ""), str(answer.get("scope") or ""),
                   time.time() if received_at is None else received_at)

    @property
    def claims(self) -> dict[str, Any]:
        return claims(self.access_token)


class _Http:
    """One HTTPS connection pool verified against ``ca_file``; every failure becomes a named error, its
    message ending with ``hint`` (what to do about it)."""

    def __init__(self, base_url: str, ca_file: Path, timeout: httpx.Timeout, hint: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self._hint = f"; {hint}" if hint else ""
        self._client = httpx.Client(base_url=self.base_url, verify=_ssl_context(ca_file), timeout=timeout)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as err:
            raise IdentityProviderUnavailable(f"keycloak at {self.base_url} did not answer in time "
                                              f"({type(err).__name__}){self._hint}") from err
        except httpx.TransportError as err:
            raise IdentityProviderUnavailable(f"keycloak at {self.base_url} is not answering: "
                                              f"{err}{self._hint}") from err

    def close(self) -> None:
        self._client.close()


class OidcClient:
    """One client of one realm at its OpenID Connect endpoints (public when ``client_secret`` is None)."""

    def __init__(self, base_url: str, realm: str, client_id: str, *, ca_file: Path,
                 client_secret: str | None = None, timeout: httpx.Timeout = TIMEOUT, hint: str = "") -> None:
        self._http = _Http(base_url, ca_file, timeout, hint)
        self.realm, self.client_id = realm, client_id
        self._secret = client_secret

    @property
    def issuer(self) -> str:
        return f"{self._http.base_url}/realms/{quote(self.realm, safe='')}"

    def _endpoint(self, name: str) -> str:
        return f"/realms/{quote(self.realm, safe='')}/protocol/openid-connect/{name}"

    def _form(self, **fields: str) -> dict[str, str]:
        form = {"client_id": self.client_id, **fields}
        if self._secret is not None:
            form["client_secret"] = self._secret
        return form

    def _token(self, **fields: str) -> Tokens:
        response = self._http.send("POST", self._endpoint("token"), data=self._form(**fields))
        if response.status_code == 200:
            return Tokens.from_answer(response.json())
        if response.status_code in (400, 401):
            raise CredentialsRefused(f"keycloak refused {fields.get('grant_type')} for client {self.client_id} "
                                     f"in realm {self.realm}: {_reason(response)}")
        raise RequestRefused(f"keycloak's token endpoint answered {response.status_code}: {_reason(response)}",
                             response.status_code)

    def client_credentials(self) -> Tokens:
        """A token for the client's own service account (confidential clients)."""
        return self._token(grant_type="client_credentials")

    def refresh(self, refresh_token: str) -> Tokens:
        return self._token(grant_type="refresh_token", refresh_token=refresh_token)

    def authorization_url(self, *, redirect_uri: str, state: str, code_challenge: str, nonce: str,
                          scope: str = "openid") -> str:
        """Where a browser starts the authorization code flow (RFC 6749 4.1) with PKCE (RFC 7636, S256)."""
        query = urlencode({"client_id": self.client_id, "response_type": "code", "redirect_uri": redirect_uri,
                           "scope": scope, "state": state, "nonce": nonce, "code_challenge": code_challenge,
                           "code_challenge_method": "S256"})
        return f"{self.issuer}/protocol/openid-connect/auth?{query}"

    def authorization_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> Tokens:
        """The tokens for an authorization code the browser brought back (with the PKCE verifier)."""
        return self._token(grant_type="authorization_code", code=code, redirect_uri=redirect_uri,
                           code_verifier=code_verifier)

    def end_session_url(self, *, id_token: str, post_logout_redirect_uri: str) -> str:
        """Where a browser ends its single sign-on session (OpenID Connect RP-initiated logout)."""
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_redirect_uri,
                           "client_id": self.client_id})
        return f"{self.issuer}/protocol/openid-connect/logout?{query}"

    def start_device_authorization(self, scope: str = "openid") -> DeviceAuthorization:
        response = self._http.send("POST", self._endpoint("auth/device"), data=self._form(scope=scope))
        if response.status_code != 200:
            raise RequestRefused(f"keycloak refused a device authorization for client {self.client_id}: "
                                 f"{_reason(response)}", response.status_code)
        return DeviceAuthorization.from_answer(response.json())

    def device_token(self, device_code: str) -> Tokens | str:
        """One poll of the token endpoint: the tokens, or its error code (``authorization_pending``...)."""
        response = self._http.send("POST", self._endpoint("token"), data=self._form(
            grant_type="urn:ietf:params:oauth:grant-type:device_code", device_code=device_code))
        if response.status_code == 200:
            return Tokens.from_answer(response.json())
        try:
            error = response.json().get("error")
        except ValueError:
            error = None
        if response.status_code in (400, 401) and error:
            return str(error)
        raise RequestRefused(f"keycloak's token endpoint answered {response.status_code}: {_reason(response)}",
                             response.status_code)

    def __enter__(self) -> OidcClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def revoke(self, token: str, hint: str = "refresh_token") -> None:
        """RFC 7009 revocation; revoking a refresh token ends the client's session for that user."""
        response = self._http.send("POST", self._endpoint("revoke"), data=self._form(token=token,
                                                                                     token_type_hint=hint))
        if response.status_code != 200:
            raise RequestRefused(f"keycloak refused to revoke the {hint}: {_reason(response)}",
                                 response.status_code)

    def close(self) -> None:
        self._http.close()


class ServiceToken:
    """A confidential client's access token for its own service account, fetched again once ``renew_after``
    of its life is gone (so a call never presents a token about to expire). Calling it returns the token;
    safe from several threads."""

    def __init__(self, client: OidcClient, renew_after: float = 2 / 3,
                 clock: Callable[[], float] = time.time) -> None:
        self._client, self._renew_after, self._clock = client, renew_after, clock
        self._tokens: Tokens | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            tokens = self._tokens
            if tokens is None or self._clock() >= tokens.received_at + tokens.expires_in * self._renew_after:
                tokens = self._tokens = self._client.client_credentials()
            return tokens.access_token


class KeycloakAdmin:
    """Keycloak's admin REST API as the confidential client ``client_id`` of realm ``token_realm`` (its
    service account holds the admin roles)."""

    def __init__(self, base_url: str, *, ca_file: Path, client_id: str, client_secret: str,
                 token_realm: str = "master", timeout: httpx.Timeout = TIMEOUT, hint: str = "") -> None:
        self._http = _Http(base_url, ca_file, timeout, hint)
        self._login = OidcClient(base_url, token_realm, client_id, ca_file=ca_file, client_secret=client_secret,
                                 timeout=timeout, hint=hint)
        self.client_id, self.token_realm = client_id, token_realm
        self._token: Tokens | None = None

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def _bearer(self) -> str:
        token = self._token
        if token is None or time.time() > token.received_at + token.expires_in - 15:
            token = self._token = self._login.client_credentials()
        return token.access_token

    def check(self) -> None:
        """Log in now (raises :class:`CredentialsRefused` when the secret is not this client's)."""
        self._token = None
        self._bearer()

    def _request(self, method: str, path: str, *, json_body: object = None,
                 params: Mapping[str, str | int] | None = None) -> httpx.Response:
        response = self._http.send(method, f"/admin/realms{path}", json=json_body, params=params,
                                   headers={"Authorization": f"Bearer {self._bearer()}"})
        if response.is_success:
            return response
        message = f"keycloak refused {method} /admin/realms{path}: {response.status_code} {_reason(response)}"
        if response.status_code == 404:
            raise NotFound(message, 404)
        if response.status_code == 409:
            raise Conflict(message, 409)
        raise RequestRefused(message, response.status_code)

    def _get(self, path: str, **params: str | int) -> Any:
        return self._request("GET", path, params=params).json()

    def _get_or_none(self, path: str) -> Any:
        try:
            return self._get(path)
        except NotFound:
            return None

    def _pages(self, path: str, **params: str | int) -> Iterator[dict[str, Any]]:
        first = 0
        while True:
            page = self._get(path, first=first, max=PAGE, **params)
            yield from page
            if len(page) < PAGE:
                return
            first += PAGE

    # --- realms ------------------------------------------------------------------------------
    def realm(self, realm: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/{_seg(realm)}")

    def ensure_realm(self, realm: str, settings: Mapping[str, Any]) -> bool:
        """Create the realm with ``settings``, or apply them to it; True when it was created."""
        if self.realm(realm) is None:
            self._request("POST", "", json_body={"realm": realm, **settings})
            return True
        self._request("PUT", f"/{_seg(realm)}", json_body={"realm": realm, **settings})
        return False

    def user_profile(self, realm: str) -> dict[str, Any]:
        """The realm's declarative user profile (which attributes users have, which are required)."""
        return dict(self._get(f"/{_seg(realm)}/users/profile"))

    def set_user_profile(self, realm: str, profile: Mapping[str, Any]) -> None:
        self._request("PUT", f"/{_seg(realm)}/users/profile", json_body=dict(profile))

    # --- realm roles -------------------------------------------------------------------------
    def realm_role(self, realm: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/{_seg(realm)}/roles/{_seg(name)}")

    def realm_roles(self, realm: str) -> list[str]:
        return sorted(role["name"] for role in self._pages(f"/{_seg(realm)}/roles", briefRepresentation="true"))

    def ensure_realm_role(self, realm: str, name: str, description: str = "") -> bool:
        """True when the role was created (it is left as it is when it exists)."""
        if self.realm_role(realm, name) is not None:
            return False
        try:
            self._request("POST", f"/{_seg(realm)}/roles", json_body={"name": name, "description": description})
        except Conflict:  # made meanwhile by another command
            return False
        return True

    def delete_realm_role(self, realm: str, name: str) -> bool:
        """True when the role existed and was deleted (every user holding it loses it)."""
        try:
            self._request("DELETE", f"/{_seg(realm)}/roles/{_seg(name)}")
        except NotFound:
            return False
        return True

    # --- clients -----------------------------------------------------------------------------
    def client(self, realm: str, client_id: str) -> dict[str, Any] | None:
        found = self._get(f"/{_seg(realm)}/clients", clientId=client_id)
        return found[0] if found else None

    def clients(self, realm: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/{_seg(realm)}/clients"))

    def ensure_client(self, realm: str, representation: Mapping[str, Any]) -> str:
        """Create the client or apply ``representation`` to it; returns its internal id."""
        client_id = str(representation["clientId"])
        existing = self.client(realm, client_id)
        if existing is None:
            self._request("POST", f"/{_seg(realm)}/clients", json_body=dict(representation))
            created = self.client(realm, client_id)
            if created is None:
                raise IdentityProviderError(f"keycloak created client {client_id} in {realm} but does not list it")
            return str(created["id"])
        merged = {**existing, **representation,
                  "attributes": {**existing.get("attributes", {}), **representation.get("attributes", {})}}
        self._request("PUT", f"/{_seg(realm)}/clients/{existing['id']}", json_body=merged)
        return str(existing["id"])

    def delete_client(self, realm: str, internal_id: str) -> None:
        self._request("DELETE", f"/{_seg(realm)}/clients/{internal_id}")

    def client_secret(self, realm: str, internal_id: str) -> str:
        return str(self._get(f"/{_seg(realm)}/clients/{internal_id}/client-secret")["value"])

    def regenerate_client_secret(self, realm: str, internal_id: str) -> str:
        """A new secret for the client; the old one is refused from now on."""
        return str(self._request("POST", f"/{_seg(realm)}/clients/{internal_id}/client-secret").json()["value"])

    def service_account_user_id(self, realm: str, internal_id: str) -> str:
        return str(self._get(f"/{_seg(realm)}/clients/{internal_id}/service-account-user")["id"])

    def client_role(self, realm: str, internal_id: str, role: str) -> dict[str, Any]:
        return dict(self._get(f"/{_seg(realm)}/clients/{internal_id}/roles/{_seg(role)}"))

    def add_client_roles(self, realm: str, user_id: str, internal_id: str, roles: list[str]) -> None:
        body = [self.client_role(realm, internal_id, role) for role in roles]
        self._request("POST", f"/{_seg(realm)}/users/{user_id}/role-mappings/clients/{internal_id}", json_body=body)

    # --- users -------------------------------------------------------------------------------
    def user(self, realm: str, username: str) -> dict[str, Any] | None:
        found = self._get(f"/{_seg(realm)}/users", username=username, exact="true")
        return found[0] if found else None

    def users(self, realm: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/{_seg(realm)}/users", briefRepresentation="true"))

    def create_user(self, realm: str, username: str, *, email: str, first_name: str = "", last_name: str = "",
                    temporary_password: str | None = None) -> str:
        """A new enabled user; with ``temporary_password`` Keycloak makes them choose their own at first
        login. Returns the user's id."""
        body: dict[str, Any] = {"username": username, "email": email, "firstName": first_name,
                                "lastName": last_name, "enabled": True, "emailVerified": False}
        if temporary_password is not None:
            body["credentials"] = [{"type": "password", "value": temporary_password, "temporary": True}]
        location = self._request("POST", f"/{_seg(realm)}/users", json_body=body).headers.get("location", "")
        return location.rstrip("/").rsplit("/", 1)[-1]

    def delete_user(self, realm: str, user_id: str) -> None:
        self._request("DELETE", f"/{_seg(realm)}/users/{user_id}")

    def user_realm_roles(self, realm: str, user_id: str) -> list[str]:
        """The realm roles mapped to the user directly (not through groups or composites)."""
        return sorted(role["name"] for role in self._get(f"/{_seg(realm)}/users/{user_id}/role-mappings/realm"))

    def add_realm_roles(self, realm: str, user_id: str, names: list[str]) -> None:
        roles = [self._role_or_error(realm, name) for name in names]
        self._request("POST", f"/{_seg(realm)}/users/{user_id}/role-mappings/realm", json_body=roles)

    def remove_realm_roles(self, realm: str, user_id: str, names: list[str]) -> None:
        roles = [self._role_or_error(realm, name) for name in names]
        self._request("DELETE", f"/{_seg(realm)}/users/{user_id}/role-mappings/realm", json_body=roles)

    def _role_or_error(self, realm: str, name: str) -> dict[str, Any]:
        role = self.realm_role(realm, name)
        if role is None:
            raise NotFound(f"realm {realm} has no role {name!r}", 404)
        return role

    def __enter__(self) -> KeycloakAdmin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._login.close()


def _seg(text: str) -> str:
    """``text`` as one URL path segment (role names hold ':')."""
    return quote(text, safe="")


@dataclass(frozen=True)
class VerifiedToken:
    """Who a verified access token speaks for."""

    username: str
    roles: frozenset[str]
    client: str
    expires_at: float


class AccessTokenVerifier:
    """Verifies a realm's access tokens the way a resource server must: the signature against the realm's
    published keys (fetched over HTTPS verified against ``ca_file``, again when a token names an unknown key),
    the issuer, the expiry, and that it is an access token (``typ`` ``Bearer``)."""

    def __init__(self, issuer: str, ca_file: Path, *, leeway_s: float = 5.0) -> None:
        self._issuer, self._leeway = issuer, leeway_s
        self._keys = jwt.PyJWKClient(f"{issuer}/protocol/openid-connect/certs", cache_keys=True,
                                     ssl_context=_ssl_context(ca_file), timeout=10)

    def verify(self, token: str) -> VerifiedToken:
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            payload = jwt.decode(token, key.key, algorithms=["RS256", "ES256", "PS256"], issuer=self._issuer,
                                 leeway=self._leeway, options={"verify_aud": False, "require": ["exp", "iss"]})
        except jwt.PyJWKClientConnectionError as err:
            raise IdentityProviderUnavailable(f"the realm's keys could not be fetched: {err}") from err
        except jwt.PyJWTError as err:
            raise CredentialsRefused(f"the access token was refused: {err}") from err
        if payload.get("typ") != "Bearer" or not payload.get("preferred_username"):
            raise CredentialsRefused("not an access token of a user or service account")
        return VerifiedToken(username=str(payload["preferred_username"]),
                             roles=frozenset(payload.get("realm_access", {}).get("roles", [])),
                             client=str(payload.get("azp", "")), expires_at=float(payload["exp"]))
