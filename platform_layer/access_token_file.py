"""A person's own access token kept in a file (JSON, mode 0600, owned by them): what the notebooks hub gives each
user's kernel, read by :class:`~platform_layer.lake_access.LakeGatewayClient` when
:attr:`Settings.access_token_file` names it.

The file holds the access token, when it expires, and where to renew it: the hub's REST API for this user, with
the user's own hub token (the one their notebook server already holds). It holds no refresh token: the hub keeps
that in its encrypted auth state and, asked for the user's model, refreshes the access token with Keycloak first.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from platform_layer.identity_provider import claims
from platform_layer.state import write_private
from platform_layer.user_session import NotLoggedIn

# Renew this long before the token expires (the hub refreshes tokens that have less than twice this left).
RENEW_MARGIN_S = 60.0
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


@dataclass(frozen=True)
class AccessTokenRecord:
    access_token: str = field(repr=False)
    expires_at: float
    renew_url: str = ""  # GET: the hub's model of this user, auth state included
    renew_token: str = field(default="", repr=False)  # the user's own hub API token

    @classmethod
    def for_token(cls, access_token: str, renew_url: str = "", renew_token: str = "") -> AccessTokenRecord:
        return cls(access_token, float(claims(access_token).get("exp", 0)), renew_url, renew_token)


def save(path: Path, record: AccessTokenRecord) -> None:
    write_private(path, json.dumps(asdict(record)))


def load(path: Path) -> AccessTokenRecord:
    try:
        return AccessTokenRecord(**json.loads(path.read_text()))
    except FileNotFoundError as err:
        raise NotLoggedIn(f"no access token at {path}; log in to the notebooks hub again") from err
    except (ValueError, TypeError) as err:
        raise NotLoggedIn(f"{path} is not an access token file ({err})") from err


class AccessTokenFile:
    """A token source (``LakeGatewayClient(token=...)``): the file's access token, renewed through the hub when
    it is about to expire."""

    def __init__(self, path: Path, ca_file: Path) -> None:
        self._path = path
        self._ca_file = ca_file

    def __call__(self) -> str:
        record = load(self._path)
        if record.expires_at - RENEW_MARGIN_S > time.time():
            return record.access_token
        if not record.renew_url:
            raise NotLoggedIn("the access token has expired; log in to the notebooks hub again")
        renewed = AccessTokenRecord.for_token(self._renewed(record), record.renew_url, record.renew_token)
        save(self._path, renewed)
        return renewed.access_token

    def _renewed(self, record: AccessTokenRecord) -> str:
        try:
            with httpx.Client(verify=ssl.create_default_context(cafile=str(self._ca_file)), timeout=TIMEOUT) as hub:
                answer = hub.get(record.renew_url, headers={"Authorization": f"token {record.renew_token}"})
        except (httpx.HTTPError, OSError, ssl.SSLError) as err:
            raise NotLoggedIn(f"cannot renew the access token at the notebooks hub: {err}") from err
        if answer.status_code in (401, 403):
            raise NotLoggedIn("the notebooks hub refused to renew the access token; log in to the hub again")
        if answer.status_code != 200:
            raise NotLoggedIn(f"the notebooks hub answered {answer.status_code} when asked to renew the access token")
        token = ((answer.json() or {}).get("auth_state") or {}).get("access_token")
        if not token:
            raise NotLoggedIn("the notebooks hub holds no token for this user any more; log in to the hub again")
        return str(token)
