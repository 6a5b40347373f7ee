"""``radlake storage-scp --config FILE``: run one provider's DICOM Storage SCP in the foreground.

``radlake provider dimse`` and ``radlake stack up`` start it in the background (``nifi/edge/storage_scp.py`` says
what it does); run by hand it is the same process, logging to stderr. Exit status: 0 stopped by SIGTERM/SIGINT,
1 failure (the message names the step), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from apps._common import UsageError, command
from nifi.edge.storage_scp import ScpConfig, serve
from platform_layer.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake storage-scp", description=__doc__.splitlines()[0].strip("`."))
    parser.add_argument("--config", required=True, help="the SCP's scp.json (written by radlake provider dimse)")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.config)
    try:
        config = ScpConfig.from_json(path.read_text())
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(f"{path}: not an SCP configuration ({type(err).__name__}: {err})") from err
    print(f"Storage SCP of {config.provider} starting", file=sys.stderr)
    serve(config)
    return 0


# the process's log is what its operator reads: INFO lines (associations rejected, failures) go to stderr
main = command("radlake storage-scp", _parser, _run, console_level=lambda _args: logging.INFO)
