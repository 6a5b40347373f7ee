"""``radlake ingest report``: reconcile what the provider was told (its upload journal), what is in the object
store and what is on the topics. :func:`reconcile` is pure; :func:`read_provider_events` reads a topic.

Findings (each a list of plain dicts, no PHI — pseudonymous UIDs and hashes only):

- ``missing_objects``: acknowledged as stored, but the object is not in the store;
- ``missing_events``: acknowledged as stored, but no ``instance received`` event with that id;
- ``missing_quarantine_events``: acknowledged as quarantined, but no ``quarantined`` event with that id;
- ``duplicate_events``: one event id on the topic more than once (redeliveries: harmless, consumers drop
  them by id) — reported, not an error;
- ``conflicting_events``: one pseudonymous SOP Instance UID with different content (sha256) on the topic;
- ``unexpected_events``: events of this provider the journal does not know (other senders: STOW-RS
  peers, the drop folder, another journal) — reported, not an error;
- ``incomplete_studies``: a manifest's expected count above the instances released for that study.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lake_schemas.events import InstanceReceived, Quarantined, StudyManifest
from lake_schemas.topics import Topic
from platform_layer import kafka
from platform_layer.serde import EventSerde, registry_client


@dataclass(frozen=True)
class Reconciliation:
    acknowledged_instances: int
    acknowledged_quarantined: int
    events: int
    quarantine_events: int
    missing_objects: list[dict] = field(default_factory=list)
    missing_events: list[dict] = field(default_factory=list)
    missing_quarantine_events: list[dict] = field(default_factory=list)
    duplicate_events: list[dict] = field(default_factory=list)
    conflicting_events: list[dict] = field(default_factory=list)
    unexpected_events: list[dict] = field(default_factory=list)
    incomplete_studies: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_objects or self.missing_events or self.missing_quarantine_events
                    or self.conflicting_events)

    def to_json(self) -> dict:
        return {**self.__dict__, "ok": self.ok}


def reconcile(outcomes: Sequence[dict], manifests: Sequence[dict], instance_events: Sequence[InstanceReceived],
              quarantine_events: Sequence[Quarantined], object_exists: Callable[[str], bool],
              manifest_events: Sequence[StudyManifest] = ()) -> Reconciliation:
    """``outcomes``: the journal's acknowledged outcome lines; events: the provider's, as read from the topics."""
    accepted = {o["event_id"]: o for o in outcomes if o.get("status") == "accepted" and o.get("event_id")}
    quarantined = {o["event_id"]: o for o in outcomes if o.get("status") == "quarantined" and o.get("event_id")}
    seen = Counter(e.event_id for e in instance_events)
    seen_quarantine = {e.event_id for e in quarantine_events}
    by_id = {e.event_id: e for e in instance_events}

    missing_objects = [{"event_id": i, "object_uri": o.get("object_uri"), "sop_instance_uid": o.get("sop_instance_uid")}
                       for i, o in accepted.items() if not o.get("object_uri") or not object_exists(o["object_uri"])]
    missing_events = [{"event_id": i, "sop_instance_uid": o.get("sop_instance_uid"), "study_uid": o.get("study_uid")}
                      for i, o in accepted.items() if i not in seen]
    missing_quarantine = [{"event_id": i, "reason": o.get("reason"), "input_sha256": o.get("input_sha256")}
                          for i, o in quarantined.items() if i not in seen_quarantine]
    duplicates = [{"event_id": i, "copies": n} for i, n in sorted(seen.items()) if n > 1]
    hashes: dict[str, set[str]] = defaultdict(set)
    for event in by_id.values():
        hashes[event.data.sop_instance_uid].add(event.data.sha256)
    conflicts = [{"sop_instance_uid": uid, "sha256": sorted(shas)} for uid, shas in sorted(hashes.items()) if len(shas) > 1]
    unexpected = [{"event_id": i, "sop_instance_uid": e.data.sop_instance_uid} for i, e in by_id.items()
                  if i not in accepted]
    released: dict[str, set[str]] = defaultdict(set)
    for event in by_id.values():
        released[event.data.study_uid].add(event.data.sop_instance_uid)
    expected = {m["study_uid"]: int(m["expected_instances"]) for m in manifests if m.get("study_uid")}
    expected.update({m.data.study_uid: m.data.expected_instances for m in manifest_events
                     if m.data.study_uid not in expected})
    quarantined_per_study = Counter(o.get("study_uid") for o in quarantined.values() if o.get("study_uid"))
    incomplete = [{"study_uid": s, "expected": n, "released": len(released.get(s, ())),
                   "quarantined": quarantined_per_study.get(s, 0)}
                  for s, n in sorted(expected.items()) if len(released.get(s, ())) < n]
    return Reconciliation(len(accepted), len(quarantined), len(by_id), len(seen_quarantine), missing_objects,
                          missing_events, missing_quarantine, duplicates, conflicts, unexpected, incomplete)


def read_provider_events(bootstrap: str, registry_url: str, topic: Topic, provider: str,
                         timeout_s: float = 60.0) -> list:
    """Every event of ``provider`` on ``topic``, from the beginning to the end offsets seen at the start."""
    serde = EventSerde(topic, registry_client(registry_url))
    return [e for e in kafka.read_to_end(bootstrap, serde, timeout_s=timeout_s) if e.provider == provider]
