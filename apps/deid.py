"""``radlake deid SRC... --out DIR --project NAME [--profile FILE] [--workers N]``.

Exit status: 0 when the run completed (also when inputs were quarantined: see ``report.json``),
2 on a usage error (bad arguments, unreadable profile), 3 on an infrastructure error (Vault).
Progress goes to stderr, the summary (the report's counts) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import BrokenExecutor
from contextlib import ExitStack
from pathlib import Path

from apps._common import EXIT_OK, UsageError, command
from platform_layer.errors import VaultUnavailable
from platform_layer.settings import Settings
from platform_layer.vault import transit_session
from radlake.deid.confidentiality_profile import Profile, load_profile
from radlake.deid.engine import Job, default_progress, run
from radlake.deid.errors import DeidError, ProfileError, PseudonymError
from radlake.deid.pseudonyms import LocalHmacSpec, PseudonymiserSpec, transit_key_name

EXIT_INFRA = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake deid", description=__doc__.splitlines()[0].strip("`."))
    parser.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="DICOM files, folders, zip/tar archives")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--project", required=True, help="project name: selects the Vault Transit key")
    parser.add_argument("--profile", type=Path, metavar="FILE", help="profile (YAML/JSON): options, safe private")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="worker processes (default: all cores)")
    parser.add_argument("--provider", help="provider name for pseudonyms and the report "
                        "(default: Issuer of Patient ID, else Institution Name)")
    parser.add_argument("--local-key-file", type=Path, metavar="FILE",
                        help="TESTING ONLY: HMAC key from a file instead of Vault Transit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    missing = [str(p) for p in args.sources if not p.exists() and not p.is_symlink()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    try:
        profile = load_profile(args.profile) if args.profile else Profile()
        if not args.local_key_file:
            transit_key_name(args.project)  # the name selects the project's key: refuse one that is not valid
    except (ProfileError, PseudonymError) as err:
        raise UsageError(str(err)) from err
    spec: PseudonymiserSpec
    try:
        with ExitStack() as run_scope:
            if args.local_key_file:
                spec = LocalHmacSpec(args.local_key_file.read_bytes())
            else:
                spec = run_scope.enter_context(transit_session(settings, args.project))
            job = Job(args.out, profile, args.provider, spec)
            result = run(args.sources, job, workers=args.workers,
                         progress=None if args.no_progress else default_progress)
    except (PseudonymError, VaultUnavailable) as err:
        raise PseudonymError(f"Vault Transit is unreachable or failing: {err}") from err
    except (OSError, BrokenExecutor) as err:
        raise DeidInfrastructureError(f"{type(err).__name__}: {err}") from err
    report = result.report
    print(json.dumps({k: report[k] for k in ("inputs", "by_status", "by_reason", "verification")}, indent=2))
    print(f"report: {args.out / 'report.json'}", file=sys.stderr)
    return EXIT_OK


class DeidInfrastructureError(DeidError):
    """The run could not complete for a reason outside its inputs (disk, a worker process)."""


main = command("radlake deid", _parser, _run, exit_codes={PseudonymError: EXIT_INFRA, DeidInfrastructureError: EXIT_INFRA})
