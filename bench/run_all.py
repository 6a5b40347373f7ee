"""Run every benchmark, one after another, and print a table of their headline ratios against their goals.

    make bench                                   # full sizes (what docs/benchmarks.md reports)
    .venv/bin/python bench/run_all.py --quick    # small sizes, about 10 minutes on 2 cores
    .venv/bin/python bench/run_all.py [--quick] [--only NAME,...] [--with-stack] [--no-docs]

Each benchmark is a script under ``bench/`` that follows one contract: ``--quick`` (a size that finishes
fast), ``--write-docs`` (replaces its own section of docs/benchmarks.md through ``bench.report``) and
``--summary FILE`` (appends one JSON line ``{"benchmark", "measure", "ratio", "goal"}`` per headline
ratio). They run as subprocesses and never in parallel, because they measure CPU time on the same cores.
Each one's output goes to ``.radlake/logs/bench/NAME.log``; the terminal gets one line per benchmark. A
failed benchmark makes the exit code non-zero but does not stop the others.

``stack`` (cold and warm start of every component on its own ports, downloads included: minutes, and it
starts and stops a second copy of the stack beside the running one) only runs with ``--with-stack``.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as ``python bench/run_all.py`` (what ``make bench`` does): the repository root is not on the path then.
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

LOG_DIR = ROOT / ".radlake" / "logs" / "bench"
ORDER = ("streams", "deid", "lake", "ingest", "radiomics", "radiomics_cohort", "inference", "governance", "bridge")
STACK = "stack"

# ``>= 0.5``, ``<= 1``, ``> 1``, ``< 2``, ``== 0`` or a bare number (equality): what a goal text may say.
_GOAL = re.compile(r"^\s*(>=|<=|==|=|>|<)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass(frozen=True)
class Benchmark:
    name: str
    command: tuple[str, ...]  # without the pass-through flags (--quick, --write-docs, --summary)


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    returncode: int
    rows: tuple[dict, ...]
    log: Path
    problem: str = ""  # why a benchmark that exited 0 still counts as failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.problem


def benchmarks(names: Sequence[str], python: str = sys.executable) -> list[Benchmark]:
    # ``-m`` from the repository root: every script imports ``bench.report``, and ``bench`` is not installed.
    return [Benchmark(name, (python, "-m", f"bench.{name}_bench")) for name in names]


def parse_goal(goal: str) -> tuple[str, float] | None:
    """``(operator, bound)`` of a goal such as ``>= 0.80``; None when the text is no comparison with a number."""
    match = _GOAL.match(goal or "")
    if not match:
        return None
    op = match.group(1) or "=="
    return ("==" if op == "=" else op), float(match.group(2))


def goal_met(ratio: float, goal: str) -> bool | None:
    """Whether ``ratio`` meets ``goal``; None when the goal cannot be judged (no goal, or no number to judge)."""
    parsed = parse_goal(goal)
    if parsed is None or ratio is None or not math.isfinite(ratio):
        return None
    op, bound = parsed
    if op == "==":
        return math.isclose(ratio, bound, rel_tol=1e-9, abs_tol=1e-12)
    return _COMPARE[op](ratio, bound)


def read_summary(path: Path) -> tuple[list[dict], str]:
    """The rows a benchmark appended, and a problem when a line is not a summary row (or there is none)."""
    rows: list[dict] = []
    if not path.exists():
        return rows, "wrote no --summary line"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row["ratio"] = float(row["ratio"])
            row["measure"], row["goal"] = str(row["measure"]), str(row.get("goal") or "")
        except (ValueError, KeyError, TypeError) as err:
            return rows, f"summary line {number} is not {{benchmark, measure, ratio, goal}}: {err}"
        rows.append(row)
    return rows, "" if rows else "wrote no --summary line"


def run_one(bench: Benchmark, flags: Sequence[str], work: Path, log_dir: Path, cwd: Path = ROOT) -> Outcome:
    summary = work / f"{bench.name}.jsonl"
    log = log_dir / f"{bench.name}.log"
    command = [*bench.command, *flags, "--summary", str(summary)]
    started = time.perf_counter()
    with log.open("wb") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        returncode = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False).returncode
    seconds = time.perf_counter() - started
    rows, problem = read_summary(summary)
    return Outcome(bench.name, seconds, returncode, tuple(rows), log, problem if returncode == 0 else "")


def _ratio(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def table(outcomes: Sequence[Outcome]) -> str:
    """Markdown table: one row per summary line; a failed benchmark gets a row saying where its log is."""
    lines = ["| benchmark | measure | ratio | goal | met? |", "| --- | --- | ---: | --- | --- |"]
    for outcome in outcomes:
        for row in outcome.rows:
            met = goal_met(row["ratio"], row["goal"])
            mark = "" if met is None else ("yes" if met else "**no**")
            lines.append(f"| {row.get('benchmark', outcome.name)} | {row['measure']} | {_ratio(row['ratio'])} | "
                         f"{row['goal']} | {mark} |")
        if not outcome.ok:
            why = outcome.problem or f"exit code {outcome.returncode}"
            lines.append(f"| {outcome.name} | **failed** ({why}; log `{_relative(outcome.log)}`) | | | |")
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None, registry: Sequence[Benchmark] | None = None,
         log_dir: Path = LOG_DIR, docs: Path | None = None) -> int:
    """``registry`` replaces the scripts under bench/ (the unit tests pass tiny commands); ``docs`` the docs file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="benchmarks, in order: "
                                     + ", ".join(ORDER) + f", then {STACK} with --with-stack")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (small sizes)")
    parser.add_argument("--only", help="comma-separated benchmark names to run (in the usual order)")
    parser.add_argument("--with-stack", action="store_true",
                        help=f"also run {STACK!r}: a cold start of a second copy of the whole stack on other ports "
                             "(downloads ~1 GB, minutes); it starts and stops its components")
    parser.add_argument("--no-docs", action="store_true", help="do not pass --write-docs (docs/benchmarks.md untouched)")
    args = parser.parse_args(argv)

    available = list(registry) if registry is not None else benchmarks([*ORDER, STACK])
    by_name = {b.name: b for b in available}
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(by_name)}")
        selected = [b for b in available if b.name in wanted]
    else:
        selected = [b for b in available if b.name != STACK or args.with_stack]
    flags = [*(["--quick"] if args.quick else []), *([] if args.no_docs else ["--write-docs"])]

    # The logs sit in the state dir, which is its owner's only (the benchmarks' output names files and hosts).
    os.umask(0o077)
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="radlake-bench-") as tmp:
        for bench in selected:
            live = sys.stderr.isatty()  # a "running" line to overwrite only where \r overwrites it
            if live:
                print(f"{bench.name:<17} running ...", end="", flush=True, file=sys.stderr)
            outcome = run_one(bench, flags, Path(tmp), log_dir)
            status = "ok" if outcome.ok else f"FAILED ({outcome.problem or f'exit code {outcome.returncode}'})"
            print(f"{chr(13) if live else ''}{bench.name:<17} {outcome.seconds:7.1f} s  {status}  "
                  f"log {_relative(outcome.log)}", file=sys.stderr, flush=True)
            outcomes.append(outcome)

    with (log_dir / "summary.jsonl").open("w") as out:  # the last run's rows, for whoever wants them as data
        for outcome in outcomes:
            for row in outcome.rows:
                out.write(json.dumps(row) + "\n")
    result = table(outcomes)
    total = sum(o.seconds for o in outcomes)
    failed = [o.name for o in outcomes if not o.ok]
    print()
    print(result)
    print(f"\n{len(outcomes)} benchmarks in {total / 60:.1f} min" + (f"; failed: {', '.join(failed)}" if failed else ""))
    # The summary section only when every benchmark ran: a partial table would read as the whole picture.
    if not args.no_docs and not args.only:
        command = "python bench/run_all.py" + (" --quick" if args.quick else "") + (
            " --with-stack" if args.with_stack else "")
        body = (f"Every benchmark's headline ratios from one `{command}` run ({total / 60:.1f} min). Run all "
                "of them with `make bench` (full sizes) or `.venv/bin/python bench/run_all.py --quick`; each "
                "section below states its own machine load and peers' versions.\n\n" + result)
        write_section("summary", "Summary: headline ratios against their goals", command, body,
                      **({"path": docs} if docs is not None else {}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
