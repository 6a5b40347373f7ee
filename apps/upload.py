"""``radlake upload PATH... --provider NAME``: send folders and archives to the provider's edge, resumably.

The edge URL and token default to the provider's deployed edge (``radlake provider list``) and its token in
Vault; a provider outside this installation passes ``--url`` and ``--token-file``. The edge speaks HTTPS: its
certificate is verified against ``--ca-file`` (default: the platform CA when this host has one, else the system's
trust store; ``radlake provider ca`` prints the platform CA for a provider to keep). The journal (default
``<state>/uploads/NAME.jsonl``, 0600) makes a second run skip what was acknowledged; lines older than
``--journal-retention-days`` (30) are forgotten first. Progress goes to stderr,
the per-study report to stdout. Exit status: 0 done (also with quarantined inputs), 1 upload failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apps._common import UsageError, command
from nifi.edge import journal
from nifi.edge.client import Uploader, plan, study_report, upload_id_for
from nifi.edge.edge import UPLOAD_ID
from nifi.edge.errors import IngestError
from nifi.providers import edge_verification, endpoint_token, find_edge
from platform_layer.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake upload", description=__doc__.splitlines()[0].strip("`."))
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="DICOM files, folders, zip/tar archives")
    parser.add_argument("--provider", required=True)
    parser.add_argument("--url", help="edge URL (default: the provider's deployed edge)")
    parser.add_argument("--token-file", type=Path, help="file holding the endpoint token (default: from Vault)")
    parser.add_argument("--ca-file", type=Path,
                        help="CA (PEM) that verifies the edge's certificate (default: the platform CA)")
    parser.add_argument("--journal", type=Path, help="upload journal (default: <state>/uploads/PROVIDER.jsonl)")
    parser.add_argument("--journal-retention-days", type=float,
                        help="forget journal lines older than this first (default: "
                             "RADLAKE_UPLOAD_JOURNAL_RETENTION_DAYS, 30)")
    parser.add_argument("--upload-id", help="16-64 lower-case hex digits (default: a digest of the paths and the provider)")
    parser.add_argument("--max-instances", type=int, default=100, help="instances per STOW-RS request")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


class UploadFailed(IngestError):
    """The upload stopped before every unit was acknowledged; running it again resumes."""


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.upload_id is not None and not UPLOAD_ID.fullmatch(args.upload_id):
        raise UsageError("--upload-id must be 16 to 64 lower-case hex digits (it travels in events: no free text)")
    missing = [str(p) for p in [*args.paths, *([args.ca_file] if args.ca_file else [])] if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    journal_path = args.journal or settings.state_dir / "uploads" / f"{args.provider}.jsonl"
    retention = settings.upload_journal_retention_days if args.journal_retention_days is None \
        else args.journal_retention_days
    if retention < 0:
        raise UsageError("--journal-retention-days must not be negative")
    forgotten = journal.expire(journal_path, datetime.now(UTC) - timedelta(days=retention))
    if forgotten:
        print(f"journal: {forgotten} line(s) older than {retention:g} days forgotten", file=sys.stderr)
    url = args.url or find_edge(settings, args.provider).url
    token = args.token_file.read_text().strip() if args.token_file else endpoint_token(settings, args.provider)
    the_plan = plan(args.paths, max_instances=args.max_instances)
    upload_id = args.upload_id or upload_id_for(args.paths, args.provider)
    print(f"upload {upload_id}: {len(the_plan.studies)} studies, {the_plan.instances} inputs, "
          f"{len(the_plan.units)} requests -> {url} (journal {journal_path})", file=sys.stderr)
    uploader = Uploader(url, token, journal_path, verify=edge_verification(settings, args.ca_file))
    try:
        records = uploader.upload(the_plan, upload_id)
    except IngestError as err:
        raise UploadFailed(f"{err} (run again to resume)") from err
    finally:
        uploader.close()
    rows = study_report(records)
    if args.json:
        print(json.dumps({"upload_id": upload_id, "provider": args.provider, "studies": rows}, indent=2))
    else:
        print(f"{'study (provider UID)':<44} {'sent':>5} {'accepted':>8} {'dup':>4} {'quarantined':>11}  reasons")
        for row in rows:
            print(f"{row['study'][:44]:<44} {row['sent']:>5} {row['accepted']:>8} {row['duplicate']:>4} "
                  f"{row['quarantined']:>11}  {json.dumps(row['reasons']) if row['reasons'] else ''}")
    return 0


main = command("radlake upload", _parser, _run)
