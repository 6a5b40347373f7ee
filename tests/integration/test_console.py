"""The admin console against the real stack, in Debian's headless Chromium: an anonymous browser is sent to
Keycloak; a person without ``platform-admin`` gets 403; an administrator logs in on Keycloak's own pages, sees
the overview with the stack's components, and discards a quarantined original of a provider (sealed with the
edge's own Vault token, as an edge keeps it), which the audit trail then records in the administrator's name.

With ``RADLAKE_SCREENSHOTS=1`` the test writes the screenshots of ``docs/operations.md``
(``docs/images/console-*.png``); otherwise it leaves the docs alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import ssl
import uuid
from pathlib import Path

import httpx
import hvac
import pytest
from keycloak_browser import browser_trusting, log_in

from admin_console import dead_letters
from apps import user as user_cli
from lake_schemas.topics import DEAD_LETTER, FEATURES_COMPUTED, dead_letter_headers
from nifi.edge.tokens import delete_token, edge_vault_token
from nifi.providers import edge_dir, quarantine_keys
from platform_layer import audit, kafka
from platform_layer.errors import TopicError
from platform_layer.realm import CONSOLE_CLIENT, console_callback_url, issuer
from platform_layer.tls import ca_file, vault_ca
from platform_layer.transit import VaultTransitDataKeys, at_rest_key_name
from radlake.deid.errors import QuarantineReason
from radlake.deid.quarantine import QuarantineRecord, append_records, keep_original, quarantine_dir
from radlake.deid.sealing import Sealer

pytestmark = pytest.mark.integration

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
NEW_PASSWORD = "a-long-Passphrase-2026"
TIMEOUT_MS = 60_000  # a loaded machine: Keycloak's pages and the overview's reads take seconds


def _quiet(main, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _person(roles: list[str]) -> tuple[str, str]:
    name = f"console-{uuid.uuid4().hex[:8]}"
    password = _quiet(user_cli.main, ["add", name, "--email", f"{name}@example.org"]).strip()
    for role in roles:
        _quiet(user_cli.main, ["grant", name, role])
    return name, password


def _chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    return found


def _screenshot(page, name: str) -> None:
    if os.environ.get("RADLAKE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / f"console-{name}.png"))


@pytest.fixture
def quarantined(settings, vault):
    """One provider's quarantine holding one refused input (not DICOM), its original sealed by the edge's token."""
    provider = f"console-q{uuid.uuid4().hex[:6]}"
    folder = edge_dir(settings, provider)
    quarantine_keys(settings, provider).ensure_key()
    edge = hvac.Client(url=vault.url, token=edge_vault_token(vault, provider, "console-test"),
                       verify=vault_ca(settings))
    sealer = Sealer(VaultTransitDataKeys(edge, at_rest_key_name(provider), mount=settings.vault_transit_mount))
    data = b"not dicom at all " + uuid.uuid4().bytes
    digest = hashlib.sha256(data).hexdigest()
    append_records(folder, [QuarantineRecord("upload-from-MRN-C-1.bin", QuarantineReason.NOT_DICOM, "not DICOM",
                                             None, digest, keep_original(folder, data, digest, sealer), provider)],
                   sealer)
    yield provider, digest
    delete_token(vault, provider)
    shutil.rmtree(folder, ignore_errors=True)


def test_an_anonymous_request_is_sent_to_keycloak(settings, console):
    answer = httpx.get(f"{console}/quarantine", verify=ssl.create_default_context(cafile=str(ca_file(settings))))
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(f"{issuer(settings)}/protocol/openid-connect/auth?")
    assert "code_challenge_method=S256" in answer.headers["location"]


def test_keycloak_holds_the_console_client_to_pkce_and_its_own_callback(settings, console):
    context = ssl.create_default_context(cafile=str(ca_file(settings)))
    start = f"{issuer(settings)}/protocol/openid-connect/auth"
    common = {"client_id": CONSOLE_CLIENT, "response_type": "code", "scope": "openid", "state": "s"}
    without_pkce = httpx.get(start, params={**common, "redirect_uri": console_callback_url(settings)},
                             verify=context)
    assert without_pkce.status_code == 302 and "code_challenge" in without_pkce.headers["location"]
    assert "error=invalid_request" in without_pkce.headers["location"]
    elsewhere = httpx.get(start, params={**common, "redirect_uri": "https://evil.example/cb",
                                         "code_challenge": "x" * 43, "code_challenge_method": "S256"}, verify=context)
    assert elsewhere.status_code == 400 and "evil.example" not in elsewhere.headers.get("location", "")


def test_a_person_without_platform_admin_gets_403(settings, console):
    name, password = _person([])
    with browser_trusting(ca_file(settings)) as browser:
        page = log_in(browser, f"{console}/", name, password, new_password=NEW_PASSWORD)
        assert page.status_code == 403
        assert "platform-admin" in page.text
        assert browser.get(f"{console}/", follow_redirects=False).status_code == 302  # no session was opened


def test_a_dead_letter_is_listed_without_its_payload_and_replayed_unchanged_to_its_source(settings, kafka_bootstrap,
                                                                                         created_topic):
    try:
        kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(DEAD_LETTER, FEATURES_COMPUTED.partitions)])
    except TopicError:
        pass  # made by another part with its own partition count: any will do
    value = b'{"event_type": "instance.received", "sop_instance_uid": 12}'  # fails its schema: why it is here
    delivered = []
    producer = kafka.producer(kafka_bootstrap, client_id="test-console-dlq")
    producer.produce(DEAD_LETTER, value, b"key-1", partition=0,
                     headers=dead_letter_headers("SCHEMA_VIOLATION", "12 is not a string", created_topic, 2, 41,
                                                 "streams"),
                     on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    producer.flush(30)
    [(error, offset)] = delivered
    assert error is None

    [letter] = [x for x in dead_letters.recent(settings, DEAD_LETTER) if x.partition == 0 and x.offset == offset]
    assert (letter.event_type, letter.reason, letter.stage, letter.source_topic, letter.source_offset) == (
        "instance.received", "SCHEMA_VIOLATION", "streams", created_topic, "41")
    assert not hasattr(letter, "value")  # the listing keeps no payload

    dead_letters.replay(settings, DEAD_LETTER, 0, offset, actor="user:console-test")
    consumer = kafka.consumer(kafka_bootstrap, group_id=f"test-console-{uuid.uuid4().hex[:6]}",
                              extra={"auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([created_topic])
        found = []
        for _ in range(30):
            found += [m for m in consumer.consume(10, timeout=1.0) if m.error() is None]
            if found:
                break
    finally:
        consumer.close()
    assert [(m.key(), m.value()) for m in found] == [(b"key-1", value)]
    [row] = [r for r in audit.read(settings) if r.target == f"{DEAD_LETTER}[0]@{offset}"]
    assert (row.action, row.actor, json.loads(row.details)["to"]) == ("dead_letter.replay", "user:console-test", created_topic)


def test_an_admin_logs_in_sees_the_overview_and_discards_a_quarantined_original(settings, console, quarantined):
    sync_api = pytest.importorskip("playwright.sync_api")
    provider, digest = quarantined
    name, password = _person(["platform-admin"])
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=_chromium(), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            # the platform CA is not in Chromium's store; the test trusts it by ignoring certificate errors
            page = browser.new_page(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{console}/")
            assert page.url.startswith(issuer(settings))  # Keycloak's login page
            page.fill("#username", name)
            page.fill("#password", password)
            page.click("#kc-login")
            page.wait_for_selector("#password-new")  # a one-time password: Keycloak asks for a new one
            page.fill("#password-new", NEW_PASSWORD)
            page.fill("#password-confirm", NEW_PASSWORD)
            page.locator("input[type=submit], button[type=submit]").first.click()
            page.wait_for_selector("h1:has-text('Overview')")
            text = page.inner_text("main")
            assert name in page.inner_text("header")
            for component in ("vault", "keycloak", "kafka", "console"):
                assert component in text
            for title in ("Components", "Providers", "Consumer groups", "Lake tables", "Open alerts", "Supervisor"):
                assert title in text
            _screenshot(page, "overview")

            page.goto(f"{console}/plots")
            page.wait_for_selector("h1:has-text('The last hour')")
            _screenshot(page, "plots")

            page.goto(f"{console}/quarantine/{provider}")
            row = page.locator("tr", has_text=digest)
            assert "NOT_DICOM" in row.inner_text()
            assert "MRN-C-1" not in page.content()  # the sealed input name stays sealed
            _screenshot(page, "triage")
            row.locator("button", has_text="Discard").click()
            page.wait_for_selector("[role=status]")
            assert "Discarded" in page.inner_text("[role=status]")
            assert page.locator("tr", has_text=digest).count() == 0

            page.goto(f"{console}/dead-letters")
            page.wait_for_selector("h1:has-text('Dead letters')")
            _screenshot(page, "dead-letters")
        finally:
            browser.close()
    assert not (quarantine_dir(edge_dir(settings, provider)) / "files" / f"{digest}.bin").exists()
    rows = [r for r in audit.read(settings) if r.target == f"provider {provider} original {digest}"]
    assert [(r.action, r.actor, r.outcome) for r in rows] == [("quarantine.discard", f"user:{name}", "allowed")]
    listed = [r for r in audit.read(settings) if r.target == f"provider {provider} quarantine"]
    assert listed and all(r.actor == f"user:{name}" for r in listed)
