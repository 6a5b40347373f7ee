"""What every ``radlake`` command shares: settings, logging, and errors as one line and an exit code.

A command module builds its ``argparse`` parser and a handler ``(args, settings) -> int`` and exposes
``main = command(...)``. Logs go to ``<state dir>/logs/commands.log`` (timestamped, one record per line);
the terminal gets the command's progress and results, and warnings. Any :class:`RadlakeError` (the root
of every radlake exception) ends the command with its message on one line and exit code 1 (2 for a
:class:`UsageError`, or the code the command gives that error). The state dir is locked down first
(``platform_layer.state``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from lake_schemas.errors import RadlakeError
from platform_layer.identities import use_stack_identity
from platform_layer.settings import Settings
from platform_layer.state import lock_down

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(RadlakeError):
    """The arguments cannot work (a missing input, an out-of-range option): exit code 2, like argparse's."""


Handler = Callable[[argparse.Namespace, Settings], int | None]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Libraries that log one line per request at INFO.
_CHATTY = ("httpx", "httpcore", "py4j", "urllib3", "nipyapi")
# Loggers whose records, warnings included, are for the log file only: Python warnings, and libraries that warn
# about what radlake does on purpose (highdicom about pseudonymous person names, for one).
_FILE_ONLY = ("py.warnings", "highdicom", "pyspark", "py4j")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a test may have replaced it since)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(settings: Settings, *, console_level: int = logging.WARNING) -> None:
    """Everything at INFO into the state dir's command log; ``console_level`` and above also to stderr.
    Python warnings and the loggers in ``_FILE_ONLY`` go to the log only."""
    root = logging.getLogger()
    if getattr(root, "_radlake_configured", False):
        return
    root.setLevel(logging.INFO)
    console = _StderrHandler()
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(console)
    file_only = [logging.getLogger(name) for name in _FILE_ONLY]
    for logger in file_only:
        logger.propagate = False
    try:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(settings.logs_dir / "commands.log")
    except OSError as err:
        logging.getLogger(__name__).warning("logging to the terminal only: %s", err)
    else:
        to_file.setLevel(logging.INFO)
        to_file.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(to_file)
        for logger in file_only:
            logger.addHandler(to_file)
    logging.captureWarnings(True)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    root._radlake_configured = True  # type: ignore[attr-defined]


def command(prog: str, parser: Callable[[], argparse.ArgumentParser], handler: Handler, *,
            console_level: Callable[[argparse.Namespace], int] = lambda _args: logging.WARNING,
            exit_codes: Mapping[type[RadlakeError], int] | None = None,
            ) -> Callable[[Sequence[str] | None], int]:
    """The ``main(argv=None) -> int`` of a command: it returns the exit code, also for usage errors.

    ``exit_codes`` gives some errors their own code (checked in order; others exit 1).
    """
    codes = {UsageError: EXIT_USAGE, **(exit_codes or {})}

    def main(argv: Sequence[str] | None = None) -> int:
        try:
            args = parser().parse_args(argv)
        except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
            return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
        settings = Settings()
        lock_down(settings)
        use_stack_identity(settings)
        configure_logging(settings, console_level=console_level(args))
        try:
            return int(handler(args, settings) or EXIT_OK)
        except RadlakeError as err:
            print(f"{prog}: {err}", file=sys.stderr)
            return next((code for kind, code in codes.items() if isinstance(err, kind)), EXIT_FAILED)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130

    main.__doc__ = f"``{prog}``: parse ``argv`` (default ``sys.argv[1:]``), run, return the exit code."
    return main
