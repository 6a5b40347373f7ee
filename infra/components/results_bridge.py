"""The results bridge (``streams.results_bridge``): HTTPS on loopback, one Python process.

``prepare`` issues its certificate from the platform CA (``<state>/results-bridge/tls``) and, on a broker started
before the bridge's principal existed, sets that principal's SCRAM credentials. It is healthy when ``/healthz``
answers 200 (the hub has read the retained result events) and ``/events`` refuses a caller without a token.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from infra.component import Component, RestartedToRenew, radlake_process
from infra.errors import StackError
from platform_layer.tls import ca_file

SERVER_NAME = "results-bridge.radlake.local"


class ResultsBridge(RestartedToRenew, Component):
    name = "results-bridge"
    server_name = SERVER_NAME

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.settings.results_bridge_port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.results_bridge_port]

    @property
    def version(self) -> str:
        return "radlake"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    def prepare(self) -> None:
        from infra.components.kafka import Kafka  # noqa: PLC0415 - a component module imports another only here

        self._certificate()
        broker = Kafka(self.settings)
        if not broker.external:
            if broker.pid() is None:
                raise StackError("results-bridge: Kafka is not running; `radlake stack up kafka registry keycloak "
                                 "results-bridge`")
            broker.after_start()

    def command(self) -> tuple[list[str], dict[str, str]]:
        return radlake_process(self.settings, "bridge", "serve")

    def responding(self) -> bool:
        if not ca_file(self.settings).exists():
            return False
        try:
            context = ssl.create_default_context(cafile=str(ca_file(self.settings)))
            with httpx.Client(base_url=self.address, verify=context, timeout=5.0) as client:
                if client.get("/healthz").status_code != 200:
                    return False
                return client.get("/events").status_code == 401  # anonymous callers refused: radlake's bridge
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False
