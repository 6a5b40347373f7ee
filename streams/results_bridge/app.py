"""The bridge's HTTP surface (Starlette, served by uvicorn over TLS).

``GET /events`` (Server-Sent Events) and ``/ws`` (WebSocket) stream the result events the caller's token allows;
``GET /objects`` returns a prediction's SEG, SR or Grad-CAM with its claim-check hash verified;
``GET /objects/thumbnail`` draws a Grad-CAM map as PNG; ``GET /`` is the reference dashboard; ``GET /healthz``
answers 200 once the hub has read the retained events (503 before).

Every data request carries a Keycloak access token of the realm: ``Authorization: Bearer`` or, for a browser's
``EventSource`` and ``WebSocket`` (neither can set a header), ``?access_token=``. A stream ends when its token
expires, so a client reconnects with a fresh one and a revoked role stops reaching it within one token lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from platform_layer.errors import IdentityProviderError
from platform_layer.identity_provider import AccessTokenVerifier, IdentityProviderUnavailable, VerifiedToken
from platform_layer.object_store import ObjectStore, ObjectStoreError
from streams.results_bridge.access import Scope, scope_of
from streams.results_bridge.hub import Delivery, Hub, HubError, ObjectRef, Subscriber
from streams.results_bridge.positions import Start, StartError, start_of
from streams.results_bridge.thumbnail import ThumbnailError, gradcam_png

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
MEDIA_TYPES = {"seg": "application/dicom", "sr": "application/dicom", "gradcam": "application/gzip"}


@dataclass(frozen=True)
class BridgeConfig:
    """What the app needs besides the hub: its token verifier and the object store; limits per client."""

    verifier: AccessTokenVerifier
    store: ObjectStore
    topic_names: dict[str, str]  # short name (prediction, features, study) -> topic
    max_buffer: int = 10_000
    replay_limit: int = 100_000


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _token(connection: HTTPConnection) -> str:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.query_params.get("access_token", "")


async def _caller(connection: HTTPConnection, verifier: AccessTokenVerifier) -> tuple[VerifiedToken, Scope]:
    token = _token(connection)
    if not token:
        raise Refused(401, "an access token of realm radlake is required (Authorization: Bearer, or ?access_token=)")
    try:
        verified = await run_in_threadpool(verifier.verify, token)
    except IdentityProviderUnavailable as err:
        raise Refused(503, f"the realm's keys cannot be fetched: {err}") from err
    except IdentityProviderError as err:
        raise Refused(401, str(err)) from err
    scope = scope_of(verified.roles)
    if scope.empty:
        raise Refused(403, f"{verified.username} holds no project reader or steward role")
    return verified, scope


def _refusal(err: Refused) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="radlake"'} if err.status == 401 else None
    return JSONResponse({"error": err.reason}, status_code=err.status, headers=headers)


def _topics(config: BridgeConfig, wanted: str | None) -> frozenset[str]:
    if not wanted:
        return frozenset(config.topic_names.values())
    names = {w.strip() for w in wanted.split(",") if w.strip()}
    unknown = names - set(config.topic_names)
    if unknown:
        raise Refused(400, f"unknown topics {sorted(unknown)}; known: {sorted(config.topic_names)}")
    return frozenset(config.topic_names[n] for n in names)


async def _subscribe(hub: Hub, config: BridgeConfig, scope: Scope, topics: frozenset[str],
                     start: Start) -> tuple[Subscriber, list[Delivery]]:
    """Register first (live deliveries buffer from now), then replay up to the end: nothing falls between."""
    subscriber = Subscriber(scope, topics, config.max_buffer)
    hub.subscribers.add(subscriber)
    if start.live_only:
        return subscriber, []
    try:
        replayed = await run_in_threadpool(hub.replay, start, topics, scope, config.replay_limit)
    except (HubError, StartError) as err:
        hub.subscribers.discard(subscriber)
        raise Refused(400 if isinstance(err, StartError) else 503, str(err)) from err
    return subscriber, subscriber.fresh(replayed)


async def _deliveries(hub: Hub, subscriber: Subscriber, first: list[Delivery],
                      expires_at: float) -> AsyncIterator[list[Delivery] | None]:
    """Batches for one client: the replay, then live ones; None for a heartbeat. Ends at the token's expiry or
    when the client fell too far behind."""
    try:
        if first:
            yield first
        while time.time() < expires_at:
            try:
                await asyncio.wait_for(subscriber.ready.wait(), timeout=min(HEARTBEAT_S, max(0.1, expires_at - time.time())))
            except TimeoutError:
                yield None
                continue
            if subscriber.overflowed:
                return
            batch = subscriber.take()
            if batch:
                yield batch
    finally:
        hub.subscribers.discard(subscriber)


def build_app(hub: Hub, config: BridgeConfig) -> Starlette:
    async def events(request: Request) -> Response:
        try:
            verified, scope = await _caller(request, config.verifier)
            start = start_of(request.query_params.get("since"), request.query_params.get("from"),
                             request.headers.get("last-event-id"))
            subscriber, first = await _subscribe(hub, config, scope, _topics(config, request.query_params.get("topics")),
                                                 start)
        except StartError as err:
            return _refusal(Refused(400, str(err)))
        except Refused as err:
            return _refusal(err)

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 2000\n: radlake results bridge\n\n"
            async for batch in _deliveries(hub, subscriber, first, verified.expires_at):
                yield b": keep-alive\n\n" if batch is None else b"".join(d.frame for d in batch)
            if subscriber.overflowed:
                yield b"event: overflow\ndata: {\"reason\":\"the client fell behind; reconnect to resume\"}\n\n"
            else:
                yield b"event: token-expired\ndata: {\"reason\":\"reconnect with a fresh access token\"}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def websocket(ws: WebSocket) -> None:
        try:
            verified, scope = await _caller(ws, config.verifier)
            start = start_of(ws.query_params.get("since"), ws.query_params.get("from"), None)
            subscriber, first = await _subscribe(hub, config, scope, _topics(config, ws.query_params.get("topics")),
                                                 start)
        except StartError as err:
            await ws.close(code=1008, reason=str(err)[:120])
            return
        except Refused as err:
            await ws.close(code=1008, reason=err.reason[:120])
            return
        await ws.accept()
        try:
            async for batch in _deliveries(hub, subscriber, first, verified.expires_at):
                for d in batch or ():
                    await ws.send_text(d.message())
            await ws.close(code=1000 if not subscriber.overflowed else 1013)
        except WebSocketDisconnect:
            pass

    async def objects(request: Request) -> Response:
        try:
            _verified, scope = await _caller(request, config.verifier)
            ref = _object(request, hub, scope)
            data = await run_in_threadpool(config.store.get, ref.uri, ref.sha256)
        except Refused as err:
            return _refusal(err)
        except ObjectStoreError as err:
            log.error("object %s of %s failed its claim-check: %s", ref.sha256[:12], ref.study_uid, err)
            return JSONResponse({"error": f"the object does not match its claim-check: {err}"}, status_code=502)
        return Response(data, media_type=MEDIA_TYPES.get(ref.kind, "application/octet-stream"),
                        headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest(), "ETag": f'"{ref.sha256}"',
                                 "Cache-Control": "private, max-age=3600"})

    async def thumbnail(request: Request) -> Response:
        try:
            _verified, scope = await _caller(request, config.verifier)
            ref = _object(request, hub, scope)
            if ref.kind != "gradcam":
                raise Refused(400, "thumbnails are drawn of Grad-CAM maps only")
            picture = await run_in_threadpool(lambda: gradcam_png(config.store.get(ref.uri, ref.sha256)))
        except Refused as err:
            return _refusal(err)
        except (ObjectStoreError, ThumbnailError) as err:
            return JSONResponse({"error": str(err)}, status_code=502)
        return Response(picture, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def healthz(_request: Request) -> Response:
        ready = hub.caught_up.is_set() and hub.failure is None
        return JSONResponse({"caught_up": hub.caught_up.is_set(), "events_read": hub.stats.read,
                             "objects_indexed": len(hub.index), "clients": len(hub.subscribers),
                             "failure": str(hub.failure) if hub.failure else None}, status_code=200 if ready else 503)

    def page(name: str, media_type: str):
        body = resources.files("streams.results_bridge").joinpath(name).read_bytes()

        async def serve(_request: Request) -> Response:
            return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})
        return serve

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await run_in_threadpool(hub.stop)

    return Starlette(routes=[
        Route("/", page("dashboard.html", "text/html; charset=utf-8")),
        Route("/dashboard.js", page("dashboard.js", "text/javascript; charset=utf-8")),
        Route("/healthz", healthz),
        Route("/events", events),
        WebSocketRoute("/ws", websocket),
        Route("/objects", objects),
        Route("/objects/thumbnail", thumbnail),
    ], lifespan=lifespan)


def _object(request: Request, hub: Hub, scope: Scope) -> ObjectRef:
    """The object ``?uri=`` or ``?sha256=`` names, if it belongs to a prediction of a project ``scope`` reads."""
    uri, sha256 = request.query_params.get("uri"), request.query_params.get("sha256")
    ref = hub.index.by_uri(uri) if uri else hub.index.by_sha256(sha256) if sha256 else None
    if not uri and not sha256:
        raise Refused(400, "name the object: ?uri= or ?sha256=")
    if ref is None:
        raise Refused(404, "no prediction the bridge has read names this object")
    if not scope.may_read(ref.project):
        raise Refused(403, "the object belongs to a project your token does not grant")
    return ref
