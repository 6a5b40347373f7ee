"""``radlake model`` — train, register, list, promote and evaluate the nodule model.

    radlake model train [--name N] [--stage Production] [--train-studies 240] [--epochs 12]
    radlake model list [--name N]
    radlake model promote --name N --version V --stage Production
    radlake model evaluate [--name N] [--version V | --stage S] [--studies 200] [--record]

The registry is the Delta table ``<lake>/registry/models``; weights live in the object store.
Progress goes to stderr, results (JSON) to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import asdict

from inference_workers.errors import InferenceError
from radlake.settings import Settings

DEFAULT_NAME = "nodule-cnn"


def registry_for(settings: Settings):
    from inference_workers.model_registry import ModelRegistry
    from radlake.object_store import ObjectStore

    return ModelRegistry(f"{settings.resolved_lake_uri}/registry/models", ObjectStore(settings.resolved_object_store_uri))


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _describe(model) -> dict:
    return {"name": model.name, "version": model.version, "stage": model.stage, "weights_uri": model.weights_uri,
            "weights_sha256": model.weights_sha256, "spec": asdict(model.spec), "metrics": _clean(model.metrics)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake model", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    t = sub.add_parser("train", help="train on generated studies and register a new version")
    t.add_argument("--name", default=DEFAULT_NAME)
    t.add_argument("--stage", default="Production", choices=("None", "Staging", "Production"))
    t.add_argument("--train-studies", type=int, default=240)
    t.add_argument("--validation-studies", type=int, default=60)
    t.add_argument("--epochs", type=int, default=12)
    t.add_argument("--width", type=int, default=8)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ls = sub.add_parser("list", help="registered versions")
    ls.add_argument("--name")
    p = sub.add_parser("promote", help="move a version to a stage (Production archives the previous one)")
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--stage", required=True, choices=("None", "Staging", "Production", "Archived"))
    e = sub.add_parser("evaluate", help="AUC (95%% bootstrap CI), sensitivity, specificity, PPV, NPV on a test set")
    e.add_argument("--name", default=DEFAULT_NAME)
    e.add_argument("--version", type=int)
    e.add_argument("--stage", default="Production")
    e.add_argument("--studies", type=int, default=200)
    e.add_argument("--bootstrap", type=int, default=2000)
    e.add_argument("--record", action="store_true", help="store the test metrics with the version in the registry")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings()
    registry = registry_for(settings)
    say = lambda msg: print(f"radlake model: {msg}", file=sys.stderr)  # noqa: E731
    try:
        if args.action == "train":
            import torch

            from inference_workers.model_registry import network_to_bytes
            from inference_workers.training import TrainConfig, train

            if args.threads:
                torch.set_num_threads(args.threads)
            cfg = TrainConfig(train_studies=args.train_studies, validation_studies=args.validation_studies,
                              epochs=args.epochs, width=args.width, seed=args.seed)
            net, spec, metrics = train(cfg, progress=say)
            model = registry.register(args.name, network_to_bytes(net), spec, asdict(cfg), _clean(metrics),
                                      stage=args.stage)
            say(f"registered {model.label} as {model.stage}")
            print(json.dumps(_describe(model), indent=2))
        elif args.action == "list":
            print(json.dumps([_describe(m) for m in registry.list(args.name)], indent=2))
        elif args.action == "promote":
            print(json.dumps(_describe(registry.set_stage(args.name, args.version, args.stage)), indent=2))
        elif args.action == "evaluate":
            from inference_workers.training import evaluate

            model = registry.get(args.name, version=args.version, stage=None if args.version else args.stage)
            net = registry.load(model)
            cfg = model.training
            say(f"evaluating {model.label} on {args.studies} independent generated studies")
            result = _clean(evaluate(net, model.spec, args.studies, shape=tuple(cfg.get("shape", (40, 112, 112))),
                                     spacing=tuple(cfg.get("spacing", (2.5, 0.8, 0.8))), n_boot=args.bootstrap))
            if args.record:
                registry.record_metrics(model.name, model.version, result)
            low, high = result["test_auc_ci95"]
            say(f"AUC {result['test_auc']:.3f} (95% CI {low:.3f}-{high:.3f}); at threshold "
                f"{result['test_threshold']:.3f}: sensitivity {result['test_sensitivity']:.3f}, specificity "
                f"{result['test_specificity']:.3f}, PPV {result['test_ppv']:.3f}, NPV {result['test_npv']:.3f}")
            print(json.dumps({"model": model.label, **result}, indent=2))
    except InferenceError as err:
        print(f"radlake model: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
