"""bench/run_all.py's bookkeeping: goals parsed and judged, summaries collected, failures reported in the exit code.

The benchmarks are replaced by a tiny script that appends the summary line it is told to, so nothing is measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import run_all
from bench.run_all import Benchmark, goal_met, parse_goal

FAKE = """
import json, sys
name, ratio, goal, code, *flags = sys.argv[1:]
print("flags:", " ".join(flags))
if "--summary" in flags and ratio != "none":
    with open(flags[flags.index("--summary") + 1], "a") as out:
        out.write(json.dumps({"benchmark": name, "measure": name + " / floor", "ratio": float(ratio), "goal": goal}) + "\\n")
sys.exit(int(code))
"""


@pytest.fixture
def fake(tmp_path: Path):
    script = tmp_path / "fake_bench.py"
    script.write_text(FAKE)

    def bench(name: str, ratio: str, goal: str = "", code: int = 0) -> Benchmark:
        return Benchmark(name, (sys.executable, str(script), name, ratio, goal, str(code)))

    return bench


@pytest.mark.parametrize("text, parsed", [
    (">= 0.50", (">=", 0.5)), ("<= 1.00", ("<=", 1.0)), ("<=1", ("<=", 1.0)), ("> 1", (">", 1.0)),
    ("< 2.5", ("<", 2.5)), ("0", ("==", 0.0)), ("== 3", ("==", 3.0)), (">= 1e-3", (">=", 0.001)),
    ("", None), ("faster than dicognito", None), (">= 20x", None), (">=", None),
])
def test_goal_texts_are_parsed_into_a_comparison_or_nothing(text, parsed):
    assert parse_goal(text) == parsed


@pytest.mark.parametrize("ratio, goal, met", [
    (0.8, ">= 0.8", True), (0.79, ">= 0.8", False), (1.0, "<= 1.00", True), (1.2, "<= 1", False),
    (1.0, "> 1", False), (0.0, "0", True), (0.1, "0", False), (5.0, "", None), (5.0, "about five", None),
    (float("nan"), ">= 1", None),
])
def test_a_goal_is_met_or_not_or_not_judged(ratio, goal, met):
    assert goal_met(ratio, goal) is met


def test_every_benchmark_runs_in_order_and_a_failure_makes_the_exit_code_non_zero(fake, tmp_path, capsys):
    registry = [fake("alpha", "0.9", ">= 0.5"), fake("beta", "1.4", "<= 1"), fake("gamma", "0.7", ">= 0.5", code=3),
                fake("delta", "2", "")]
    docs = tmp_path / "benchmarks.md"
    code = run_all.main(["--quick"], registry=registry, log_dir=tmp_path / "logs", docs=docs)
    out, err = capsys.readouterr()

    assert code == 1
    progress = [line.split()[0] for line in err.splitlines()]
    assert progress == ["alpha", "beta", "gamma", "delta"]  # one line each, in order; gamma did not stop delta
    assert "FAILED (exit code 3)" in err and err.count(" ok ") == 3
    table = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
             for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    assert table["alpha / floor"] == ["alpha", "alpha / floor", "0.9", ">= 0.5", "yes"]
    assert table["beta / floor"] == ["beta", "beta / floor", "1.4", "<= 1", "**no**"]
    assert table["delta / floor"] == ["delta", "delta / floor", "2", "", ""]
    assert table["gamma / floor"][4] == "yes"  # a failed run's rows are still shown ...
    assert any(cells[0] == "gamma" and "**failed** (exit code 3" in cells[1] for cells in table.values())  # ... and it
    # is reported, with its log
    for name in ("alpha", "beta", "gamma", "delta"):
        log = (tmp_path / "logs" / f"{name}.log").read_text()
        assert "flags: --quick --write-docs --summary" in log  # --quick and --write-docs passed through
    rows = [json.loads(line) for line in (tmp_path / "logs" / "summary.jsonl").read_text().splitlines()]
    assert [r["benchmark"] for r in rows] == ["alpha", "beta", "gamma", "delta"]
    assert "<!-- BEGIN summary -->" in docs.read_text() and "| alpha | alpha / floor | 0.9 |" in docs.read_text()


def test_a_benchmark_without_a_summary_line_fails(fake, tmp_path, capsys):
    code = run_all.main(["--no-docs"], registry=[fake("silent", "none")], log_dir=tmp_path / "logs",
                        docs=tmp_path / "benchmarks.md")
    out, err = capsys.readouterr()
    assert code == 1
    assert "FAILED (wrote no --summary line)" in err
    assert "flags: --summary" in (tmp_path / "logs" / "silent.log").read_text()  # no --quick, no --write-docs
    assert not (tmp_path / "benchmarks.md").exists()


def test_all_passing_exits_zero_and_only_runs_the_named_ones_in_the_usual_order(fake, tmp_path, capsys):
    registry = [fake("one", "1", ">= 1"), fake("two", "2", ">= 1"), fake("three", "3", ">= 1")]
    code = run_all.main(["--only", "three,one", "--no-docs"], registry=registry, log_dir=tmp_path / "logs")
    _, err = capsys.readouterr()
    assert code == 0
    assert [line.split()[0] for line in err.splitlines()] == ["one", "three"]


def test_stack_runs_only_when_asked_and_unknown_names_are_refused(fake, tmp_path, capsys):
    registry = [fake("one", "1"), fake(run_all.STACK, "0.5", "<= 1")]
    assert run_all.main(["--no-docs"], registry=registry, log_dir=tmp_path / "logs") == 0
    assert [line.split()[0] for line in capsys.readouterr().err.splitlines()] == ["one"]
    assert run_all.main(["--no-docs", "--with-stack"], registry=registry, log_dir=tmp_path / "logs") == 0
    assert [line.split()[0] for line in capsys.readouterr().err.splitlines()] == ["one", "stack"]
    with pytest.raises(SystemExit) as exit_:
        run_all.main(["--only", "nope"], registry=registry, log_dir=tmp_path / "logs")
    assert exit_.value.code == 2


def test_the_default_list_runs_every_script_under_bench_as_a_module():
    names = [b.name for b in run_all.benchmarks([*run_all.ORDER, run_all.STACK])]
    assert names == ["streams", "deid", "lake", "ingest", "radiomics", "radiomics_cohort", "inference", "governance",
                     "bridge", "stack"]
    assert {p.name.removesuffix("_bench.py") for p in Path(run_all.__file__).parent.glob("*_bench.py")} == set(names)
    root = Path(run_all.__file__).resolve().parent
    for bench in run_all.benchmarks(names):
        assert bench.command[1:3] == ("-m", f"bench.{bench.name}_bench")
        assert (root / f"{bench.name}_bench.py").exists()
