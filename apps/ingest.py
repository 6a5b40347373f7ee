"""``radlake ingest report --provider NAME``: reconcile the upload journal, the object store and the topics.

Reads the ``instance received``, ``quarantined`` and ``study manifest`` topics from the beginning to their
current end (registry-validated), keeps the provider's events and compares them with the journal's
acknowledged outcomes and with the object store. Prints the findings (JSON with ``--json``). ``--repair``
first announces the objects the provider's edge stored without announcing (its outbox tickets older than
``--repair-after`` seconds, ``nifi/edge/outbox.py``): each event not already on the topic is published, once.
Exit status: 0 nothing missing, 1 something missing or conflicting, 2 usage or infrastructure error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps._common import command
from lake_schemas.errors import SchemaViolation
from lake_schemas.topics import ANNOTATION_RECEIVED, INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST
from nifi.edge import journal
from nifi.edge.errors import EdgeUnavailable, IngestError, JournalError
from nifi.edge.outbox import Outbox, Repaired, repair
from nifi.edge.publish import EventPublisher
from nifi.edge.reconcile import read_provider_events, reconcile
from nifi.providers import edge_dir
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.errors import TopicError
from platform_layer.object_store import ObjectStore
from platform_layer.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake ingest", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    rep = sub.add_parser("report", help="reconcile journal, object store and topics")
    rep.add_argument("--provider", required=True)
    rep.add_argument("--journal", type=Path)
    rep.add_argument("--instance-topic", default=INSTANCE_RECEIVED.name)
    rep.add_argument("--quarantine-topic", default=QUARANTINED.name)
    rep.add_argument("--manifest-topic", default=STUDY_MANIFEST.name)
    rep.add_argument("--annotation-topic", default=ANNOTATION_RECEIVED.name)
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--repair", action="store_true",
                     help="announce objects the edge stored without announcing (its outbox), then report")
    rep.add_argument("--repair-after", type=float, default=60.0, metavar="SECONDS",
                     help="only outbox tickets at least this old (a live request's is seconds old; default 60)")
    return parser


class ReportUnavailable(IngestError):
    """The journal or the topics could not be read."""


def _report(args: argparse.Namespace, settings: Settings) -> int:
    path = args.journal or settings.state_dir / "uploads" / f"{args.provider}.jsonl"
    try:
        state = journal.load(path)
        bootstrap, registry = kafka_bootstrap(settings), registry_url(settings)
        instances = _stored_events(args, bootstrap, registry)
        quarantined = read_provider_events(bootstrap, registry, QUARANTINED.with_name(args.quarantine_topic),
                                           args.provider)
        manifests = read_provider_events(bootstrap, registry, STUDY_MANIFEST.with_name(args.manifest_topic),
                                         args.provider)
        store = ObjectStore(settings.resolved_object_store_uri)
        repaired = _repair(args, settings, store, instances) if args.repair else None
        if repaired is not None and repaired.published:
            instances = _stored_events(args, bootstrap, registry)
    except (JournalError, TopicError, SchemaViolation, EdgeUnavailable) as err:
        raise ReportUnavailable(str(err)) from err
    result = reconcile(state.outcomes(), list(state.manifests.values()), instances, quarantined, store.exists,
                       manifests)
    if args.json:
        print(json.dumps({**result.to_json(), "repaired": repaired.__dict__ if repaired else None}, indent=2))
    else:
        print(f"provider {args.provider}: journal {path} ({len(state.acks)} acknowledged requests)")
        if repaired is not None:
            print(f"  repaired: {repaired.tickets} outbox ticket(s), {repaired.objects} object(s) stored, "
                  f"{repaired.published} event(s) published, {repaired.never_stored} never stored")
        print(f"  acknowledged: {result.acknowledged_instances} stored, {result.acknowledged_quarantined} quarantined")
        print(f"  on the topics: {result.events} instance events, {result.quarantine_events} quarantine events")
        for name in ("missing_objects", "missing_events", "missing_quarantine_events", "conflicting_events",
                     "duplicate_events", "unexpected_events", "incomplete_studies"):
            items = getattr(result, name)
            print(f"  {name.replace('_', ' ')}: {len(items)}")
            for item in items[:20]:
                print(f"    {json.dumps(item, sort_keys=True)}")
        print("OK: nothing missing" if result.ok else "NOT OK: see above")
    return 0 if result.ok else 1


def _stored_events(args: argparse.Namespace, bootstrap: str, registry: str) -> list:
    """The provider's instance received and annotation received events: each announces one stored object."""
    return [*read_provider_events(bootstrap, registry, INSTANCE_RECEIVED.with_name(args.instance_topic), args.provider),
            *read_provider_events(bootstrap, registry, ANNOTATION_RECEIVED.with_name(args.annotation_topic),
                                  args.provider)]


def _repair(args: argparse.Namespace, settings: Settings, store: ObjectStore, instances: list) -> Repaired:
    publisher = EventPublisher(kafka_bootstrap(settings), registry_url(settings),
                               [INSTANCE_RECEIVED.with_name(args.instance_topic),
                                ANNOTATION_RECEIVED.with_name(args.annotation_topic)], client_id="radlake-ingest-repair",
                               )
    try:
        return repair(Outbox(edge_dir(settings, args.provider) / "outbox"),
                      lambda uri: store.get(uri) if store.exists(uri) else None, publisher.publish,
                      on_topic={e.event_id for e in instances}, older_than_s=args.repair_after)
    finally:
        publisher.close()


main = command("radlake ingest", _parser, _report, exit_codes={ReportUnavailable: 2})
