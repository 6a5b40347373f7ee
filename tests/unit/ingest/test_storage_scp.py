"""The Storage SCP's pure decisions: which associations it accepts, and what C-STORE status an edge answer becomes."""

from __future__ import annotations

import pytest

from apps.provider import main as provider_cli
from nifi.edge.storage_scp import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    EDGE_REFUSED_REQUEST,
    ERROR_COMMENT_MAX,
    OUT_OF_RESOURCES,
    PROBE_AE_TITLE,
    QUARANTINED_BY_POLICY,
    REJECT_CALLING_AE,
    REJECT_NO_REASON,
    SUCCESS,
    TRANSFER_SYNTAXES,
    ScpConfig,
    ScpLimits,
    _Forwarder,
    association_refusal,
    build_ae,
    check_address,
    check_ae_title,
    store_status,
)
from radlake.annotations import ANNOTATION_SOP_CLASSES

CONFIG = ScpConfig(provider="p", ae_title="RADLAKE_P", bind_address="10.0.0.5", port=11112,
                   allow_ae_titles=("PACS1", "MODALITY "), allow_addresses=("192.168.1.0/24", "10.9.9.9"))


@pytest.mark.parametrize(("calling", "address", "expected"), [
    ("PACS1", "192.168.1.20", None),
    ("PACS1 ", "10.9.9.9", None),  # trailing spaces are padding, not part of the title
    ("MODALITY", "192.168.1.1", None),
    ("pacs1", "192.168.1.20", REJECT_CALLING_AE),  # AE titles are case-sensitive
    ("OTHER", "192.168.1.20", REJECT_CALLING_AE),
    ("PACS1", "192.168.2.20", REJECT_NO_REASON),  # allowed title from an address not on the list
    ("PACS1", "not-an-address", REJECT_NO_REASON),
    (PROBE_AE_TITLE, "127.0.0.1", None),  # radlake's own C-ECHO, from this host
    (PROBE_AE_TITLE, "10.0.0.5", None),  # ... through the bind address
    (PROBE_AE_TITLE, "192.168.1.20", REJECT_CALLING_AE),  # the probe's title from elsewhere is nobody's
])
def test_association_refusal(calling, address, expected):
    assert association_refusal(CONFIG, calling, address) == expected


def test_no_address_list_accepts_any_address_of_an_allowed_title():
    open_config = ScpConfig("p", "RADLAKE_P", "127.0.0.1", 11112, ("PACS1",))
    assert association_refusal(open_config, "PACS1", "203.0.113.7") is None
    assert association_refusal(open_config, "PACS2", "203.0.113.7") == REJECT_CALLING_AE


@pytest.mark.parametrize(("title", "ok"), [
    ("PACS1", True), ("A", True), ("SIXTEEN_CHARS_OK", True), ("  ", False), ("", False),
    ("SEVENTEEN_CHARS_X", False), ("BACK\\SLASH", False), ("TAB\tX", False), ("ÆRØ", False),
])
def test_check_ae_title(title, ok):
    assert check_ae_title(title)[0] is ok


def test_check_address():
    assert check_address("10.0.0.0/8") == (True, None)
    assert check_address("::1")[0] is True
    assert check_address("pacs.hospital.example")[0] is False


def _report(status: str, reason: str | None = None) -> dict:
    outcome = {"status": status, "original_sop_uid": "1.2.826.0.1.3680043.99.1"}
    if reason:
        outcome["reason"] = reason
    return {"outcomes": [outcome]}


@pytest.mark.parametrize(("http", "report", "status", "comment_has"), [
    (200, _report("accepted"), SUCCESS, None),
    (200, _report("duplicate"), SUCCESS, None),  # identical bytes already stored: durable, so success
    (409, _report("quarantined", "TRUNCATED_FILE"), CANNOT_UNDERSTAND, "TRUNCATED_FILE"),
    (409, _report("quarantined", "NO_PIXEL_DATA"), DATASET_DOES_NOT_MATCH_SOP_CLASS, "NO_PIXEL_DATA"),
    (409, _report("quarantined", "CONFLICTING_DUPLICATE"), QUARANTINED_BY_POLICY, "CONFLICTING_DUPLICATE"),
    (409, _report("quarantined", "BURNED_IN_ANNOTATION"), QUARANTINED_BY_POLICY, "BURNED_IN_ANNOTATION"),
    (409, _report("quarantined", "Patient Ola Nordmann"), QUARANTINED_BY_POLICY, "DEID_FAILED"),  # never echoed
    (200, _report("skipped", "DICOMDIR"), QUARANTINED_BY_POLICY, "DICOMDIR"),
    (503, {"error": "EDGE_UNAVAILABLE"}, OUT_OF_RESOURCES, "HTTP 503"),
    (500, None, OUT_OF_RESOURCES, "HTTP 500"),
    (429, None, OUT_OF_RESOURCES, "retry later"),
    (None, None, OUT_OF_RESOURCES, "unreachable"),
    (401, {"error": "missing"}, OUT_OF_RESOURCES, "credentials"),  # the SCP's token: fixed by the operator, retried
    (403, {"error": "wrong"}, OUT_OF_RESOURCES, "credentials"),
    (400, {"error": "BAD_STOW_REQUEST"}, EDGE_REFUSED_REQUEST, "HTTP 400"),
    (200, {"outcomes": []}, EDGE_REFUSED_REQUEST, "outcome"),
    (200, "not a report", EDGE_REFUSED_REQUEST, "HTTP 200"),
])
def test_store_status(http, report, status, comment_has):
    answer = store_status(http, report)
    assert answer.status == status
    if comment_has is None:
        assert answer.comment is None
    else:
        assert comment_has in answer.comment
        assert len(answer.comment) <= ERROR_COMMENT_MAX
        assert "1.2.826" not in answer.comment and "Nordmann" not in answer.comment


def test_failure_statuses_are_failures_in_ps3_7_terms():
    """0xA7xx, 0xA9xx and 0xCxxx are Failure for C-STORE (PS3.4 Annex B.2.3); 0x0000 alone is Success."""
    for status in (OUT_OF_RESOURCES, DATASET_DOES_NOT_MATCH_SOP_CLASS, CANNOT_UNDERSTAND, QUARANTINED_BY_POLICY,
                   EDGE_REFUSED_REQUEST):
        assert status >> 8 in (0xA7, 0xA9, 0xC0)


def test_transfer_syntaxes_are_those_the_engine_reads():
    assert "1.2.840.10008.1.2" in TRANSFER_SYNTAXES and "1.2.840.10008.1.2.1" in TRANSFER_SYNTAXES
    assert "1.2.840.10008.1.2.4.50" in TRANSFER_SYNTAXES  # JPEG baseline: stored as sent
    assert len(set(TRANSFER_SYNTAXES)) == len(TRANSFER_SYNTAXES)


def test_config_round_trips_through_json():
    config = ScpConfig("p", "RADLAKE_P", "127.0.0.1", 11112, ("A", "B"), ("10.0.0.0/8",), tls=True,
                       limits=ScpLimits(max_associations=3, max_pdu=32768))
    assert ScpConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["dimse", "p1"], 2, "needs its AE title"),
    (["dimse", "p1", "--ae-title", "RL", "--max-pdu", "100", "--allow-ae", "A"], 2, "--max-pdu"),
    (["dimse", "p1", "--ae-title", "RL"], 1, "--allow-ae"),
    (["dimse", "p1", "--ae-title", "RL", "--allow-ae", "BACK\\SLASH"], 1, "backslash"),
    (["dimse", "p1", "--ae-title", "WAY_TOO_LONG_FOR_AN_AE", "--allow-ae", "A"], 1, "at most 16"),
    (["dimse", "p1", "--ae-title", "RL", "--allow-ae", "A", "--allow-address", "pacs.example"], 1, "not an IP"),
])
def test_provider_dimse_refuses_bad_settings_before_touching_the_platform(monkeypatch, tmp_path, capsys, argv, code,
                                                                          message):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path))
    assert provider_cli(argv) == code
    assert message in capsys.readouterr().err


def test_the_scp_accepts_every_annotation_storage_class():
    ae, _ = build_ae(CONFIG, _Forwarder(CONFIG))
    supported = {str(context.abstract_syntax) for context in ae.supported_contexts}
    assert set(ANNOTATION_SOP_CLASSES) <= supported
