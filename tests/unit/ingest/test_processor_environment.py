"""The NiFi processor's own environment holds only the dependencies it declares (``ProcessorDetails``):
everything the edge runtime imports must be among them, or the edge fails when NiFi schedules it."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROCESSOR = ROOT / "nifi" / "python" / "extensions" / "ingest_dicom.py"
OURS = {"apps", "bench", "infra", "inference_workers", "lake_schemas", "nifi", "platform_layer", "radlake",
        "spark_jobs", "streams"}


def _declared() -> set[str]:
    tree = ast.parse(PROCESSOR.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "dependencies" for t in node.targets):
            requirements = ast.literal_eval(node.value)
            return {_name(r) for r in requirements}
    raise AssertionError("IngestDicom declares no dependencies")


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _installed_with(declared: set[str]) -> set[str]:
    """The declared distributions and everything pip installs with them (extras included: a superset)."""
    seen, todo = set(), list(declared)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [_name(r) for r in importlib.metadata.requires(name) or []]
        except importlib.metadata.PackageNotFoundError:
            continue
    return seen


def _imported_distributions() -> set[str]:
    # modules with a file: artificial ones (Cython's ``cython_runtime``) belong to no distribution
    probe = ("import json, sys; import nifi.edge.runtime, nifi.edge.handler; "
             "print(json.dumps(sorted({m.split('.')[0] for m, mod in list(sys.modules.items()) "
             "if getattr(mod, '__file__', None)})))")
    modules = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                        check=True).stdout)
    by_module = importlib.metadata.packages_distributions()
    found = set()
    for module in modules:
        if module in OURS or module in sys.stdlib_module_names or module.startswith("_"):
            continue
        found |= {d.lower().replace("_", "-") for d in by_module.get(module, [module])}
    return found


def test_the_edge_runtime_imports_only_what_the_processor_declares():
    missing = _imported_distributions() - _installed_with(_declared())
    assert not missing, f"the edge runtime imports {sorted(missing)}, which IngestDicom does not declare"
