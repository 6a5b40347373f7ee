"""Quality gates: great-expectations suites from ``lake_schemas/expectations/`` run on each micro-batch.

A suite is a great-expectations 1.x ``ExpectationSuite`` document (``name``, ``expectations`` with
``type``/``kwargs``/``meta``) plus ``meta.radlake`` saying which column identifies a row. Every
expectation is evaluated row by row (``result_format=COMPLETE``); each row it rejects is reported with
the expectation, so the caller can quarantine it. An expectation that cannot be evaluated (a missing
column, an engine error) rejects every row of the batch: a gate never lets rows through unchecked.

Engine: great-expectations' pandas engine on the micro-batch, converted by the caller. Its Spark engine
does run on Spark 4.2 here, but evaluates each metric as a separate Spark job (about 7 s for one
expectation on a 3-row batch on local[2]) and great-expectations 1.24 declares ``pyspark<4.2`` for it;
the pandas engine validates the same suite in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import lake_schemas
from lake_schemas.errors import RadlakeError

EXPECTATIONS_DIR = Path(lake_schemas.__file__).parent / "expectations"

log = logging.getLogger(__name__)


class GateError(RadlakeError):
    """A suite cannot be loaded or is not a radlake gate suite."""


@dataclass(frozen=True)
class Suite:
    name: str
    document: Mapping
    sha256: str
    index_column: str
    stage: str
    source_table: str


@dataclass(frozen=True)
class Outcome:
    """One expectation on one batch."""

    check: str  # expectation type and column, e.g. expect_column_values_to_not_be_null(study_uid)
    expectation: str
    column: str | None
    kwargs_json: str
    reason: str  # the quarantine reason code from the expectation's meta
    success: bool
    unexpected: tuple[str, ...]  # index values (event ids) of the rows it rejects
    error: str | None = None


@dataclass(frozen=True)
class GateResult:
    suite: Suite
    engine: str
    rows_evaluated: int
    outcomes: tuple[Outcome, ...]

    @property
    def rejected(self) -> frozenset[str]:
        return frozenset(i for o in self.outcomes for i in o.unexpected)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR) -> Suite:
    path = directory / f"{name}.json"
    try:
        raw = path.read_bytes()
        document = json.loads(raw)
        meta = document["meta"]["radlake"]
        return Suite(name=document["name"], document=document, sha256=hashlib.sha256(raw).hexdigest(),
                     index_column=meta["index_column"], stage=meta["stage"], source_table=meta["source_table"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GateError(f"{path} is not a radlake gate suite: {err!r}") from err


def engine_name() -> str:
    return f"great_expectations {version('great_expectations')} (pandas)"


@lru_cache(maxsize=1)
def _context():
    # great-expectations takes seconds to import: only the processes that run a gate pay for it
    import great_expectations as gx  # noqa: PLC0415
    from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: PLC0415

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def warm_up() -> None:
    """Import great-expectations and build its context now rather than in the first batch."""
    _context()


def _check_name(expectation: str, kwargs: Mapping) -> str:
    return f"{expectation}({kwargs['column']})" if "column" in kwargs else expectation


def validate(frame, suite: Suite) -> GateResult:
    """Run the suite on a pandas DataFrame; every expectation's rejected rows by index column."""
    import great_expectations as gx  # noqa: PLC0415 - see _context

    index = suite.index_column
    if frame.empty:
        return GateResult(suite, engine_name(), 0, ())
    expectations = [dict(e) for e in suite.document["expectations"]]
    gx_suite = gx.ExpectationSuite(name=suite.name, expectations=expectations)
    batch = (
        _context().data_sources.add_or_update_pandas(f"gate-{suite.name}")
        .add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(gx_suite, result_format={"result_format": "COMPLETE",
                                                     "unexpected_index_column_names": [index]})
    all_rows = tuple(str(v) for v in frame[index])
    outcomes = []
    # Results do not come back in suite order: each carries its own configuration.
    for res in result.results:
        config = res.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        reason = (config.meta or {}).get("reason", "EXPECTATION_FAILED")
        error = None
        unexpected = tuple(str(r[index]) for r in (res.result or {}).get("unexpected_index_list") or ())
        raised = bool(res.exception_info and res.exception_info.get("raised_exception"))
        if raised or (not res.success and not unexpected):
            # It failed without naming rows (an exception, a missing column): no row of the batch is checked.
            error = str(res.exception_info.get("exception_message") if raised else
                        f"failed without row results: {json.dumps(res.result, default=str)}")[:1000]
            unexpected, reason = all_rows, "GATE_ERROR"
        outcomes.append(Outcome(
            check=_check_name(config.type, kwargs), expectation=config.type, column=kwargs.get("column"),
            kwargs_json=json.dumps(kwargs, sort_keys=True, default=str), reason=reason,
            success=bool(res.success) and error is None and not unexpected, unexpected=unexpected, error=error,
        ))
    if len(outcomes) != len(expectations):
        raise GateError(f"{suite.name}: {len(expectations)} expectations but {len(outcomes)} results")
    return GateResult(suite, engine_name(), len(frame), tuple(outcomes))
