"""The tokens of the person logged in with ``radlake login``, kept in one file readable by them only
(:attr:`Settings.token_file`, ``~/.config/radlake/token.json`` by default, mode 0600).

The file holds the access, refresh and ID tokens and where they come from (issuer, client). Whoever reads it
acts as that person until the refresh token expires or ``radlake logout`` revokes it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_layer.errors import IdentityProviderError
from platform_layer.identity_provider import Tokens, claims
from platform_layer.realm_roles import is_radlake_role
from platform_layer.state import write_private


class NotLoggedIn(IdentityProviderError):
    """No session is stored, or it has expired or been revoked."""


@dataclass(frozen=True)
class UserSession:
    issuer: str
    client_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    refresh_expires_at: float  # 0: the refresh token has no expiry of its own
    id_token: str = field(default="", repr=False)

    @classmethod
    def from_tokens(cls, issuer: str, client_id: str, tokens: Tokens) -> UserSession:
        return cls(issuer, client_id, tokens.access_token, tokens.refresh_token,
                   tokens.received_at + tokens.expires_in,
                   tokens.received_at + tokens.refresh_expires_in if tokens.refresh_expires_in else 0.0,
                   tokens.id_token)

    @property
    def claims(self) -> dict[str, Any]:
        """The access token's claims (not verified: see :func:`platform_layer.identity_provider.claims`)."""
        return claims(self.access_token)

    @property
    def username(self) -> str:
        return str(self.claims.get("preferred_username") or self.claims.get("sub") or "?")

    @property
    def roles(self) -> list[str]:
        """radlake's realm roles in the access token (Keycloak's own default roles left out)."""
        granted = self.claims.get("realm_access", {}).get("roles", [])
        return sorted(role for role in granted if is_radlake_role(role))

    def refresh_expired(self, now: float | None = None) -> bool:
        return bool(self.refresh_expires_at) and (now or time.time()) >= self.refresh_expires_at


def save(path: Path, session: UserSession) -> None:
    write_private(path, json.dumps(session.__dict__))


def load(path: Path) -> UserSession:
    try:
        record = json.loads(path.read_text())
        return UserSession(**record)
    except FileNotFoundError as err:
        raise NotLoggedIn("not logged in; run `radlake login`") from err
    except (ValueError, TypeError) as err:
        raise NotLoggedIn(f"{path} is not a radlake session ({err}); run `radlake login` again") from err


def forget(path: Path) -> None:
    path.unlink(missing_ok=True)
