"""IngestDicom: a NiFi 2 Python processor, the de-identifying heart of a provider's edge flow.

Each FlowFile is one request (HandleHttpRequest, body spooled to disk by PutFile: STOW-RS, archive,
manifest) or one drop-folder file (ListFile). The processor hands it to ``nifi.edge.handler.handle`` — radlake's own de-identification
engine, object store and registry-validated Kafka publishing — and emits the HTTP answer as content with
``radlake.http.status`` and ``mime.type``, for HandleHttpResponse. A request's 5xx (Vault, store, registry or Kafka
unavailable, or an error nobody expected) is an answer like the others; a drop-folder file's goes to ``failure``,
where the flow retries it.

How radlake is imported: NiFi gives every Python processor its own virtual environment and pip-installs
``ProcessorDetails.dependencies`` into it (pinned below to the versions radlake is tested with); radlake
itself is not installed there but imported from the checkout this file lives in (NiFi loads extensions
from ``nifi/python/extensions`` of the repository, so the checkout is three levels up), or from the folder
named by the environment variable ``RADLAKE_HOME`` of the NiFi process when the extension was copied
elsewhere. So the processor always runs the de-identification code of the checkout NiFi was started from.
"""

import os
import sys
from pathlib import Path

from nifiapi.flowfiletransform import FlowFileTransform, FlowFileTransformResult
from nifiapi.properties import (
    ExpressionLanguageScope,
    PropertyDescriptor,
    StandardValidators,
)


def _radlake_home() -> Path:
    configured = os.environ.get("RADLAKE_HOME")
    return Path(configured) if configured else Path(__file__).resolve().parents[3]


_HOME = _radlake_home()
if (_HOME / "radlake" / "__init__.py").exists() and str(_HOME) not in sys.path:
    sys.path.insert(0, str(_HOME))


def _property(name, description, *, sensitive=False, default=None, required=True):
    return PropertyDescriptor(
        name=name, description=description, required=required, sensitive=sensitive, default_value=default,
        # NiFi holds a property without any validator invalid: an optional one is always valid
        validators=[StandardValidators.NON_EMPTY_VALIDATOR if required else StandardValidators.ALWAYS_VALID],
        expression_language_scope=ExpressionLanguageScope.ENVIRONMENT,
    )


class IngestDicom(FlowFileTransform):
    class Java:
        implements = ["org.apache.nifi.python.processor.FlowFileTransform"]

    class ProcessorDetails:
        version = "0.1.0"
        description = (
            "radlake edge: authenticates the provider, de-identifies DICOM (PS3.15 Annex E, Vault Transit "
            "pseudonyms) from STOW-RS requests, archives and drop-folder files, stores instances in the "
            "content-addressed object store and publishes registry-validated instance received / quarantined / "
            "study manifest / annotation received events to Kafka before answering."
        )
        tags = ["dicom", "dicomweb", "stow-rs", "de-identification", "radlake"]
        dependencies = [
            "pydicom==3.0.2", "numpy==2.4.6", "hvac==2.4.0", "requests>=2.32,<3", "fsspec==2026.9.0",
            "pydantic==2.14.3", "pyyaml==6.0.3", "jsonschema==4.26.0",
            "confluent-kafka[schemaregistry,json]==2.16.0", "msgspec==0.23.0", "cryptography==51.0.1",
        ]

    PROVIDER = _property("Provider", "Provider id (lower case); its endpoint token is read from Vault KV.")
    PROJECT = _property("Project", "Project: selects the Vault Transit key radlake-deid-<project>.")
    KAFKA = _property("Kafka Brokers", "Kafka bootstrap servers.")
    REGISTRY = _property("Schema Registry URL", "Confluent-API schema registry (events are validated against it).")
    VAULT_ADDR = _property("Vault Address", "Vault/OpenBao address (HTTPS).")
    VAULT_CA_FILE = _property("Vault CA File", "CA file that verifies Vault's certificate (the platform CA).")
    VAULT_TOKEN = _property("Vault Token", "The edge's Vault token (reads its KV token, HMACs with its project key).",
                            sensitive=True)
    OBJECT_STORE = _property("Object Store URI", "Where de-identified instances are stored (path or fsspec URL).")
    EDGE_DIR = _property("Edge Directory", "Provider-side folder: quarantine (original bytes, records) and work files.")
    INSTANCE_TOPIC = _property("Instance Topic", "Topic of instance received events.",
                               default="radlake.instance.received.v1")
    QUARANTINE_TOPIC = _property("Quarantine Topic", "Topic of quarantined events.", default="radlake.quarantined.v1")
    MANIFEST_TOPIC = _property("Manifest Topic", "Topic of study manifest events.", default="radlake.study.manifest.v1")
    # Optional: an edge deployed before annotations were accepted has no such parameter (then the default).
    ANNOTATION_TOPIC = _property("Annotation Topic", "Topic of annotation received events (SEG, RTSTRUCT, SR, ...).",
                                 default="radlake.annotation.received.v1", required=False)
    KV_MOUNT = _property("KV Mount", "Vault KV v2 mount holding provider tokens.", default="secret")
    TRANSIT_MOUNT = _property("Transit Mount", "Vault Transit mount.", default="transit")
    DEID_PROFILE = _property("Deid Profile", "The project's de-identification profile (JSON; {}: the default).",
                             default="{}")
    QUARANTINE_RETENTION_DAYS = _property(
        "Quarantine Retention Days", "Days a quarantined original (which may hold PHI) and its record are kept.",
        default="30")
    STOW_MAX_PART_BYTES = _property(
        "STOW Max Part Bytes", "A STOW-RS part larger than this is quarantined as PART_TOO_LARGE (never held whole).",
        default=str(2 << 30), required=False)
    STOW_MAX_REQUEST_BYTES = _property(
        "STOW Max Request Bytes", "A STOW-RS request larger than this is refused: 413 REQUEST_TOO_LARGE.",
        default=str(8 << 30), required=False)

    def __init__(self, **kwargs):
        super().__init__()
        self.runtime = None
        self._pid_file = None

    def getPropertyDescriptors(self):
        return [self.PROVIDER, self.PROJECT, self.KAFKA, self.REGISTRY, self.VAULT_ADDR, self.VAULT_CA_FILE,
                self.VAULT_TOKEN,
                self.OBJECT_STORE, self.EDGE_DIR, self.INSTANCE_TOPIC, self.QUARANTINE_TOPIC, self.MANIFEST_TOPIC,
                self.ANNOTATION_TOPIC,
                self.KV_MOUNT, self.TRANSIT_MOUNT, self.QUARANTINE_RETENTION_DAYS, self.DEID_PROFILE,
                self.STOW_MAX_PART_BYTES, self.STOW_MAX_REQUEST_BYTES]

    def onScheduled(self, context):
        from nifi.edge.processes import announce_process
        from nifi.edge.runtime import EdgeParameters, open_runtime

        def value(prop):
            return context.getProperty(prop).evaluateAttributeExpressions().getValue()

        self.runtime = open_runtime(EdgeParameters(
            provider=value(self.PROVIDER), project=value(self.PROJECT), kafka_bootstrap=value(self.KAFKA),
            registry_url=value(self.REGISTRY), vault_addr=value(self.VAULT_ADDR),
            vault_ca_file=value(self.VAULT_CA_FILE), vault_token=value(self.VAULT_TOKEN),
            object_store_uri=value(self.OBJECT_STORE), edge_dir=value(self.EDGE_DIR),
            instance_topic=value(self.INSTANCE_TOPIC), quarantine_topic=value(self.QUARANTINE_TOPIC),
            manifest_topic=value(self.MANIFEST_TOPIC),
            annotation_topic=value(self.ANNOTATION_TOPIC) or "radlake.annotation.received.v1", kv_mount=value(self.KV_MOUNT),
            transit_mount=value(self.TRANSIT_MOUNT),
            quarantine_retention_days=int(value(self.QUARANTINE_RETENTION_DAYS)),
            deid_profile=value(self.DEID_PROFILE) or "{}",
            stow_max_part_bytes=int(value(self.STOW_MAX_PART_BYTES) or 2 << 30),
            stow_max_request_bytes=int(value(self.STOW_MAX_REQUEST_BYTES) or 8 << 30),
        ))
        self._pid_file = announce_process(Path(value(self.EDGE_DIR)))
        self.logger.info(f"edge of provider {value(self.PROVIDER)} ready in process {os.getpid()} "
                         f"(radlake from {_HOME})")

    def onStopped(self, context):
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
            self._pid_file = None
        if self.runtime is not None:
            self.runtime.publisher.close()
            self.runtime = None

    def transform(self, context, flowfile):
        from nifi.edge.handler import internal_error

        try:
            return self._answer(context, flowfile)
        except Exception as err:  # noqa: BLE001 - every request gets an answer: NiFi would hold it unanswered
            self.logger.error(f"request failed unexpectedly: {type(err).__name__}")
            return self._result(internal_error(err), flowfile.getAttributes())

    def _answer(self, context, flowfile):
        import shutil

        from nifi.edge.handler import dispose_dropped, handle, unavailable
        from nifi.edge.housekeeping import REFUSED_DIR

        attributes = flowfile.getAttributes()
        edge_dir = Path(context.getProperty(self.EDGE_DIR).evaluateAttributeExpressions().getValue())
        # Bodies are read from disk, never through the Python bridge (it copies every byte over a socket):
        # PutFile spooled the HTTP body to <edge_dir>/spool/<uuid>/, ListFile names drop-folder files.
        if attributes.get("http.context.identifier"):
            spool = edge_dir / "spool" / (attributes.get("uuid") or "-") / (attributes.get("filename") or "-")
            headers = {k[len("http.headers."):]: v for k, v in attributes.items() if k.startswith("http.headers.")}
            try:
                if spool.is_file():
                    response = handle(self.runtime, attributes.get("http.method") or "",
                                      attributes.get("http.request.uri") or "", headers, spool)
                else:
                    response = unavailable("the edge could not spool the request body")
            finally:
                shutil.rmtree(spool.parent, ignore_errors=True)
        else:
            dropped = Path(attributes.get("absolute.path") or "-") / (attributes.get("filename") or "-")
            if dropped.is_file():
                response = handle(self.runtime, "POST", "/drop", {}, dropped, authenticated=True)
                dispose_dropped(dropped, response, edge_dir / REFUSED_DIR)
            else:
                response = unavailable(f"drop-folder file {dropped.name} is gone")
        return self._result(response, attributes)

    def _result(self, response, attributes):
        out = {
            "radlake.http.status": str(response.status),
            "mime.type": response.media_type,
            # The bearer token must not travel further in the flow.
            "http.headers.Authorization": "",
            "http.headers.authorization": "",
        }
        out.update({f"radlake.{k}": str(v) for k, v in response.summary.items()})
        # A request's answer is final, 5xx included (the sender retries), and goes out as "success": NiFi routes a
        # "failure" result with the original FlowFile, so a 5xx would echo the request body back. A drop-folder
        # file is retried by the flow, so its 5xx is "failure" on purpose (the original is what is retried).
        retried = response.status >= 500 and not attributes.get("http.context.identifier")
        relationship = "failure" if retried else "success"
        if response.status >= 400:
            self.logger.warn(f"request answered {response.status}: {response.summary}")
        return FlowFileTransformResult(relationship, contents=response.body, attributes=out)
