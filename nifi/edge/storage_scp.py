"""A provider's DICOM Storage SCP (PS3.4 Annex B, PS3.7 C-STORE/C-ECHO, PS3.8 associations): a PACS pushes to it.

The SCP is a forwarder, not a second engine: every instance it receives is sent, as it arrived (no decoding),
to the provider's own HTTPS edge as a one-part STOW-RS request, and the C-STORE is answered only from the edge's
answer. So an instance sent over DIMSE goes through the same de-identification, object store, quarantine and
events as an upload, and Success (0x0000) means what a 200 means there: stored and announced. One process per
provider (a stalled provider stalls only its own SCP), one HTTP client per association (keep-alive).

Pure parts, tested without a network: :func:`association_refusal` (calling AE title and address allow-list) and
:func:`store_status` (edge answer → DIMSE status). The process (:func:`serve`) is started by ``radlake provider
dimse`` and ``radlake stack up``; its health check is a C-ECHO (:func:`echo`) from :data:`PROBE_AE_TITLE`, which is
accepted only from this host and may store nothing. Nothing here logs what a dataset holds: UIDs and names are PHI.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import signal
import ssl
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from nifi.edge.errors import IngestError
from nifi.edge.handler import RADLAKE_REPORT
from nifi.edge.stow_rs import build_multipart_related

log = logging.getLogger(__name__)

# The calling AE title of radlake's own health check (a C-ECHO); accepted only from this host, never stores.
PROBE_AE_TITLE = "RADLAKE_PROBE"

# PS3.7 C-STORE statuses (Annex GG and B.2.3) the SCP answers with.
SUCCESS = 0x0000
NOT_AUTHORIZED = 0x0124  # a probe association tried to store
OUT_OF_RESOURCES = 0xA700  # the edge is unavailable: the sender should retry later
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000  # the instance cannot be read as DICOM
QUARANTINED_BY_POLICY = 0xC001  # radlake's engine refused it (kept in the provider's quarantine)
EDGE_REFUSED_REQUEST = 0xC002  # the edge refused the forwarded request itself (an SCP or edge fault)

# Quarantine reasons (radlake.deid.errors.QuarantineReason) with their own status; any other reason is
# QUARANTINED_BY_POLICY. The Error Comment always names the reason code, which carries no PHI.
_REASON_STATUS = {
    "MISSING_REQUIRED_ATTRIBUTE": DATASET_DOES_NOT_MATCH_SOP_CLASS,
    "NO_PIXEL_DATA": DATASET_DOES_NOT_MATCH_SOP_CLASS,
    "NOT_DICOM": CANNOT_UNDERSTAND,
    "EMPTY_FILE": CANNOT_UNDERSTAND,
    "MISSING_FILE_META": CANNOT_UNDERSTAND,
    "TRUNCATED_FILE": CANNOT_UNDERSTAND,
    "INVALID_DATASET": CANNOT_UNDERSTAND,
    "UNSUPPORTED_TRANSFER_SYNTAX": CANNOT_UNDERSTAND,
}

# A-ASSOCIATE-RJ (result, source, diagnostic), PS3.8 Table 9-21.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # rejected-permanent, service user, calling AE title not recognised
REJECT_NO_REASON = (0x01, 0x01, 0x01)  # rejected-permanent, service user, no reason given (the address)

# The transfer syntaxes the engine can read (radlake.dicom_io.check_transfer_syntax: one pydicom knows).
TRANSFER_SYNTAXES = tuple(ts for ts in ALL_TRANSFER_SYNTAXES if UID(ts).is_transfer_syntax)
ERROR_COMMENT_MAX = 64  # Error Comment (0000,0902) is LO


class ScpError(IngestError):
    """The Storage SCP cannot start (bad configuration, port taken, certificate unreadable)."""


@dataclass(frozen=True)
class ScpLimits:
    """Association and PDU limits; the defaults are what ``docs/ingestion.md`` tells PACS administrators."""

    max_associations: int = 8  # concurrent associations; more are rejected (transient, local limit exceeded)
    max_pdu: int = 65536  # the largest P-DATA-TF PDU this SCP receives (bytes)
    acse_timeout_s: float = 30.0  # for the A-ASSOCIATE-RQ and A-RELEASE exchanges
    dimse_timeout_s: float = 60.0  # for the next DIMSE message of an association
    network_timeout_s: float = 60.0  # an idle association is aborted after this
    edge_timeout_s: float = 120.0  # for the edge's answer to one forwarded instance


@dataclass(frozen=True)
class ScpConfig:
    """One provider's SCP, as written by ``radlake provider dimse`` (JSON, 0600 under the state dir)."""

    provider: str
    ae_title: str
    bind_address: str
    port: int
    allow_ae_titles: tuple[str, ...]
    allow_addresses: tuple[str, ...] = ()  # IP addresses or networks; empty: any address
    tls: bool = False
    edge_url: str = ""
    ca_file: str = ""  # verifies the edge's certificate
    token_file: str = ""  # the provider's endpoint token (0600); read again for each association
    certificate_file: str = ""  # with tls: leaf + chain (PEM), from the platform CA
    key_file: str = ""
    limits: ScpLimits = field(default_factory=ScpLimits)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ScpConfig:
        values = json.loads(text)
        values["allow_ae_titles"] = tuple(values.get("allow_ae_titles") or ())
        values["allow_addresses"] = tuple(values.get("allow_addresses") or ())
        values["limits"] = ScpLimits(**(values.get("limits") or {}))
        return cls(**values)


@dataclass(frozen=True)
class DimseAnswer:
    status: int
    comment: str | None = None  # Error Comment: radlake's own words and reason codes only, never what was sent


# ------------------------------------------------------------------------------------------ pure parts

def check_ae_title(value: str) -> tuple[bool, str | None]:
    """``(ok, reason)`` for an AE title (PS3.5 AE: 1-16 characters of the default repertoire, no backslash,
    not only spaces; leading and trailing spaces are not significant)."""
    text = value.strip()
    if not text:
        return False, "an AE title needs at least one character other than a space"
    if len(text) > 16:
        return False, f"an AE title has at most 16 characters, {text!r} has {len(text)}"
    if any(ch == "\\" or not (" " <= ch <= "~") for ch in text):
        return False, f"{text!r}: an AE title holds printable ASCII characters only, no backslash"
    return True, None


def check_address(value: str) -> tuple[bool, str | None]:
    """``(ok, reason)`` for an allow-list entry: an IP address or network (``10.1.2.0/24``)."""
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False, f"{value!r} is not an IP address or network"
    return True, None


def _local(address: str, bind_address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback or address == bind_address


def association_refusal(config: ScpConfig, calling_ae: str, address: str) -> tuple[int, int, int] | None:
    """Why an A-ASSOCIATE-RQ from ``calling_ae`` at ``address`` is rejected (the A-ASSOCIATE-RJ result, source
    and diagnostic), or None to accept it. AE titles compare exactly (they are case-sensitive) after trimming
    spaces; the probe's title is accepted from this host only."""
    calling = calling_ae.strip()
    if calling == PROBE_AE_TITLE:
        return None if _local(address, config.bind_address) else REJECT_CALLING_AE
    if calling not in {title.strip() for title in config.allow_ae_titles}:
        return REJECT_CALLING_AE
    if config.allow_addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return REJECT_NO_REASON
        if not any(ip in ipaddress.ip_network(net, strict=False) for net in config.allow_addresses):
            return REJECT_NO_REASON
    return None


def _comment(text: str) -> str:
    return text[:ERROR_COMMENT_MAX]


def store_status(http_status: int | None, report: dict | None) -> DimseAnswer:
    """The C-STORE answer for the edge's answer to one forwarded instance: ``http_status`` (None when the edge
    could not be reached) and its radlake report (``Accept: application/vnd.radlake.ingest+json``).

    Stored or an identical duplicate → Success; quarantined → a failure named after the reason; the edge
    unavailable, overloaded or refusing the SCP's own credentials → Out of Resources (the sender retries later,
    and the retry succeeds once the platform is back: the edge is idempotent)."""
    if http_status is None:
        return DimseAnswer(OUT_OF_RESOURCES, "radlake edge unreachable; retry later")
    if http_status in (401, 403):
        return DimseAnswer(OUT_OF_RESOURCES, "radlake edge refused the SCP's credentials; retry later")
    if http_status == 429 or http_status >= 500:
        return DimseAnswer(OUT_OF_RESOURCES, f"radlake edge unavailable (HTTP {http_status}); retry later")
    if http_status not in (200, 202, 409) or not isinstance(report, dict):
        return DimseAnswer(EDGE_REFUSED_REQUEST, _comment(f"radlake edge refused the request (HTTP {http_status})"))
    outcomes = report.get("outcomes") or []
    if len(outcomes) != 1 or not isinstance(outcomes[0], dict):
        return DimseAnswer(EDGE_REFUSED_REQUEST, "radlake edge answered without one outcome")
    outcome = outcomes[0]
    status = outcome.get("status")
    if status in ("accepted", "duplicate"):
        return DimseAnswer(SUCCESS)
    reason = str(outcome.get("reason") or "DEID_FAILED")
    if not reason.replace("_", "").isalnum():  # a reason code, never free text
        reason = "DEID_FAILED"
    if status == "quarantined":
        return DimseAnswer(_REASON_STATUS.get(reason, QUARANTINED_BY_POLICY), _comment(f"radlake quarantined: {reason}"))
    return DimseAnswer(QUARANTINED_BY_POLICY, _comment(f"radlake did not store it: {reason}"))


# ------------------------------------------------------------------------------------------ the process

def server_tls(certificate_file: str, key_file: str) -> ssl.SSLContext:
    """The SCP's side of the DICOM TLS profile (PS3.15 B.9, BCP 195): TLS 1.2 or later, the platform CA's
    certificate; no client certificate asked for (senders are authorised by AE title and address)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate_file, key_file)
    except (OSError, ssl.SSLError) as err:
        raise ScpError(f"the SCP's certificate {certificate_file}: {err}") from err
    return context


class _Forwarder:
    """The association-scoped state: one keep-alive HTTP client per association, closed when it ends."""

    def __init__(self, config: ScpConfig) -> None:
        self.config = config
        self._clients: dict[int, httpx.Client] = {}
        self._lock = threading.Lock()
        self._verify = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else True
        self.counts: dict[int, int] = {}

    def _token(self) -> str:
        return Path(self.config.token_file).read_text().strip()

    def client(self, assoc_id: int) -> httpx.Client:
        with self._lock:
            client = self._clients.get(assoc_id)
            if client is None:
                timeout = httpx.Timeout(self.config.limits.edge_timeout_s, connect=10.0)
                client = httpx.Client(base_url=self.config.edge_url, timeout=timeout, verify=self._verify,
                                      headers={"Authorization": f"Bearer {self._token()}", "Accept": RADLAKE_REPORT})
                self._clients[assoc_id] = client
            return client

    def count(self, status: int) -> None:
        with self._lock:  # associations run in threads of their own
            self.counts[status] = self.counts.get(status, 0) + 1

    def close(self, assoc_id: int) -> None:
        with self._lock:
            client = self._clients.pop(assoc_id, None)
        if client is not None:
            client.close()

    def forward(self, assoc_id: int, part10: bytes) -> DimseAnswer:
        """One instance to the edge; a transport error or 503 is tried again twice (the edge is idempotent:
        the same bytes give the same event ids), then answered as Out of Resources."""
        body, content_type = build_multipart_related([part10], uuid.uuid4().hex)
        answer = DimseAnswer(OUT_OF_RESOURCES)
        for attempt in range(3):
            if attempt:
                time.sleep(0.5 * attempt)
            try:
                reply = self.client(assoc_id).post("/dicomweb/studies", content=body,
                                                   headers={"Content-Type": content_type})
            except (httpx.HTTPError, OSError) as err:
                log.warning("edge %s: %s", self.config.edge_url, type(err).__name__)
                answer = store_status(None, None)
                continue
            try:
                report = reply.json()
            except ValueError:
                report = None
            answer = store_status(reply.status_code, report)
            if answer.status != OUT_OF_RESOURCES or reply.status_code in (401, 403):
                return answer
        return answer


def _status_dataset(answer: DimseAnswer) -> Dataset:
    ds = Dataset()
    ds.Status = answer.status
    if answer.comment:
        ds.ErrorComment = answer.comment
    return ds


def build_ae(config: ScpConfig, forwarder: _Forwarder) -> tuple[AE, list]:
    """The pynetdicom application entity with the configured limits and contexts, and its event handlers."""
    ok, reason = check_ae_title(config.ae_title)
    if not ok:
        raise ScpError(f"the SCP's AE title: {reason}")
    ae = AE(ae_title=config.ae_title.strip())
    ae.maximum_associations = config.limits.max_associations
    ae.maximum_pdu_size = config.limits.max_pdu
    ae.acse_timeout = config.limits.acse_timeout_s
    ae.dimse_timeout = config.limits.dimse_timeout_s
    ae.network_timeout = config.limits.network_timeout_s
    ae.require_called_aet = True  # a PACS configured with another AE title is told so at once
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, list(TRANSFER_SYNTAXES))
    ae.add_supported_context(Verification)

    def on_requested(event) -> None:
        calling = event.assoc.requestor.primitive.calling_ae_title
        address = event.assoc.requestor.address
        refusal = association_refusal(config, calling, address)
        if refusal is not None:
            log.info("association from %s (%s) rejected %s", calling.strip(), address, refusal)
            event.assoc.acse.send_reject(*refusal)
            # as pynetdicom's own rejections do: the DUL sends the A-ASSOCIATE-RJ before the socket is closed
            event.assoc.kill()

    def on_store(event) -> Dataset:
        assoc = event.assoc
        if assoc.requestor.ae_title.strip() == PROBE_AE_TITLE:
            return _status_dataset(DimseAnswer(NOT_AUTHORIZED, "the health check stores nothing"))
        answer = forwarder.forward(id(assoc), event.encoded_dataset())
        forwarder.count(answer.status)
        if answer.status != SUCCESS:
            log.info("C-STORE from %s answered 0x%04X (%s)", assoc.requestor.ae_title.strip(), answer.status,
                     answer.comment)
        return _status_dataset(answer)

    def on_ended(event) -> None:
        forwarder.close(id(event.assoc))

    handlers = [(evt.EVT_REQUESTED, on_requested), (evt.EVT_C_STORE, on_store),
                (evt.EVT_RELEASED, on_ended), (evt.EVT_ABORTED, on_ended), (evt.EVT_CONN_CLOSE, on_ended)]
    return ae, handlers


def serve(config: ScpConfig, stop: threading.Event | None = None) -> None:
    """Listen until SIGTERM/SIGINT (or ``stop``); in-flight C-STOREs are answered before the sockets close."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its DEBUG level dumps datasets (PHI)
    forwarder = _Forwarder(config)
    ae, handlers = build_ae(config, forwarder)
    context = server_tls(config.certificate_file, config.key_file) if config.tls else None
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = ae.start_server((config.bind_address, config.port), block=False, evt_handlers=handlers,
                                 ssl_context=context)
    except OSError as err:
        raise ScpError(f"cannot listen on {config.bind_address}:{config.port}: {err}") from err
    log.info("Storage SCP of %s: AE title %s on %s:%s (%s), %d calling AE titles allowed", config.provider,
             config.ae_title, config.bind_address, config.port, "TLS" if config.tls else "plain DIMSE",
             len(config.allow_ae_titles))
    mtime = Path(config.certificate_file).stat().st_mtime if context else 0.0
    while not stop.wait(30.0):
        if context is not None:  # a certificate renewed by `radlake stack up` serves new associations from now on
            current = Path(config.certificate_file).stat().st_mtime
            if current != mtime:
                context.load_cert_chain(config.certificate_file, config.key_file)
                mtime = current
                log.info("reloaded the SCP's certificate")
    server.shutdown()
    log.info("Storage SCP of %s stopped; C-STORE answers by status: %s", config.provider,
             {f"0x{k:04X}": v for k, v in sorted(forwarder.counts.items())})


# ------------------------------------------------------------------------------------------ health check

def echo(host: str, port: int, called_ae: str, *, calling_ae: str = PROBE_AE_TITLE,
         tls: ssl.SSLContext | None = None, timeout_s: float = 5.0) -> int | None:
    """C-ECHO the SCP; the Verification status (0x0000 is healthy), or None when no association was made."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=called_ae, tls_args=(tls, host) if tls else None)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def client_tls(ca_file: str) -> ssl.SSLContext:
    """What a sender on this host verifies the SCP's certificate with (the platform CA)."""
    return ssl.create_default_context(cafile=ca_file)

