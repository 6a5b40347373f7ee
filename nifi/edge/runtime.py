"""Build a running edge (:class:`nifi.edge.handler.EdgeRuntime`) from plain parameters: the adapter
between the NiFi processor's properties and radlake's engine, Vault, object store and Kafka."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import hvac
from pydantic import ValidationError

from lake_schemas.topics import ANNOTATION_RECEIVED, INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST
from nifi.edge.edge import EdgeConfig
from nifi.edge.errors import EdgeUnavailable, TokenError
from nifi.edge.handler import EdgeRuntime
from nifi.edge.housekeeping import Housekeeping
from nifi.edge.outbox import Outbox, repair
from nifi.edge.publish import EventPublisher
from nifi.edge.stow_rs import StowLimits
from nifi.edge.tokens import EdgeCredentials
from platform_layer.edge_metrics import EdgeTelemetry
from platform_layer.errors import VaultUnavailable
from platform_layer.kafka_credentials import read_kafka_identity
from platform_layer.object_store import ObjectStore
from platform_layer.principals import KAFKA_EDGE
from platform_layer.transit import VaultTransitDataKeys, VaultTransitHmac, at_rest_key_name
from radlake.deid.confidentiality_profile import (
    STANDARD_EDITION,
    TABLE_VERSION,
    Profile,
    Rules,
    compile_rules,
)
from radlake.deid.descriptor_cleaning import vocabulary_digest
from radlake.deid.errors import ProfileError
from radlake.deid.pseudonyms import PSEUDONYM_SCHEME, transit_key_name
from radlake.deid.sealing import Sealer

log = logging.getLogger(__name__)

def edge_profile(profile_json: str) -> tuple[Rules, str]:
    """The compiled rules of a project's profile (JSON; ``{}``: the default) and the version every event and
    row records: the standard's edition, the table, the pseudonym scheme, the profile's name and a digest of
    its settings and of the clinical vocabulary its descriptor cleaning keeps words from (two profiles of one name
    but other options differ in it, and so does one profile before and after a vocabulary change)."""
    try:
        profile = Profile.model_validate_json(profile_json or "{}")
    except ValidationError as err:
        raise ProfileError(f"the project's de-identification profile is not valid: {err}") from err
    digest = hashlib.sha256((profile.model_dump_json() + vocabulary_digest()).encode()).hexdigest()[:8]
    version = f"ps3.15-{STANDARD_EDITION}/{TABLE_VERSION}/{PSEUDONYM_SCHEME}/{profile.name}-{digest}"
    return compile_rules(profile), version


@dataclass(frozen=True)
class EdgeParameters:
    provider: str
    project: str
    kafka_bootstrap: str
    registry_url: str
    vault_addr: str
    vault_ca_file: str
    vault_token: str
    object_store_uri: str
    edge_dir: str
    instance_topic: str = INSTANCE_RECEIVED.name
    quarantine_topic: str = QUARANTINED.name
    manifest_topic: str = STUDY_MANIFEST.name
    annotation_topic: str = ANNOTATION_RECEIVED.name
    kv_mount: str = "secret"
    transit_mount: str = "transit"
    quarantine_retention_days: int = 30
    deid_profile: str = "{}"  # the project's profile, JSON (`radlake project profile`)
    stow_max_part_bytes: int = StowLimits.max_part_bytes
    stow_max_request_bytes: int = StowLimits.max_request_bytes


def open_runtime(p: EdgeParameters) -> EdgeRuntime:
    """Raises ``TokenError`` when the provider's token cannot be read (the processor then stays stopped)."""
    client = hvac.Client(url=p.vault_addr, token=p.vault_token, verify=p.vault_ca_file)
    credentials = EdgeCredentials(client, p.provider, p.kv_mount)
    credentials.endpoint_token()  # fails now (the processor stays stopped) rather than on the first request
    pseudonymiser = VaultTransitHmac(client, transit_key_name(p.project), mount=p.transit_mount)
    try:
        kafka_identity = read_kafka_identity(client, KAFKA_EDGE, p.kv_mount)
    except VaultUnavailable as err:
        raise TokenError(str(err)) from err
    publisher = EventPublisher(
        p.kafka_bootstrap, p.registry_url,
        [INSTANCE_RECEIVED.with_name(p.instance_topic), QUARANTINED.with_name(p.quarantine_topic),
         STUDY_MANIFEST.with_name(p.manifest_topic), ANNOTATION_RECEIVED.with_name(p.annotation_topic)],
        client_id=f"radlake-edge-{p.provider}", identity=kafka_identity,
        registry_ca_file=kafka_identity.ca_file,  # the platform CA, which issued the registry's certificate too
    )
    edge_dir = Path(p.edge_dir)
    sealer = Sealer(VaultTransitDataKeys(client, at_rest_key_name(p.provider), mount=p.transit_mount))
    outbox = Outbox(edge_dir / "outbox")
    rules, profile_version = edge_profile(p.deid_profile)
    config = EdgeConfig(p.provider, p.project, profile_version, edge_dir, sealer, outbox)
    housekeeping = Housekeeping(edge_dir, timedelta(days=p.quarantine_retention_days))
    housekeeping()  # at start: what a crash left behind goes now
    store = ObjectStore(p.object_store_uri)
    # Objects a killed edge stored without announcing: announced now (same event ids; consumers drop repeats).
    try:
        repair(outbox, lambda uri: store.get(uri) if store.exists(uri) else None, publisher.publish)
    except EdgeUnavailable as err:  # Kafka not there yet: the tickets stay for the next start or an operator
        log.warning("outbox not repaired at start: %s", err)
    return EdgeRuntime(config, rules, pseudonymiser, store, publisher,
                       credentials.endpoint_token, edge_dir / "work", housekeeping,
                       StowLimits(p.stow_max_part_bytes, p.stow_max_request_bytes), EdgeTelemetry(p.provider, edge_dir))
