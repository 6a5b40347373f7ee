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
import sys
from dataclasses import asdict

import torch

from apps._common import command
from inference_workers.model_registry import json_safe, stack_registry
from inference_workers.training import TrainConfig, evaluate, train_and_register
from platform_layer.settings import Settings

DEFAULT_NAME = "nodule-cnn"


def _describe(model) -> dict:
    return {"name": model.name, "version": model.version, "stage": model.stage, "weights_uri": model.weights_uri,
            "weights_sha256": model.weights_sha256, "spec": asdict(model.spec), "metrics": json_safe(model.metrics)}


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


def _say(message: str) -> None:
    print(f"radlake model: {message}", file=sys.stderr)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    registry = stack_registry(settings)
    if args.action == "train":
        if args.threads:
            torch.set_num_threads(args.threads)
        cfg = TrainConfig(train_studies=args.train_studies, validation_studies=args.validation_studies,
                          epochs=args.epochs, width=args.width, seed=args.seed)
        model = train_and_register(registry, args.name, cfg, stage=args.stage, progress=_say)
        _say(f"registered {model.label} as {model.stage}")
        print(json.dumps(_describe(model), indent=2))
    elif args.action == "list":
        print(json.dumps([_describe(m) for m in registry.list(args.name)], indent=2))
    elif args.action == "promote":
        print(json.dumps(_describe(registry.set_stage(args.name, args.version, args.stage)), indent=2))
    elif args.action == "evaluate":
        model = registry.get(args.name, version=args.version, stage=None if args.version else args.stage)
        net = registry.load(model)
        cfg = model.training
        _say(f"evaluating {model.label} on {args.studies} independent generated studies")
        result = json_safe(evaluate(net, model.spec, args.studies, shape=tuple(cfg.get("shape", (40, 112, 112))),
                                 spacing=tuple(cfg.get("spacing", (2.5, 0.8, 0.8))), n_boot=args.bootstrap))
        if args.record:
            registry.record_metrics(model.name, model.version, result)
        low, high = result["test_auc_ci95"]
        _say(f"AUC {result['test_auc']:.3f} (95% CI {low:.3f}-{high:.3f}); at threshold "
            f"{result['test_threshold']:.3f}: sensitivity {result['test_sensitivity']:.3f}, specificity "
            f"{result['test_specificity']:.3f}, PPV {result['test_ppv']:.3f}, NPV {result['test_npv']:.3f}")
        print(json.dumps({"model": model.label, **result}, indent=2))
    return 0


main = command("radlake model", _parser, _run)
