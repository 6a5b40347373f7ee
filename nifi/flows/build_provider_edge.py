"""Writes ``nifi/flows/provider_edge.json``, the versioned definition of a provider's edge flow.

The JSON is the artifact that is deployed and reviewed; this script is how it is kept consistent (ids are
uuid5 of component names, so re-running it gives the same file). ``python -m nifi.flows.build_provider_edge``.

    HandleHttpRequest ──requests──► PutFile #{edge_dir}/spool/${uuid} ──spooled (success, failure)──►
      (HTTPS on #{bind_address}:#{http_port}; /dicomweb/studies, /archives, /manifests)
    IngestDicom (HTTP) ──answers (success, failure)──► HandleHttpResponse ──failure──► LogAttribute "undelivered"
    ListFile #{drop_dir} ──files──► IngestDicom (drop folder) ──results──► LogAttribute "drop-folder results"
                                        ▲      │ failure (Vault/store/Kafka down): retried, then looped back
                                        └──────┘

The edge speaks HTTPS only: HandleHttpRequest's SSL context service (StandardRestrictedSSLContextService,
``nifi-ssl-context-service-nar``) holds the edges' certificate from the platform PKI as a PKCS#12 keystore
(``#{edge_keystore}``, its password the sensitive parameter ``#{edge_keystore_password}``); providers verify it
against the platform CA and authenticate with their bearer token (no client certificate).

The request body is spooled to a file and IngestDicom reads it from there (and removes it): the Python
bridge would otherwise copy every byte of the body over its socket, which cost 5x the de-identification.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

NAMESPACE = uuid.UUID("3b1f6a8e-5d2c-4e7f-9a10-2c3d4e5f6a7b")
GROUP = "provider_edge"
STANDARD = {"group": "org.apache.nifi", "artifact": "nifi-standard-nar", "version": "2.3.0"}
CONTEXT_MAP_NAR = {"group": "org.apache.nifi", "artifact": "nifi-http-context-map-nar", "version": "2.3.0"}
SERVICES_API = {"group": "org.apache.nifi", "artifact": "nifi-standard-services-api-nar", "version": "2.3.0"}
SSL_NAR = {"group": "org.apache.nifi", "artifact": "nifi-ssl-context-service-nar", "version": "2.3.0"}
DYNAMIC = {"Content-Type"}  # HandleHttpResponse: dynamic properties become response headers
PYTHON = {"group": "org.apache.nifi", "artifact": "python-extensions", "version": "0.1.0"}

# Raised whenever a change to the flow needs edges deployed before it to be deployed again (a processor
# property added, say): `nifi.providers.follow_stack` redeploys every edge of another revision.
FLOW_REVISION = "8"

PARAMETERS = [
    ("flow_revision", "Revision of the flow definition this edge was deployed from", False, FLOW_REVISION),
    ("provider", "Provider id (lower case, [a-z0-9_-])", False, "provider"),
    ("deid_profile", "The project's de-identification profile as JSON ({}: radlake's default profile)", False, "{}"),
    ("project", "Project: its Vault Transit key pseudonymises", False, "project"),
    ("bind_address", "The address the provider's HTTPS endpoint listens on (RADLAKE_BIND_ADDRESS)", False,
     "127.0.0.1"),
    ("http_port", "Port of the provider's HTTPS endpoint", False, "24500"),
    ("edge_keystore", "PKCS#12 keystore: the edges' certificate (platform PKI) and its key", False,
     "/tmp/radlake-edges.p12"),
    ("edge_keystore_password", "Password of the edges' keystore", True, None),
    ("kafka_bootstrap", "Kafka bootstrap servers", False, "127.0.0.1:19092"),
    ("schema_registry_url", "Confluent-API schema registry URL", False, "https://127.0.0.1:18081/apis/ccompat/v7"),
    ("vault_addr", "Vault/OpenBao address", False, "https://127.0.0.1:18200"),
    ("vault_ca_file", "CA file that verifies Vault's certificate (the platform CA)", False, "/tmp/radlake-ca.pem"),
    ("vault_token", "The edge's own Vault token (policy radlake-edge-<provider>)", True, None),
    ("object_store_uri", "Object store for de-identified instances (path or fsspec URL)", False, "/tmp/radlake-objects"),
    ("edge_dir", "Provider-side folder: quarantine originals and records, work files", False, "/tmp/radlake-edge"),
    ("drop_dir", "Watched drop folder (files are moved into the flow)", False, "/tmp/radlake-drop"),
    ("instance_topic", "Topic of instance received events", False, "radlake.instance.received.v1"),
    ("quarantine_topic", "Topic of quarantined events", False, "radlake.quarantined.v1"),
    ("manifest_topic", "Topic of study manifest events", False, "radlake.study.manifest.v1"),
    ("annotation_topic", "Topic of annotation received events", False, "radlake.annotation.received.v1"),
    ("stow_max_part_bytes", "A STOW-RS part over this is quarantined as PART_TOO_LARGE", False, str(2 << 30)),
    ("stow_max_request_bytes", "A STOW-RS request over this is refused (413 REQUEST_TOO_LARGE)", False, str(8 << 30)),
]


# Drop-folder files the edge picks up: not hidden, not a temporary name of a writer still at work.

DROP_FILE_FILTER = r"[^.].*(?<!\.part)(?<!\.partial)(?<!\.tmp)"

def _id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def _descriptors(properties: dict, services: tuple[str, ...] = (), sensitive: tuple[str, ...] = ()) -> dict:
    return {k: {"name": k, "displayName": k, "identifiesControllerService": k in services,
                "sensitive": k in sensitive, "dynamic": k in DYNAMIC} for k in properties}


def processor(name: str, kind: str, bundle: dict, properties: dict, *, x: float, y: float,
              auto_terminated: tuple[str, ...] = (), retried: tuple[str, ...] = (), retries: int = 0,
              concurrency: int = 1, schedule: str = "0 sec", services: tuple[str, ...] = (),
              sensitive: tuple[str, ...] = (), penalty: str = "30 sec", run_ms: int = 0, comments: str = "") -> dict:
    return {
        "identifier": _id(name), "name": name, "comments": comments, "position": {"x": x, "y": y},
        "type": kind, "bundle": bundle, "properties": properties,
        "propertyDescriptors": _descriptors(properties, services, sensitive),
        "style": {}, "schedulingPeriod": schedule, "schedulingStrategy": "TIMER_DRIVEN", "executionNode": "ALL",
        "penaltyDuration": penalty, "yieldDuration": "1 sec", "bulletinLevel": "WARN", "runDurationMillis": run_ms,
        "concurrentlySchedulableTaskCount": concurrency, "autoTerminatedRelationships": list(auto_terminated),
        "scheduledState": "ENABLED", "retryCount": retries, "retriedRelationships": list(retried),
        "backoffMechanism": "PENALIZE_FLOWFILE", "maxBackoffPeriod": "5 mins", "componentType": "PROCESSOR",
        "groupIdentifier": _id(GROUP),
    }


def connection(name: str, source: str, destination: str, relationships: list[str], *, objects: int,
               size: str, expiration: str = "0 sec") -> dict:
    def end(component: str) -> dict:
        return {"id": _id(component), "type": "PROCESSOR", "groupId": _id(GROUP), "name": component, "comments": ""}

    return {
        "identifier": _id(f"connection {name}"), "name": name, "source": end(source), "destination": end(destination),
        "labelIndex": 1, "zIndex": 0, "selectedRelationships": relationships,
        "backPressureObjectThreshold": objects, "backPressureDataSizeThreshold": size,
        "flowFileExpiration": expiration, "prioritizers": ["org.apache.nifi.prioritizer.FirstInFirstOutPrioritizer"],
        "bends": [], "loadBalanceStrategy": "DO_NOT_LOAD_BALANCE", "loadBalanceCompression": "DO_NOT_COMPRESS",
        "componentType": "CONNECTION", "groupIdentifier": _id(GROUP),
    }


def ingest_properties() -> dict:
    return {
        "Provider": "#{provider}", "Project": "#{project}", "Kafka Brokers": "#{kafka_bootstrap}",
        "Schema Registry URL": "#{schema_registry_url}", "Vault Address": "#{vault_addr}",
        "Vault CA File": "#{vault_ca_file}", "Vault Token": "#{vault_token}", "Object Store URI": "#{object_store_uri}", "Edge Directory": "#{edge_dir}",
        "Instance Topic": "#{instance_topic}", "Quarantine Topic": "#{quarantine_topic}",
        "Manifest Topic": "#{manifest_topic}", "Annotation Topic": "#{annotation_topic}", "KV Mount": "secret", "Transit Mount": "transit",
        "Deid Profile": "#{deid_profile}", "STOW Max Part Bytes": "#{stow_max_part_bytes}",
        "STOW Max Request Bytes": "#{stow_max_request_bytes}",
    }


def definition() -> dict:
    context_map, tls = "HTTP request contexts", "Edge TLS"
    receive, ingest_http, answer, undelivered = ("Receive requests", "De-identify, store, publish (HTTP)",
                                                 "Answer", "Log undelivered answers")
    spool = "Spool request body"
    watch, ingest_drop, drop_log = "Watch drop folder", "De-identify, store, publish (drop folder)", "Log drop-folder results"
    processors = [
        processor(receive, "org.apache.nifi.processors.standard.HandleHttpRequest", STANDARD, {
            "Listening Port": "#{http_port}", "Hostname": "#{bind_address}", "HTTP Context Map": _id(context_map),
            "Allowed Paths": "/(dicomweb/studies(/[0-9.]+)?|archives|manifests)",
            "Allow GET": "false", "Allow PUT": "false", "Allow DELETE": "false", "Allow HEAD": "false",
            "Allow OPTIONS": "false", "Maximum Threads": "16", "container-queue-size": "50",
            "HTTP Protocols": "HTTP_1_1", "SSL Context Service": _id(tls), "Client Authentication": "No Authentication",
        }, x=0, y=0, services=("HTTP Context Map", "SSL Context Service"),
            comments="STOW-RS, archive and manifest requests over HTTPS (providers authenticate with their bearer "
                     "token); bodies are streamed into the content repository."),
        processor(spool, "org.apache.nifi.processors.standard.PutFile", STANDARD, {
            "Directory": "#{edge_dir}/spool/${uuid}", "Conflict Resolution Strategy": "replace",
            "Create Missing Directories": "true",
        }, x=0, y=110, comments="failure (disk full): IngestDicom answers 503 and the sender retries."),
        processor(ingest_http, "IngestDicom", PYTHON, ingest_properties(), x=0, y=220, auto_terminated=("original",),
                  sensitive=("Vault Token",),
                  comments="original: the request body (no content archive or provenance keeps it); its answer goes "
                           "on as success/failure."),
        processor(answer, "org.apache.nifi.processors.standard.HandleHttpResponse", STANDARD, {
            "HTTP Status Code": "${radlake.http.status}", "HTTP Context Map": _id(context_map),
            "Attributes to add to the HTTP Response (Regex)": None, "Content-Type": "${mime.type}",
        }, x=0, y=440, auto_terminated=("success",), services=("HTTP Context Map",),
            comments="success: the answer reached the sender. failure (sender gone): logged; it retries and gets the same ids."),
        processor(undelivered, "org.apache.nifi.processors.standard.LogAttribute", STANDARD, {
            # radlake's own counts only: request URIs and file names can hold original identifiers
            "Log Level": "warn", "Log Payload": "false", "attributes-to-log-regex": "radlake\\..*",
            "Log prefix": "undelivered answer: ",
        }, x=400, y=440, auto_terminated=("success",)),
        processor(watch, "org.apache.nifi.processors.standard.ListFile", STANDARD, {
            # Writers write a hidden or .part/.partial/.tmp name, then rename (docs/ingestion.md); a file still being
            # written under its final name is held back by the minimum age.
            "Input Directory": "#{drop_dir}", "Recurse Subdirectories": "true", "Minimum File Age": "10 sec",
            "Ignore Hidden Files": "true", "File Filter": DROP_FILE_FILTER,
        }, x=800, y=0, schedule="2 sec",
            comments="Lists each new file once (state: timestamps); IngestDicom reads it, then deletes it (released, or "
                     "kept in the edge's quarantine) or moves it to <edge_dir>/refused/; a 5xx leaves it for a retry."),
        processor(ingest_drop, "IngestDicom", PYTHON, ingest_properties(), x=800, y=220, auto_terminated=("original",),
                  retried=("failure",), retries=5, sensitive=("Vault Token",), penalty="30 sec",
                  comments="failure = infrastructure down: retried 5 times with back-off, then queued on its loop."),
        processor(drop_log, "org.apache.nifi.processors.standard.LogAttribute", STANDARD, {
            "Log Level": "info", "Log Payload": "false", "attributes-to-log-regex": "radlake\\..*",
            "Log prefix": "drop-folder result: ",
        }, x=800, y=440, auto_terminated=("success",)),
    ]
    connections = [
        connection("requests", receive, spool, ["success"], objects=20, size="2 GB"),
        connection("spooled requests", spool, ingest_http, ["success", "failure"], objects=20, size="10 MB"),
        connection("answers", ingest_http, answer, ["success", "failure"], objects=50, size="100 MB"),
        connection("undelivered answers", answer, undelivered, ["failure"], objects=1000, size="100 MB"),
        connection("drop-folder files", watch, ingest_drop, ["success"], objects=100, size="1 GB"),
        connection("drop-folder results", ingest_drop, drop_log, ["success"], objects=1000, size="100 MB"),
        connection("drop-folder retries", ingest_drop, ingest_drop, ["failure"], objects=100, size="1 GB"),
    ]
    tls_properties = {"Keystore Filename": "#{edge_keystore}", "Keystore Password": "#{edge_keystore_password}",
                      "Keystore Type": "PKCS12", "SSL Protocol": "TLS"}
    services = [{
        "identifier": _id(context_map), "name": context_map, "comments": "",
        "type": "org.apache.nifi.http.StandardHttpContextMap", "bundle": CONTEXT_MAP_NAR,
        "properties": {"Maximum Outstanding Requests": "50", "Request Expiration": "10 min"},
        "propertyDescriptors": _descriptors({"Maximum Outstanding Requests": 1, "Request Expiration": 1}),
        "controllerServiceApis": [{"type": "org.apache.nifi.http.HttpContextMap", "bundle": SERVICES_API}],
        "scheduledState": "DISABLED", "bulletinLevel": "WARN", "componentType": "CONTROLLER_SERVICE",
        "groupIdentifier": _id(GROUP),
    }, {
        "identifier": _id(tls), "name": tls, "comments": "The edges' certificate (platform PKI), no client certificate",
        "type": "org.apache.nifi.ssl.StandardRestrictedSSLContextService", "bundle": SSL_NAR,
        "properties": tls_properties,
        "propertyDescriptors": _descriptors(tls_properties, sensitive=("Keystore Password",)),
        "controllerServiceApis": [{"type": f"org.apache.nifi.ssl.{api}", "bundle": SERVICES_API}
                                  for api in ("SSLContextService", "RestrictedSSLContextService", "SSLContextProvider")],
        "scheduledState": "DISABLED", "bulletinLevel": "WARN", "componentType": "CONTROLLER_SERVICE",
        "groupIdentifier": _id(GROUP),
    }]
    contents = {
        "identifier": _id(GROUP), "name": GROUP,
        "comments": "A provider's edge: STOW-RS, archives, manifests and a drop folder -> radlake de-identification "
                    "-> object store + instance received / quarantined / study manifest events (issue 5).",
        "position": {"x": 0.0, "y": 0.0}, "processGroups": [], "remoteProcessGroups": [], "processors": processors,
        "inputPorts": [], "outputPorts": [], "connections": connections, "labels": [], "funnels": [],
        "controllerServices": services, "parameterContextName": GROUP, "defaultFlowFileExpiration": "0 sec",
        "defaultBackPressureObjectThreshold": 10000, "defaultBackPressureDataSizeThreshold": "1 GB",
        "scheduledState": "ENABLED", "executionEngine": "INHERITED", "maxConcurrentTasks": 1,
        "statelessFlowTimeout": "1 min", "componentType": "PROCESS_GROUP", "flowFileConcurrency": "UNBOUNDED",
        "flowFileOutboundPolicy": "STREAM_WHEN_AVAILABLE",
    }
    parameters = [{"name": n, "description": d, "sensitive": s, "provided": False, "value": v}
                  for n, d, s, v in PARAMETERS]
    return {
        "flowContents": contents, "externalControllerServices": {},
        "parameterContexts": {GROUP: {"name": GROUP, "parameters": parameters, "inheritedParameterContexts": [],
                                      "componentType": "PARAMETER_CONTEXT"}},
        "flowEncodingVersion": "1.0", "parameterProviders": {}, "latest": False,
    }


def main() -> int:
    target = Path(__file__).with_name("provider_edge.json")
    target.write_text(json.dumps(definition(), indent=2) + "\n")
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
