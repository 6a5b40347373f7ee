"""A service's access token is reused while fresh and fetched again before it expires."""

from __future__ import annotations

import threading

from platform_layer.identity_provider import ServiceToken, Tokens


class CountingClient:
    """What ServiceToken needs of an OidcClient: a client-credentials grant, here numbered."""

    def __init__(self, clock, expires_in: int = 300) -> None:
        self.clock, self.expires_in, self.grants = clock, expires_in, 0

    def client_credentials(self) -> Tokens:
        self.grants += 1
        return Tokens(f"token-{self.grants}", self.expires_in, received_at=self.clock())


def test_the_token_is_reused_until_two_thirds_of_its_life_are_gone():
    now = [1000.0]
    client = CountingClient(lambda: now[0])
    token = ServiceToken(client, clock=lambda: now[0])
    assert token() == token() == "token-1"
    now[0] += 199  # 300 s token: renewed from 200 s on
    assert token() == "token-1"
    now[0] += 1
    assert token() == "token-2" and client.grants == 2


def test_concurrent_callers_share_one_grant():
    client = CountingClient(lambda: 0.0)
    token = ServiceToken(client, clock=lambda: 0.0)
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(token())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(seen) == {"token-1"} and client.grants == 1
