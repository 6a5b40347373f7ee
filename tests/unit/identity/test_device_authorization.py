"""Polling the token endpoint in the device flow (RFC 8628 section 3.5), against a fake clock."""

from __future__ import annotations

import pytest

from platform_layer.device_authorization import (
    AuthorizationDenied,
    DeviceAuthorization,
    DeviceCodeExpired,
    DeviceFlowError,
    poll_for_token,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _script(*answers):
    """An ``ask`` that returns the answers in order and records the device codes it was given."""
    asked: list[str] = []
    queue = list(answers)

    def ask(device_code: str):
        asked.append(device_code)
        return queue.pop(0)

    return ask, asked


AUTH = DeviceAuthorization("device-123", "ABCD-EFGH", "https://idp/device", expires_in=60, interval=5)


def test_it_waits_the_interval_before_each_poll_and_returns_the_tokens():
    clock = FakeClock()
    ask, asked = _script("authorization_pending", "authorization_pending", {"access_token": "t"})
    assert poll_for_token(ask, AUTH, clock=clock, sleep=clock.sleep) == {"access_token": "t"}
    assert clock.slept == [5, 5, 5]
    assert asked == ["device-123"] * 3


def test_slow_down_adds_five_seconds_for_good():
    clock = FakeClock()
    ask, _ = _script("slow_down", "authorization_pending", "slow_down", "authorization_pending", {"ok": 1})
    poll_for_token(ask, AUTH, clock=clock, sleep=clock.sleep)
    assert clock.slept == [5, 10, 10, 15, 15]


def test_it_gives_up_when_expires_in_has_passed_without_asking_again():
    clock = FakeClock()
    ask, asked = _script(*["authorization_pending"] * 100)
    with pytest.raises(DeviceCodeExpired, match="ABCD-EFGH"):
        poll_for_token(ask, AUTH, clock=clock, sleep=clock.sleep)
    assert len(asked) == 11  # at 5, 10, ... 55 s; at 60 s the code has expired
    assert clock.now == 1060


@pytest.mark.parametrize(("answer", "error"), [
    ("access_denied", AuthorizationDenied),
    ("expired_token", DeviceCodeExpired),
    ("invalid_grant", DeviceFlowError),
])
def test_a_final_error_ends_the_polling(answer, error):
    clock = FakeClock()
    ask, asked = _script("authorization_pending", answer)
    with pytest.raises(error):
        poll_for_token(ask, AUTH, clock=clock, sleep=clock.sleep)
    assert len(asked) == 2


def test_the_server_answer_is_read_with_defaults():
    auth = DeviceAuthorization.from_answer({"device_code": "secret-device-code", "user_code": "U",
                                            "verification_uri": "https://x", "expires_in": 600})
    assert (auth.interval, auth.verification_uri_complete) == (5, "")
    assert "secret-device-code" not in repr(auth)  # whoever holds the device code gets the tokens
