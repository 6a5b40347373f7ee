"""The OAuth 2.0 Device Authorization Grant (RFC 8628) from the device's side: what the authorization server
hands out, and polling its token endpoint until the person approves, refuses, or the code expires.

:func:`poll_for_token` is pure given its ``clock`` and ``sleep``: it asks nothing over the network itself
(the caller passes the one-request ``ask``), so a test drives it with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from platform_layer.errors import IdentityProviderError

T = TypeVar("T")

# RFC 8628 section 3.5: the token endpoint's error codes while polling
AUTHORIZATION_PENDING = "authorization_pending"
SLOW_DOWN = "slow_down"
ACCESS_DENIED = "access_denied"
EXPIRED_TOKEN = "expired_token"
SLOW_DOWN_STEP_S = 5  # "the interval MUST be increased by 5 seconds for this and all subsequent requests"
DEFAULT_INTERVAL_S = 5  # when the server names none


class DeviceFlowError(IdentityProviderError):
    """The device flow ended without tokens; the message says why."""


class DeviceCodeExpired(DeviceFlowError):
    """Nobody approved the code before it expired."""


class AuthorizationDenied(DeviceFlowError):
    """The person refused the request on the verification page."""


@dataclass(frozen=True)
class DeviceAuthorization:
    """The device authorization response (RFC 8628 section 3.2)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: int
    interval: int = DEFAULT_INTERVAL_S
    verification_uri_complete: str = ""

    @classmethod
    def from_answer(cls, answer: dict[str, object]) -> DeviceAuthorization:
        return cls(str(answer["device_code"]), str(answer["user_code"]), str(answer["verification_uri"]),
                   int(str(answer["expires_in"])), int(str(answer.get("interval") or DEFAULT_INTERVAL_S)),
                   str(answer.get("verification_uri_complete") or ""))


def poll_for_token(ask: Callable[[str], T | str], authorization: DeviceAuthorization, *,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``ask(device_code)`` every ``interval`` seconds until it returns tokens (anything but a string);
    a string is the token endpoint's error code. ``slow_down`` adds 5 s to the interval for good;
    ``access_denied`` raises :class:`AuthorizationDenied`; ``expired_token``, or ``expires_in`` passing,
    :class:`DeviceCodeExpired`."""
    interval = max(authorization.interval, 1)
    deadline = clock() + authorization.expires_in
    while True:
        sleep(interval)
        if clock() >= deadline:
            raise DeviceCodeExpired(f"the code {authorization.user_code} expired before it was approved "
                                    f"({authorization.expires_in} s); start again")
        answer = ask(authorization.device_code)
        if not isinstance(answer, str):
            return answer
        if answer == AUTHORIZATION_PENDING:
            continue
        if answer == SLOW_DOWN:
            interval += SLOW_DOWN_STEP_S
            continue
        if answer == ACCESS_DENIED:
            raise AuthorizationDenied(f"the request with code {authorization.user_code} was refused")
        if answer == EXPIRED_TOKEN:
            raise DeviceCodeExpired(f"the code {authorization.user_code} expired before it was approved; "
                                    "start again")
        raise DeviceFlowError(f"the token endpoint answered {answer!r} while waiting for approval")
