"""The results bridge's fan-out: events/s delivered to 100 concurrent SSE clients, and the p95 delay from an
event's production to its receipt, against a plain confluent-kafka consumer reading the same events.

    python -m bench.bridge_bench [--quick] [--clients N] [--events M] [--write-docs] [--summary FILE]

Needs the stack's Vault, Keycloak, Kafka and registry (``radlake stack up``). The benchmark starts a second
bridge process (``radlake bridge serve``) on its own port and its own three result topics, so the stack's bridge
and other data play no part; its clients hold the platform service account's real Keycloak token
(``platform-admin``: every event passes the filter, the most work per event).

- **burst**: M prediction events produced as fast as the producer goes while N SSE clients (one asyncio process,
  raw TLS sockets: the clients' own parsing stays small) and the floor consumer (``read_committed``, in a thread
  of the same process) read them. Events/s = N·M over the time from the first produce to the last receipt.
- **paced**: 20 events/s for a few seconds; each event carries its production time (``occurred_at``, set just
  before the produce call), and each receipt gives one delay sample: the bridge's p95 over all N clients, the
  floor's p95 over its own receipts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
from confluent_kafka import OFFSET_END, TopicPartition

from bench.report import write_section
from lake_schemas.events import (
    PredictionCreated,
    PredictionCreatedData,
    PredictionInput,
    PredictionModel,
)
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.identities import use_stack_identity
from platform_layer.identity_provider import ServiceToken
from platform_layer.realm import PLATFORM_CLIENT, service_client
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde, registry_client
from platform_layer.settings import Settings, child_environment
from platform_layer.tls import ca_file
from streams.results_bridge.service import result_topics

GOAL_RATE = 0.25  # per-client delivery rate against the floor consumer's, with 100 clients on the same cores
GOAL_DELAY = 3.0  # bridge p95 delay against the floor's
_OCCURRED = re.compile(rb'"occurred_at":"([^"]+)"')


def _event(project: str) -> PredictionCreated:
    return PredictionCreated(provider="bench", data=PredictionCreatedData(
        project=project, pseudo_patient_id="RL-bench", study_uid=f"2.25.{uuid.uuid4().int}", study_version=1,
        series_uid="2.25.1", source_event_id="e", model=PredictionModel(name="nodule-cnn", version=1,
                                                                          stage="Production", weights_sha256="c" * 64),
        inputs=(PredictionInput(sop_instance_uid="2.25.2", sha256="a" * 64),), candidates=(),
        malignancy_score=0.5, threshold=0.4, positive=True, seg=None, sr=None, latency_ms=1.0, batch_studies=1,
        worker_id="bench", device="cpu"))


def _seconds(stamp: bytes) -> float:
    return datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()


class Receipts:
    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.delays: list[float] = []
        self.measure = False

    def add(self, occurred: list[bytes]) -> None:
        now = time.time()
        self.count += len(occurred)
        self.last = now
        if self.measure:
            self.delays += [now - _seconds(o) for o in occurred]


async def _sse_client(port: int, context: ssl.SSLContext, token: str, receipts: Receipts,
                      opened: asyncio.Event, counter: list[int], clients: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    writer.write(f"GET /events?topics=prediction HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the bridge refused a client: {head[:80]!r}")
    counter[0] += 1
    if counter[0] == clients:
        opened.set()
    tail = b""
    try:
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                return
            pieces = (tail + chunk).split(b"\n\n")
            tail = pieces.pop()
            found = [m.group(1) for p in pieces if (m := _OCCURRED.search(p))]
            if found:
                receipts.add(found)
    finally:
        writer.close()


def _floor(bootstrap: str, topic: str, receipts: Receipts, stop: threading.Event, ready: threading.Event) -> None:
    consumer = kafka.consumer(bootstrap, group_id=f"radlake-bench-floor-{uuid.uuid4().hex[:6]}",
                              extra={"fetch.wait.max.ms": 50})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in metadata.partitions])
    consumer.consume(1, 1.0)
    ready.set()
    try:
        while not stop.is_set():
            found = []
            for message in consumer.consume(500, 0.1):
                if message.error() is None and (m := _OCCURRED.search(message.value() or b"")):
                    found.append(m.group(1))
            if found:
                receipts.add(found)
    finally:
        consumer.close()


def _wait_healthy(url: str, context: ssl.SSLContext, process: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the benchmark's bridge exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", verify=context, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the benchmark's bridge did not become healthy")


async def _run(args, settings: Settings, port: int, token: str, serde: EventSerde, bootstrap: str) -> dict:
    context = ssl.create_default_context(cafile=str(ca_file(settings)))
    bridge, floor = Receipts(), Receipts()
    stop, floor_ready = threading.Event(), threading.Event()
    floor_thread = threading.Thread(target=_floor, args=(bootstrap, serde.topic.name, floor, stop, floor_ready),
                                    daemon=True)
    floor_thread.start()
    opened, counter = asyncio.Event(), [0]
    tasks = [asyncio.create_task(_sse_client(port, context, token, bridge, opened, counter, args.clients))
             for _ in range(args.clients)]
    await asyncio.wait_for(opened.wait(), 60)
    await asyncio.get_running_loop().run_in_executor(None, floor_ready.wait, 30)
    producer = kafka.producer(bootstrap, client_id="radlake-bench-bridge")

    def burst(count: int) -> None:
        """Serialized before the clock starts: the producer, not the serializer, sets the pace."""
        events = [_event("bench") for _ in range(count)]
        values = [(serde.serialize(e), e.key.encode()) for e in events]
        nonlocal started
        started = time.time()
        kafka.produce_all(producer, [kafka.Outgoing(serde.topic.name, v, k) for v, k in values], timeout_s=60)

    def paced(count: int, rate: float) -> None:
        """Each event built just before its produce call: its occurred_at is its production time."""
        begun = time.perf_counter()
        for i in range(count):
            pause = begun + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            event = _event("bench")
            producer.produce(serde.topic.name, serde.serialize(event), event.key.encode())
            producer.poll(0)
        producer.flush(60)

    async def drained(expected_bridge: int, expected_floor: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while bridge.count < expected_bridge or floor.count < expected_floor:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every event arrived: bridge {bridge.count}/{expected_bridge}, "
                                   f"floor {floor.count}/{expected_floor}")
            await asyncio.sleep(0.05)

    loop = asyncio.get_running_loop()
    load = os.getloadavg()[0]
    started = 0.0
    await loop.run_in_executor(None, burst, args.events)
    await drained(args.events * args.clients, args.events, 300)
    burst = {"bridge_rate": bridge.count / (bridge.last - started), "floor_rate": floor.count / (floor.last - started)}

    bridge.measure = floor.measure = True
    await loop.run_in_executor(None, paced, args.paced, 20.0)
    await drained((args.events + args.paced) * args.clients, args.events + args.paced, 120)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    floor_thread.join(10)

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=100)[94] if len(values) >= 2 else values[0]

    return {**burst, "bridge_p95_s": p95(bridge.delays), "floor_p95_s": p95(floor.delays),
            "bridge_p50_s": statistics.median(bridge.delays), "floor_p50_s": statistics.median(floor.delays),
            "samples": len(bridge.delays), "load": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 burst events, 60 paced (full: 5,000, 200)")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--events", type=int)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args(argv)
    args.events = args.events or (1_000 if args.quick else 5_000)
    args.paced = 60 if args.quick else 200

    stack = Settings()
    use_stack_identity(stack)
    port = stack.results_bridge_port + 1
    bootstrap = kafka_bootstrap(stack)
    suffix = uuid.uuid4().hex[:8]
    names = {short: f"bench.bridge.{short}.{suffix}" for short in ("prediction", "features", "study")}
    topics = result_topics(names)
    kafka.ensure_topics(bootstrap, [kafka.TopicSpec(t.name, t.partitions) for t in topics.values()])
    register(schema_admin(stack), tuple(topics.values()))
    serde = EventSerde(topics["prediction"], registry_client(registry_url(stack)))
    token = ServiceToken(service_client(stack, PLATFORM_CLIENT))()

    command = [sys.executable, "-m", "apps.cli", "bridge", "serve", "--port", str(port),
               *(a for short, name in names.items() for a in (f"--{short}-topic", name))]
    bridge = subprocess.Popen(command, env={**os.environ, **child_environment(stack)},  # noqa: S603
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_healthy(f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(ca_file(stack))), bridge)
        result = asyncio.run(_run(args, stack, port, token, serde, bootstrap))
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)
        kafka.admin(bootstrap).delete_topics([t.name for t in topics.values()])

    per_client = result["bridge_rate"] / args.clients
    rate_ratio = per_client / result["floor_rate"]
    delay_ratio = result["bridge_p95_s"] / result["floor_p95_s"]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
    print(f"burst of {args.events:,} events to {args.clients} SSE clients: {result['bridge_rate']:,.0f} deliveries/s "
          f"({per_client:,.0f}/s per client; floor consumer {result['floor_rate']:,.0f}/s, {rate_ratio:.2f}); "
          f"paced 20/s: p95 delay bridge {result['bridge_p95_s'] * 1000:.0f} ms, floor "
          f"{result['floor_p95_s'] * 1000:.0f} ms ({delay_ratio:.2f})")
    if args.summary:
        with args.summary.open("a") as out:
            out.write(json.dumps({"benchmark": "bridge", "measure": "per-SSE-client events/s / plain consumer",
                                  "ratio": round(rate_ratio, 3), "goal": f">= {GOAL_RATE}"}) + "\n")
            out.write(json.dumps({"benchmark": "bridge", "measure": "p95 delay, SSE client / plain consumer",
                                  "ratio": round(delay_ratio, 3), "goal": f"<= {GOAL_DELAY}"}) + "\n")
    if args.write_docs:
        body = f"""
Load average at start: {result['load']:.2f}. One bridge process (`radlake bridge serve`, its own topics), {args.clients}
SSE clients in one asyncio process (raw TLS sockets), the floor a plain confluent-kafka consumer (`read_committed`)
in the same process; the clients hold the platform service account's token (`platform-admin`: no event filtered
out). All on this machine's cores together.

| measure | bridge (SSE) | plain consumer | ratio |
| --- | ---: | ---: | ---: |
| burst of {args.events:,} prediction events: deliveries/s, all clients | {result['bridge_rate']:,.0f} | – | – |
| the same per client | {per_client:,.0f} | {result['floor_rate']:,.0f} | **{rate_ratio:.2f}** (goal ≥ {GOAL_RATE}) |
| paced 20 events/s ({args.paced} events, {result['samples']:,} receipts): p50 delay from production | {result['bridge_p50_s'] * 1000:.0f} ms | {result['floor_p50_s'] * 1000:.0f} ms | |
| the same, p95 | {result['bridge_p95_s'] * 1000:.0f} ms | {result['floor_p95_s'] * 1000:.0f} ms | **{delay_ratio:.2f}** (goal ≤ {GOAL_DELAY}) |
"""
        write_section("bridge", "Results bridge: fan-out to 100 SSE clients against a plain consumer",
                      f"python -m bench.bridge_bench{' --quick' if args.quick else ''} --write-docs", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
