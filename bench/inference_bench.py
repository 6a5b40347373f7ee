"""Inference throughput: the bare model vs the whole worker (event in -> prediction event out), same run.

    python bench/inference_bench.py [--studies 16] [--tall 3] [--scaling 12] [--quick] [--write-docs]
        [--summary FILE]

Needs the stack (Kafka + registry). Measures, on the machine it runs on:

1. bare network: patches/s of the 3D CNN on 24^3 patches, fp32 and bf16 (autocast);
2. bare model path: volumes/s of ``predict`` (window pass + candidate pass + Grad-CAM) on studies
   already pre-processed in memory, fp32 and bf16;
3. whole worker: volumes/s from the first study event's arrival to the last committed prediction event
   (claim-check fetch + hash check + DICOM decode + pre_process + predict + post_process + SEG/SR/Grad-CAM
   writes + Kafka transaction), with the latency from study event to prediction event (p50/p95);
4. a 300-slice CT: study completed -> prediction created latency, p50/p95;
5. scaling on CPU: one worker process (2 torch threads) vs two worker processes (1 thread each) in one
   consumer group.

The weights are the registry's Production ``nodule-cnn`` when there is one, else an untrained network of
the same shape (throughput does not depend on the weights). Everything runs on the CPU. ``--write-docs``
replaces the ``inference`` section of docs/benchmarks.md; ``--summary`` appends the whole worker's
throughput over the bare model path's, and two workers' over one's, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

# Run as ``python bench/inference_bench.py``: the repository root is not on the path then.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402
from inference_workers.errors import ModelRegistryError  # noqa: E402
from inference_workers.model_registry import (  # noqa: E402
    ModelRegistry,
    RegisteredModel,
    network_to_bytes,
    stack_registry,  # noqa: E402
)
from inference_workers.network import NoduleNet3D, fused_for_inference  # noqa: E402
from inference_workers.pipeline import ModelSpec, pre_process, predict  # noqa: E402
from inference_workers.prediction import Predictor  # noqa: E402
from inference_workers.synthetic_study import publishable_study  # noqa: E402
from inference_workers.training import phantom_volume  # noqa: E402
from inference_workers.worker import Worker, WorkerConfig  # noqa: E402
from lake_schemas.topics import (  # noqa: E402
    PREDICTION_CREATED,
    PREDICTION_DEAD_LETTER,
    STUDY_COMPLETED,
)
from platform_layer import (
    endpoints,
    kafka,  # noqa: E402
)
from platform_layer.identities import use_stack_identity  # noqa: E402
from platform_layer.kafka import TopicSpec  # noqa: E402
from platform_layer.object_store import ObjectStore  # noqa: E402
from platform_layer.registration import register, schema_admin  # noqa: E402
from platform_layer.serde import EventSerde  # noqa: E402
from platform_layer.settings import Settings  # noqa: E402
from platform_layer.state import lock_down  # noqa: E402
from radlake.synthetic.chest_ct import chest_ct  # noqa: E402

SEED = 7_000_000
QUICK = {"studies": 3, "tall": 1, "scaling": 3}


def _model(settings: Settings):
    registry = stack_registry(settings)
    try:
        registered = registry.get("nodule-cnn", stage="Production")
        return registry.load(registered), registered.spec, registered.label, registered
    except ModelRegistryError:
        return NoduleNet3D(8).eval(), ModelSpec(), "untrained nodule-cnn shape", None


def _timed(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bare(net, spec, studies: int) -> dict:
    patches = torch.rand(256, 1, spec.patch, spec.patch, spec.patch)
    prepared = [pre_process(phantom_volume(chest_ct(SEED + k)), spec, key=str(k)) for k in range(studies)]
    out = {"windows_per_volume": float(np.mean([len(p.centres) for p in prepared]))}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        def forward():
            with torch.inference_mode():
                for i in range(0, len(patches), 64):
                    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                        net(patches[i:i + 64])
        out[f"patches_per_s_{name}"] = len(patches) / _timed(forward)
        out[f"volumes_per_s_{name}"] = studies / _timed(lambda: predict(net, prepared, spec, 64, dtype), repeat=2)
    pre = _timed(lambda: [pre_process(phantom_volume(chest_ct(SEED)), spec)], repeat=3)
    out["pre_process_s"] = pre
    return out


def _topics(bootstrap: str, registry_url: str, tag: str):
    names = [f"bench.{tag}.in", f"bench.{tag}.out", f"bench.{tag}.dlq"]
    kafka.ensure_topics(bootstrap, [TopicSpec(n, 3) for n in names])
    contracts = (STUDY_COMPLETED.with_name(names[0]), PREDICTION_CREATED.with_name(names[1]),
                 PREDICTION_DEAD_LETTER.with_name(names[2]))
    registry = schema_admin(Settings(), registry_url)
    register(registry, contracts)
    return names, tuple(EventSerde(t, registry) for t in contracts)


def _publish_studies(store, bootstrap, topic, serde, count: int, tag: str, shape=None, spacing=None) -> list:
    producer = kafka.producer(bootstrap, client_id="bench-inference")
    events = []
    for k in range(count):
        kwargs = {} if shape is None else {"shape": shape, "spacing": spacing}
        ct = chest_ct(SEED + 100 + k, **kwargs)
        event = publishable_study(store, ct, name=f"bench-{tag}-{k}", project="bench")
        events.append(event)
        producer.produce(topic, key=event.key.encode(), value=serde.serialize(event))
    producer.flush(30)
    return events


def _predictions(bootstrap, topic, serde, expected: int, timeout_s: float = 600) -> list:
    consumer = kafka.consumer(bootstrap, group_id=f"bench-reader-{uuid.uuid4().hex}")
    consumer.subscribe([topic])
    out, deadline = [], time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in consumer.consume(50, 1.0):
                if m.error() is None:
                    out.append((m.timestamp()[1], serde.deserialize(m.value())))
    finally:
        consumer.close()
    return out


def _percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def whole_worker(settings, net, spec, registered, studies: int, tag: str, shape=None, spacing=None,
                 dtype=torch.float32) -> dict:
    """In-process worker over ``studies`` events; volumes/s from first arrival to last commit."""
    bootstrap, registry_url = endpoints.kafka_bootstrap(settings), endpoints.registry_url(settings)
    (t_in, t_out, t_dlq), (s_in, s_out, s_dlq) = _topics(bootstrap, registry_url, tag)
    store = ObjectStore(settings.resolved_object_store_uri)
    model = registered or RegisteredModel("nodule-cnn", 1, "None", "file:///untrained", "0" * 64, spec, {}, {})
    events = _publish_studies(store, bootstrap, t_in, s_in, studies, tag, shape, spacing)
    predictor = Predictor(model, net, store, torch.device("cpu"), f"bench-{tag}", dtype=dtype)
    cfg = WorkerConfig(bootstrap=bootstrap, worker_id=f"bench-{tag}", group_id=f"bench-{tag}", input_topic=t_in,
                       output_topic=t_out, dead_letter_topic=t_dlq, max_batch=4)
    stats = Worker(cfg, predictor, s_in, s_out, s_dlq).run(max_predictions=studies, max_idle_s=60)
    if stats.dead_letters:
        raise SystemExit(f"bench: {stats.dead_letters} studies were dead-lettered")
    received = _predictions(bootstrap, t_out, s_out, stats.predictions)
    end_to_end = []
    sent = {e.data.study_uid: e for e in events}
    for ts, p in received:
        end_to_end.append(ts - sent[p.data.study_uid].occurred_at.timestamp() * 1000.0)
    in_worker = [p.data.latency_ms for _, p in received]
    wall = stats.last_commit - stats.first_arrival
    return {"studies": studies, "volumes_per_s": studies / wall, "wall_s": wall,
            "latency_in_worker_ms_p50_p95": _percentiles(in_worker),
            "end_to_end_ms_p50_p95": _percentiles(end_to_end),
            "studies_per_batch": stats.studies_per_batch, "slices": events[0].data.instance_count}


def _wait_for_members(bootstrap: str, group: str, procs: list[subprocess.Popen], logs: list[Path],
                      timeout_s: float = 120.0) -> None:
    admin = kafka.admin(bootstrap)
    members = len(procs)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs):
            if proc.poll() is not None:  # a worker that cannot start would otherwise cost the whole timeout
                raise SystemExit(f"bench: a worker exited ({proc.returncode}) before joining {group}:\n"
                                 f"{log.read_text(errors='replace')[-2000:]}")
        description = admin.describe_consumer_groups([group])[group].result(10)
        assigned = [m for m in description.members if m.assignment and m.assignment.topic_partitions]
        if len(assigned) == members and str(description.state).endswith("STABLE"):
            return
        time.sleep(0.5)
    raise SystemExit(f"bench: {members} workers did not join {group} within {timeout_s}s")


def scratch_lake(root: Path, net: NoduleNet3D, spec: ModelSpec) -> dict:
    """A lake and object store under ``root`` whose registry holds ``net`` as the Production ``nodule-cnn``: the
    CLI workers load their model from a registry, and the stack's may have none (no demo run yet); registering
    an untrained network there would hand it to the demo and every other worker."""
    lake_uri, objects = str(root / "lake"), str(root / "objects")
    ModelRegistry(f"{lake_uri}/registry/models", ObjectStore(objects)).register(
        "nodule-cnn", network_to_bytes(net), spec, {"note": "untrained, for the benchmark"}, {}, stage="Production")
    return {"RADLAKE_LAKE_URI": lake_uri, "RADLAKE_OBJECT_STORE_URI": objects}


def scaling(settings, studies: int, tag: str, lake_env: dict) -> dict:
    """Worker processes from the CLI: 1 process x 2 threads vs 2 processes x 1 thread, same studies count."""
    bootstrap, registry_url = endpoints.kafka_bootstrap(settings), endpoints.registry_url(settings)
    store = ObjectStore(lake_env["RADLAKE_OBJECT_STORE_URI"])  # where the workers fetch the studies from
    logs_dir = Path(tempfile.mkdtemp(prefix="inference-bench-workers-"))
    results = {}
    for workers, threads in ((1, 2), (2, 1)):
        run_tag = f"{tag}-{workers}w"
        (t_in, t_out, t_dlq), (s_in, s_out, _) = _topics(bootstrap, registry_url, run_tag)
        logs = [logs_dir / f"{run_tag}-w{k}.log" for k in range(workers)]
        procs = [subprocess.Popen(
            [sys.executable, "-m", "apps.cli", "infer", "run", "--input-topic", t_in, "--output-topic", t_out,
             "--dead-letter-topic", t_dlq, "--group", f"bench-{run_tag}", "--worker-id", f"w{k}", "--threads",
             str(threads), "--max-idle-s", "10", "--no-land"],
            env={**os.environ, **lake_env}, stdout=subprocess.PIPE, stderr=logs[k].open("wb"), text=True)
            for k in range(workers)]
        _wait_for_members(bootstrap, f"bench-{run_tag}", procs, logs)  # all workers hold partitions, then publish
        _publish_studies(store, bootstrap, t_in, s_in, studies, run_tag)
        outputs = [json.loads(p.communicate(timeout=900)[0].strip().splitlines()[-1]) for p in procs]
        received = _predictions(bootstrap, t_out, s_out, sum(o["predictions"] for o in outputs))
        starts = [ts - p.data.latency_ms for ts, p in received]
        span_s = (max(ts for ts, _ in received) - min(starts)) / 1000.0
        results[f"{workers}x{threads}"] = {"volumes_per_s": len(received) / span_s, "span_s": span_s,
                                           "per_worker": [o["predictions"] for o in outputs]}
    return results


def summary_rows(r: dict) -> list[dict]:
    b = r["bare"]
    rows = [
        {"benchmark": "inference", "measure": f"whole worker / bare model path, volumes/s ({name})",
         "ratio": round(r[key]["volumes_per_s"] / b[f"volumes_per_s_{name}"], 4), "goal": ""}
        for name, key in (("fp32", "worker_fp32"), ("bf16", "worker_bf16"))
    ]
    if "scaling" in r:
        s1, s2 = r["scaling"]["1x2"], r["scaling"]["2x1"]
        rows.append({"benchmark": "inference", "measure": "2 worker processes x 1 thread / 1 x 2 threads, volumes/s",
                     "ratio": round(s2["volumes_per_s"] / s1["volumes_per_s"], 4), "goal": ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=16)
    parser.add_argument("--tall", type=int, default=3, help="300-slice studies for the latency figure (0: skip)")
    parser.add_argument("--scaling", type=int, default=12, help="studies per scaling run (0: skip)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['studies']} studies, {QUICK['tall']} tall, {QUICK['scaling']} per scaling run")
    # --write is the flag's earlier name
    parser.add_argument("--write-docs", "--write", dest="write_docs", action="store_true",
                        help="replace the 'inference' section of docs/benchmarks.md")
    parser.add_argument("--summary", type=Path, help="append the headline ratios to this file (JSON lines)")
    args = parser.parse_args(argv)
    if args.quick:
        args.studies, args.tall, args.scaling = QUICK["studies"], QUICK["tall"], QUICK["scaling"]
    settings = Settings()
    lock_down(settings)  # what the bench writes under the state dir is private, as the commands' is
    use_stack_identity(settings)  # as the platform administrator, like the commands it stands for
    tag = uuid.uuid4().hex[:6]
    load_before = os.getloadavg()
    raw_net, spec, label, registered = _model(settings)
    print(f"model: {label}; device: cpu; torch threads {torch.get_num_threads()}", file=sys.stderr)
    net = fused_for_inference(raw_net)  # what the worker runs
    result = {"model": label, "load_before": load_before, "bare": bare(net, spec, min(args.studies, 8))}
    print(json.dumps(result["bare"]), file=sys.stderr)
    result["worker_fp32"] = whole_worker(settings, net, spec, registered, args.studies, f"{tag}-w32")
    print(json.dumps(result["worker_fp32"]), file=sys.stderr)
    result["worker_bf16"] = whole_worker(settings, net, spec, registered, args.studies, f"{tag}-w16",
                                         dtype=torch.bfloat16)
    print(json.dumps(result["worker_bf16"]), file=sys.stderr)
    again = bare(net, spec, min(args.studies, 8))  # the machine is shared: best of before/after the workers
    result["bare"] = {k: max(v, again[k]) if k.endswith("_per_s_fp32") or k.endswith("_per_s_bf16") else v
                      for k, v in result["bare"].items()}
    if args.tall:
        result["tall"] = whole_worker(settings, net, spec, registered, args.tall, f"{tag}-tall",
                                      shape=(300, 112, 112), spacing=(1.0, 0.8, 0.8))
        print(json.dumps(result["tall"]), file=sys.stderr)
    if args.scaling:
        with tempfile.TemporaryDirectory(prefix="inference-bench-lake-") as scratch:
            lake_env = ({"RADLAKE_LAKE_URI": settings.resolved_lake_uri,
                         "RADLAKE_OBJECT_STORE_URI": settings.resolved_object_store_uri} if registered
                        else scratch_lake(Path(scratch), raw_net, spec))
            result["scaling"] = scaling(settings, args.scaling, tag, lake_env)
        print(json.dumps(result["scaling"]), file=sys.stderr)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.summary:
        with args.summary.open("a") as out:
            for row in summary_rows(result):
                out.write(json.dumps(row) + "\n")
    if args.write_docs:
        command = shlex.join(["python", "bench/inference_bench.py", *(argv if argv is not None else sys.argv[1:])])
        write_section("inference", "Inference workers: bare model vs whole worker (issue 8)", command, _body(result))
    return 0


def _body(r: dict) -> str:
    b, w, h = r["bare"], r["worker_fp32"], r["worker_bf16"]
    lines = [
        f"Load average {r['load_before'][0]:.2f}/{r['load_before'][1]:.2f}/{r['load_before'][2]:.2f} at the start, "
        f"{r['load_after'][0]:.2f}/{r['load_after'][1]:.2f}/{r['load_after'][2]:.2f} at the end (1/5/15 min, "
        f"{os.cpu_count()} cores); absolute figures on a shared machine are noisy, the ratios within one run are "
        f"the point. torch {torch.__version__}, {torch.get_num_threads()} threads, confluent-kafka "
        f"{version('confluent-kafka')}, Python {platform.python_version()}.",
        "",
        "**Every figure is CPU-only**: the GPU path (CUDA device, resampling and windowing on the device) is "
        f"not measured by this bench. Model: {r['model']} (3D CNN, 24³ patches at 1.25 mm, stride-6 sliding "
        f"window, {b['windows_per_volume']:.0f} lung windows per volume of 40×112×112 voxels at 2.5×0.8×0.8 mm; "
        "BatchNorm folded into the convolutions, fixed-size batches of 64).",
        "",
        "| path | fp32 | bf16 |",
        "|---|---|---|",
        f"| bare network, patches/s | {b['patches_per_s_fp32']:.0f} | {b['patches_per_s_bf16']:.0f} |",
        f"| bare model path (`predict`: windows + candidates + Grad-CAM), volumes/s | "
        f"{b['volumes_per_s_fp32']:.2f} | {b['volumes_per_s_bf16']:.2f} |",
        f"| whole worker (event in → committed prediction event out), volumes/s | {w['volumes_per_s']:.2f} | "
        f"{h['volumes_per_s']:.2f} |",
        f"| whole worker / bare model path | {w['volumes_per_s'] / b['volumes_per_s_fp32']:.0%} | "
        f"{h['volumes_per_s'] / b['volumes_per_s_bf16']:.0%} |",
        "",
        f"Whole worker, {w['studies']} studies of {w['slices']} slices, batches of up to 4 studies "
        f"({w['studies_per_batch']}): latency inside the worker p50/p95 "
        f"{w['latency_in_worker_ms_p50_p95'][0]:.0f}/{w['latency_in_worker_ms_p50_p95'][1]:.0f} ms; "
        f"study completed → prediction created (Kafka timestamps, includes queueing behind earlier studies) "
        f"p50/p95 {w['end_to_end_ms_p50_p95'][0]:.0f}/{w['end_to_end_ms_p50_p95'][1]:.0f} ms. "
        f"pre_process alone: {b['pre_process_s'] * 1000:.0f} ms per volume.",
    ]
    if "tall" in r:
        t = r["tall"]
        lines += ["", f"**300-slice CT** (300×112×112 at 1.0×0.8×0.8 mm, {t['studies']} studies): study completed → "
                  f"prediction created p50/p95 {t['end_to_end_ms_p50_p95'][0]:.0f}/{t['end_to_end_ms_p50_p95'][1]:.0f} ms "
                  f"(in-worker {t['latency_in_worker_ms_p50_p95'][0]:.0f}/{t['latency_in_worker_ms_p50_p95'][1]:.0f} ms), "
                  f"{t['volumes_per_s']:.2f} volumes/s."]
    if "scaling" in r:
        s1, s2 = r["scaling"]["1x2"], r["scaling"]["2x1"]
        lines += ["", "**Scaling on CPU** (worker processes from `radlake infer run`, one consumer group, "
                  "3 partitions, the same 2 cores):", "",
                  "| workers × torch threads | volumes/s | predictions per worker |", "|---|---|---|",
                  f"| 1 × 2 | {s1['volumes_per_s']:.2f} | {s1['per_worker']} |",
                  f"| 2 × 1 | {s2['volumes_per_s']:.2f} | {s2['per_worker']} |", "",
                  f"2 workers / 1 worker: **{s2['volumes_per_s'] / s1['volumes_per_s']:.2f}×**. Studies are "
                  "published after every worker holds partitions; the split follows the study keys' partitions "
                  "(3 partitions over 2 workers). Both runs share the same 2 cores, so the ceiling is the cores: "
                  "a second worker can only overlap one worker's I/O, decoding and Python work with the other's "
                  "convolutions."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
