"""The lake gateway: the one path by which a data scientist reads the lake — granted datasets only, audited.

An Arrow Flight server (``pyarrow.flight``: gRPC with TLS, certificate from the platform CA). Every call must
carry ``authorization: Bearer <access token>`` of the platform's Keycloak realm (``radlake login``), verified
against the realm's keys; the caller is the token's user. Calls:

- ``list_flights``: the datasets the caller holds an active grant for, each with its schema.
- ``do_get`` with a ticket ``{"dataset": NAME, "columns": [...]}``: the dataset's rows — its pinned table
  version, its project, its filter (``platform_layer.governance``) — optionally fewer columns.

A read the caller holds no active grant for is refused with the same message whether the dataset exists or
not. Every read and every refused read appends one row to the audit trail (who, which dataset, table and
version, which columns, how many rows, from which address, through which client) before a byte is sent; when
that row cannot be written, nothing is sent. The platform's own access to the lake's files stays in this
process: the caller's kernel holds only its own token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow.flight as flight

from platform_layer import audit, governance
from platform_layer.errors import IdentityProviderError
from platform_layer.identity_provider import AccessTokenVerifier, VerifiedToken
from platform_layer.settings import Settings

log = logging.getLogger(__name__)

_MAX_NAME = 120  # of a requested dataset name kept in a refusal's audit row


class _Caller(flight.ServerMiddleware):
    def __init__(self, who: VerifiedToken) -> None:
        self.who = who


class _BearerAuthentication(flight.ServerMiddlewareFactory):
    def __init__(self, verifier: AccessTokenVerifier) -> None:
        self._verifier = verifier

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> _Caller:
        values = headers.get("authorization", [])
        if not values or not values[0].startswith("Bearer "):
            raise flight.FlightUnauthenticatedError("a bearer token of the radlake realm is required "
                                                    "(`radlake login`)")
        try:
            return _Caller(self._verifier.verify(values[0].removeprefix("Bearer ")))
        except IdentityProviderError as err:
            raise flight.FlightUnauthenticatedError(str(err)) from err


class LakeGateway(flight.FlightServerBase):
    def __init__(self, settings: Settings, location: str, certificate: flight.CertKeyPair,
                 verifier: AccessTokenVerifier) -> None:
        super().__init__(location, tls_certificates=[certificate],
                         middleware={"caller": _BearerAuthentication(verifier)})
        self._settings, self._location = settings, location

    def _caller(self, context: flight.ServerCallContext) -> VerifiedToken:
        return context.get_middleware("caller").who

    def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Iterator[flight.FlightInfo]:
        for item in governance.readable(self._settings, self._caller(context).username):
            yield self._info(item)

    def get_flight_info(self, context: flight.ServerCallContext,
                        descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        name = (descriptor.path or [b""])[0].decode(errors="replace")
        return self._info(self._authorise(context, name))

    def _info(self, item: governance.Dataset) -> flight.FlightInfo:
        schema = governance.read_schema(self._settings, item)
        ticket = flight.Ticket(json.dumps({"dataset": item.dataset}).encode())
        return flight.FlightInfo(schema, flight.FlightDescriptor.for_path(item.dataset),
                                 [flight.FlightEndpoint(ticket, [self._location])], -1, -1)

    def _authorise(self, context: flight.ServerCallContext, name: str) -> governance.Dataset:
        who = self._caller(context)
        try:
            return governance.authorise(self._settings, who.username, name)
        except governance.AccessRefused as err:
            audit.append(self._settings, "dataset.read", f"dataset {name[:_MAX_NAME]}", outcome="refused",
                         actor=f"user:{who.username}", details={"peer": context.peer(), "client": who.client})
            raise flight.FlightUnauthorizedError(str(err)) from err

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.RecordBatchStream:
        try:
            request = json.loads(ticket.ticket)
            name, columns = str(request["dataset"]), [str(c) for c in request.get("columns") or []]
        except (ValueError, KeyError, TypeError) as err:
            raise flight.FlightServerError('a ticket is {"dataset": NAME, "columns": [...]}') from err
        item = self._authorise(context, name)
        try:
            rows = governance.read(self._settings, item)
        except governance.GovernanceError as err:
            raise flight.FlightServerError(str(err)) from err
        unknown = sorted(set(columns) - set(rows.column_names))
        if unknown:
            raise flight.FlightServerError(f"dataset {name} has no column(s) {', '.join(unknown)}")
        if columns:
            rows = rows.select(columns)
        who = self._caller(context)
        audit.append(self._settings, "dataset.read", f"dataset {name}", actor=f"user:{who.username}", details={
            "project": item.project, "source_table": item.source_table, "source_version": item.source_version,
            "columns": rows.column_names, "rows": rows.num_rows, "peer": context.peer(), "client": who.client,
        })
        log.info("read of %s by %s: %d rows", name, who.username, rows.num_rows)
        return flight.RecordBatchStream(rows)


def serve(settings: Settings, location: str, certificate: flight.CertKeyPair, verifier: AccessTokenVerifier) -> None:
    server = LakeGateway(settings, location, certificate, verifier)
    log.info("lake gateway serving at %s since %s", location, datetime.now(UTC).isoformat())
    server.serve()
