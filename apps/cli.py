"""The ``radlake`` command: one entry point, one sub-command per part of the system.

Sub-commands are imported lazily so that ``radlake deid`` does not pay for Spark's import, and
each sub-command module exposes ``main(argv=None) -> int``.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("apps.stack", "start, stop and inspect the local stack (Vault, Keycloak, Kafka, registry, NiFi, Spark)"),
    "schemas": ("apps.schemas", "list, validate and register the event schemas"),
    "deid": ("apps.deid", "de-identify DICOM files, folders and archives (PS3.15 Annex E)"),
    "radiomics": ("apps.radiomics", "compute IBSI radiomic features"),
    "streams": ("apps.streams", "study completion, dedupe and conflicts on Kafka (transactional worker, /metrics)"),
    "login": ("apps.login", "log in to radlake (OAuth 2.0 device flow); --status shows who and with which roles"),
    "logout": ("apps.logout", "revoke the stored session and forget its tokens"),
    "user": ("apps.user", "add and list people; grant and revoke their roles"),
    "project": ("apps.project", "create and list projects (their reader and steward roles)"),
    "erase": ("apps.erase", "erase one patient from the lake and the object store, with a proof report"),
    "audit": ("apps.audit", "show the audit trail of privileged actions; verify its hash chain"),
    "dataset": ("apps.dataset", "define a project's datasets; read the ones you are granted (lake gateway)"),
    "grant": ("apps.grant", "let a user read a dataset until a date"),
    "revoke": ("apps.revoke", "end a user's grants of a dataset"),
    "provider": ("apps.provider", "add, list and remove a provider's NiFi edge flow (STOW-RS, archives, drop folder)"),
    "storage-scp": ("apps.storage_scp", "run one provider's DICOM Storage SCP (started by radlake provider dimse)"),
    "quarantine": ("apps.quarantine", "triage what a provider's edge refused: list, show, release, discard"),
    "upload": ("apps.upload", "send a provider's DICOM folders and archives to its edge, resumably"),
    "ingest": ("apps.ingest", "reconcile uploads, object store and events: radlake ingest report"),
    "demo": ("apps.demo", "run the main job end to end and print a summary"),
    "lake": ("apps.lake", "run the lake's streaming jobs; list, optimize and vacuum its Delta tables"),
    "gateway": ("apps.gateway", "the lake gateway process: granted datasets over Arrow Flight (stack up runs it)"),
    "model": ("apps.model", "train, register, promote and evaluate the nodule model"),
    "infer": ("apps.infer", "inference workers: study completed -> prediction created (SEG, SR)"),
    "bridge": ("apps.bridge", "the results bridge: live results to dashboards over SSE/WebSocket (stack up runs it)"),
    "status": ("apps.status", "one screen for an admin: providers, consumer lag, lake tables, alerts, restarts"),
    "console": ("apps.console", "the admin console: overview, plots, quarantine triage, dead-letter replay (stack up console)"),
    "monitoring": ("apps.monitoring", "the consumer-lag exporter and the alert webhook receiver (stack up monitoring)"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: radlake COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"radlake: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
