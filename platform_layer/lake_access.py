"""A data scientist's reads of the lake: the datasets they are granted, through the lake gateway.

```python
from platform_layer.lake_access import LakeGatewayClient
with LakeGatewayClient() as lake:                 # as the user of `radlake login`
    lake.datasets()                               # ['lung-cohort', ...]
    table = lake.read("lung-cohort")              # a pyarrow.Table; .to_pandas(), duckdb.from_arrow(...)
```

The client holds the user's own access token only: from :attr:`Settings.access_token_file` when it is set (a
notebook kernel started by the hub, :mod:`platform_layer.access_token_file`), else refreshed from the stored
session of ``radlake login``; the gateway decides and audits every read. A refusal is :class:`~platform_layer.governance.AccessRefused`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

import pyarrow as pa
import pyarrow.flight as flight

from platform_layer.access_token_file import AccessTokenFile
from platform_layer.endpoints import gateway_location
from platform_layer.governance import AccessRefused, GovernanceError
from platform_layer.realm import refreshed_session
from platform_layer.settings import Settings, get_settings
from platform_layer.tls import ca_file

TIMEOUT_S = 300.0
T = TypeVar("T")


def user_token(settings: Settings) -> Callable[[], str]:
    """The caller's own token source: the file a notebook kernel was given (:attr:`Settings.access_token_file`),
    else the session of ``radlake login``, refreshed."""
    if settings.access_token_file is not None:
        return AccessTokenFile(settings.access_token_file, ca_file(settings))
    return lambda: refreshed_session(settings).access_token


class GatewayUnavailable(GovernanceError):
    """The lake gateway did not answer; the message says how to start it."""


class LakeGatewayClient:
    def __init__(self, settings: Settings | None = None, *, token: Callable[[], str] | None = None) -> None:
        self._settings = settings or get_settings()
        self._token = token or user_token(self._settings)
        self._client = flight.FlightClient(gateway_location(self._settings),
                                           tls_root_certs=ca_file(self._settings).read_bytes())

    def _options(self) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(timeout=TIMEOUT_S,
                                        headers=[(b"authorization", f"Bearer {self._token()}".encode())])

    def _call(self, what: Callable[[flight.FlightCallOptions], T]) -> T:
        try:
            return what(self._options())
        except (flight.FlightUnauthorizedError, flight.FlightUnauthenticatedError) as err:
            raise AccessRefused(str(err).split(". Detail:")[0]) from err
        except flight.FlightUnavailableError as err:
            raise GatewayUnavailable(f"the lake gateway at {gateway_location(self._settings)} is not answering "
                                     "(`radlake stack up gateway` starts it)") from err
        except flight.FlightError as err:
            raise GovernanceError(str(err).split(". Detail:")[0]) from err

    def datasets(self) -> list[str]:
        """The datasets this user may read now."""
        infos = self._call(lambda options: list(self._client.list_flights(options=options)))
        return sorted(info.descriptor.path[0].decode() for info in infos)

    def read(self, dataset: str, columns: Sequence[str] = ()) -> pa.Table:
        """The dataset's rows (all its columns, or ``columns``): one audited read."""
        ticket = flight.Ticket(json.dumps({"dataset": dataset, "columns": list(columns)}).encode())
        return self._call(lambda options: self._client.do_get(ticket, options=options).read_all())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LakeGatewayClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
