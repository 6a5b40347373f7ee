"""The supervisor's renewal pass: a component whose certificate is due gets a new one and serves it; one whose
certificate is not due is left alone. Against the session stack's gateway (a restart) and Kafka and Vault (not
due: untouched)."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from cryptography import x509

from infra import stack
from infra.components.gateway import SERVER_NAME
from infra.supervision import Supervisor
from platform_layer.state import write_private
from platform_layer.supervision import events_file, read
from platform_layer.tls import ca_file, issue, needs_renewal

pytestmark = pytest.mark.integration


def _served_serial(port: int, settings) -> int:
    context = ssl.create_default_context(cafile=str(ca_file(settings)))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_a_due_certificate_is_renewed_and_served_and_others_are_left_alone(settings, vault, gateway, kafka_bootstrap):
    component = stack.component("gateway", settings)
    served_before = _served_serial(settings.gateway_port, settings)
    kafka_pid, vault_pid = stack.component("kafka", settings).pid(), stack.component("vault", settings).pid()

    # The file on disk is now a certificate at the end of its life (Vault's PKI back-dates a leaf by 30 s, so a
    # 5-second one is past two thirds of its life at once): what a stack left running for 20 days would hold.
    short = issue(vault, SERVER_NAME, ttl="5s")
    certificate = component.tls_dir / "gateway.crt"
    write_private(certificate, f"{short.certificate.strip()}\n{short.ca_chain}")
    write_private(component.tls_dir / "gateway.key", short.private_key)
    assert needs_renewal(certificate)
    since = time.time()

    Supervisor(settings, lambda name: stack.component(name, settings), stack.COMPONENTS).renew(
        names=["vault", "kafka", "gateway"])

    renewed = x509.load_pem_x509_certificate(certificate.read_bytes())
    assert not needs_renewal(certificate)
    assert (renewed.not_valid_after_utc - renewed.not_valid_before_utc).days >= 29
    assert component.healthy()
    served = _served_serial(settings.gateway_port, settings)
    assert served == renewed.serial_number != served_before
    events = [(e.component, e.event) for e in read(events_file(settings.state_dir))
              if e.time >= since and e.event in ("renewed", "renew-failed")]  # the session's supervisor may log too
    assert events == [("gateway", "renewed")]
    # not due: neither restarted nor reloaded
    assert (stack.component("kafka", settings).pid(), stack.component("vault", settings).pid()) == (kafka_pid,
                                                                                                   vault_pid)
