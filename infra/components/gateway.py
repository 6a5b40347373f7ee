"""The lake gateway (``spark_jobs.gateway``): Arrow Flight over TLS on loopback, one Python process.

``prepare`` issues its certificate from the platform CA (``<state>/gateway/tls``, renewed by ``stack up``
once two thirds of its life are gone). It is healthy when a Flight call without a token gets the answer
"unauthenticated": the server is up, speaks TLS that verifies, and refuses anonymous callers.
"""

from __future__ import annotations

import pyarrow
import pyarrow.flight as flight

from infra.component import Component, RestartedToRenew, radlake_process
from platform_layer.endpoints import gateway_location
from platform_layer.tls import ca_file

SERVER_NAME = "gateway.radlake.local"


class Gateway(RestartedToRenew, Component):
    name = "gateway"
    server_name = SERVER_NAME

    @property
    def address(self) -> str:
        return gateway_location(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.gateway_port]

    @property
    def version(self) -> str:
        return f"arrow flight {pyarrow.__version__}"

    @property
    def tls_dir(self):
        return self.home / "tls"

    def prepare(self) -> None:
        self._certificate()

    def command(self) -> tuple[list[str], dict[str, str]]:
        return radlake_process(self.settings, "gateway", "serve")

    def responding(self) -> bool:
        if not ca_file(self.settings).exists():
            return False
        client = flight.FlightClient(self.address, tls_root_certs=ca_file(self.settings).read_bytes())
        try:
            list(client.list_flights(options=flight.FlightCallOptions(timeout=2.0)))
        except flight.FlightUnauthenticatedError:
            return True
        except flight.FlightError:
            return False
        finally:
            client.close()
        return False  # an anonymous caller was answered: not the gateway radlake runs
