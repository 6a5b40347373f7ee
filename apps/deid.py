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
from pathlib import Path

from radlake.deid.confidentiality_profile import Profile, load_profile
from radlake.deid.engine import Job, default_progress, run
from radlake.deid.errors import ProfileError, PseudonymError
from radlake.deid.pseudonyms import LocalHmacSpec, PseudonymiserSpec, VaultTransitSpec, transit_key_name
from radlake.settings import Settings, get_settings

EXIT_OK, EXIT_USAGE, EXIT_INFRA = 0, 2, 3


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


def vault_spec(settings: Settings, project: str) -> VaultTransitSpec:
    """Vault address and token from settings, else from the local stack's Vault (``radlake stack up vault``)."""
    key = transit_key_name(project)
    if settings.vault_addr:
        token = settings.vault_token.get_secret_value() if settings.vault_token else ""
        return VaultTransitSpec(settings.vault_addr, key, token, mount=settings.vault_transit_mount)
    try:
        from infra.components import vault as vault_component
    except ImportError as err:
        raise PseudonymError("no Vault configured: set RADLAKE_VAULT_ADDR or run `radlake stack up vault`") from err
    import hvac.exceptions
    import requests

    from infra.errors import StackError

    try:
        client = vault_component.client(settings)
    except (StackError, hvac.exceptions.VaultError, requests.exceptions.RequestException, OSError, KeyError,
            ValueError) as err:
        raise PseudonymError(f"the stack's Vault is not usable ({err}); run `radlake stack up vault`") from err
    return VaultTransitSpec(str(client.url), key, str(client.token), mount=settings.vault_transit_mount)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.workers < 1:
        print("radlake deid: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    missing = [str(p) for p in args.sources if not p.exists() and not p.is_symlink()]
    if missing:
        print(f"radlake deid: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        profile = load_profile(args.profile) if args.profile else Profile()
    except ProfileError as err:
        print(f"radlake deid: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        spec: PseudonymiserSpec
        if args.local_key_file:
            spec = LocalHmacSpec(args.local_key_file.read_bytes())
        else:
            spec = vault_spec(get_settings(), args.project)
        job = Job(args.out, profile, args.provider, spec)
        result = run(args.sources, job, workers=args.workers,
                     progress=None if args.no_progress else default_progress)
    except PseudonymError as err:
        print(f"radlake deid: Vault Transit is unreachable or failing: {err}", file=sys.stderr)
        return EXIT_INFRA
    except (OSError, BrokenExecutor) as err:
        print(f"radlake deid: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_INFRA
    report = result.report
    print(json.dumps({k: report[k] for k in ("inputs", "by_status", "by_reason", "verification")}, indent=2))
    print(f"report: {args.out / 'report.json'}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
