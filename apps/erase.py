"""``radlake erase --project P --provider PR --patient-ref REF|-``: erase one patient, with a proof report.

REF is the patient ID as the provider knows it (``-`` reads it from stdin, so that it never appears in a
process list); it is pseudonymised with the project's key exactly as the edges did, and never stored, logged
or printed. Everything of that pseudonym is removed from the lake (every table, their history) and the object
store (``spark_jobs/erasure.py`` says how and in which order), then a scan looks for what is left. The report
(JSON and text) goes to ``<state>/erasures/<erasure id>.json|.txt`` (0600) and the text to stdout. The erasure
is audited (``radlake audit show --action erasure``) and recorded in ``governance/erasures``, also the deny list
of erased pseudonyms. Running it again finishes an interrupted run and reports every run.
Exit status: 0 erased (or nothing was found), 1 something is left or a step failed, 2 usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from apps._common import UsageError, command
from lake_schemas.tables import ERASURES
from nifi.providers import edge_dir, quarantine_keys
from platform_layer import audit, governance
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.vault import admin_client, transit_session
from radlake.deid.pseudonyms import patient_message, pseudonym_from_digest
from radlake.deid.quarantine import originals_of_patient, quarantine_dir, remove
from spark_jobs.erasure import Key, erase, find


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake erase", description=__doc__.splitlines()[0].strip("`."))
    parser.add_argument("--project", required=True)
    parser.add_argument("--provider", required=True)
    parser.add_argument("--patient-ref", required=True, help="the provider's patient ID, or - to read it from stdin")
    return parser


def _pseudonym(settings: Settings, project: str, provider: str, reference: str) -> str:
    with transit_session(settings, project, ttl="10m") as spec:
        [digest] = spec.open().hmac_many([patient_message(provider, reference)])
    return pseudonym_from_digest(digest)


def _erase_quarantine(settings: Settings, provider: str, reference: str, entry: audit.AuditRecord) -> dict:
    """Delete the provider's quarantined originals holding the patient, and their records. Finding them opens
    every kept original (Vault's log links each unwrap to the erasure's audit row); none is ever listed."""
    folder = edge_dir(settings, provider)
    if not quarantine_dir(folder).exists():
        return {"searched": 0, "originals_removed": 0, "records_removed": 0, "unattributed": 0}
    keys = quarantine_keys(settings, provider, audit.link_vault(admin_client(settings), entry))
    with tempfile.TemporaryDirectory(dir=folder, prefix=".erasure-") as scratch:  # under the 0700 state dir
        found = originals_of_patient(folder, reference, Path(scratch), keys)
    originals = records = 0
    for digest in found.holding:
        removed_originals, removed_records = remove(folder, digest)
        originals, records = originals + removed_originals, records + removed_records
    left = [d for d in found.holding if (quarantine_dir(folder) / "files" / f"{d}.bin").exists()]
    return {"searched": found.searched, "originals_removed": originals, "records_removed": records,
            "unattributed": len(found.unattributed), "left": len(left)}


def _quarantine_text(result: dict) -> str:
    text = (f"edge quarantine: {result['searched']} kept original(s) opened, {result['originals_removed']} of the "
            f"patient deleted with {result['records_removed']} record(s)")
    if result["unattributed"]:
        text += f"; {result['unattributed']} not readable as DICOM (cannot hold a patient ID; left as they are)"
    if result.get("left"):
        text += f"; {result['left']} could not be deleted"
    return text + "\n"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    reference = sys.stdin.readline().strip() if args.patient_ref == "-" else args.patient_ref.strip()
    if not reference:
        raise UsageError("--patient-ref is empty")
    pseudonym = _pseudonym(settings, args.project, args.provider, reference)
    erasure_id = hashlib.sha256(f"{args.project}\x1f{args.provider}\x1f{pseudonym}".encode()).hexdigest()[:24]
    previous = next((r for r in governance.table_rows(settings, ERASURES) if r["erasure_id"] == erasure_id), None)
    lake = settings.resolved_lake_uri
    with audit.recorded(settings, "erasure", f"erasure {erasure_id}",
                        details={"project": args.project, "provider": args.provider,
                                 "run": (previous or {}).get("runs", 0) + 1}) as entry:
        studies, objects = find(lake, Key.patient(pseudonym), known_studies=(previous or {}).get("studies") or [],
                                known_objects=(previous or {}).get("objects") or [])
        now = datetime.now(UTC)
        record = {"erasure_id": erasure_id, "project": args.project, "provider": args.provider,
                  "pseudonym": pseudonym, "studies": sorted(studies), "objects": sorted(objects),
                  "runs": (previous or {}).get("runs", 0) + 1, "state": "started", "requested_by": entry.actor,
                  "first_run_at": (previous or {}).get("first_run_at") or now, "last_run_at": now, "report": None}
        # What was found is recorded before anything is deleted: a run cut short is finished from it.
        governance.write_rows(settings, ERASURES, [record], replace_key="erasure_id" if previous else None)
        report = erase(lake, Key.patient(pseudonym), studies, objects)
        quarantine = _erase_quarantine(settings, args.provider, reference, entry)
        complete = report.complete and not quarantine.get("left")
        runs = [*json.loads((previous or {}).get("report") or "{}").get("runs", []),
                {**report.as_json(), "edge_quarantine": quarantine, "complete": complete}]
        record.update(state="complete" if complete else "incomplete",
                      report=json.dumps({"erasure_id": erasure_id, "runs": runs}, default=str))
        governance.write_rows(settings, ERASURES, [record], replace_key="erasure_id")
    folder = settings.state_dir / "erasures"
    write_private(folder / f"{erasure_id}.json", json.dumps({"erasure_id": erasure_id, "project": args.project,
                                                             "provider": args.provider, "runs": runs}, indent=2,
                                                            default=str))
    text = f"erasure {erasure_id} (project {args.project}, provider {args.provider}), run {record['runs']}\n"
    text += report.as_text() + _quarantine_text(quarantine)
    if len(runs) > 1:
        text += f"earlier runs: {', '.join(r['started_at'] for r in runs[:-1])}\n"
    write_private(folder / f"{erasure_id}.txt", text)
    print(text, end="")
    return 0 if complete else 1


main = command("radlake erase", _parser, _run)
