"""STOW-RS request parsing and response building (PS3.18 §10.5)."""

from __future__ import annotations

import hashlib
import io
import stat

import pytest

from nifi.edge.errors import StowError
from nifi.edge.stow_rs import (
    CANNOT_UNDERSTAND,
    PART_TOO_LARGE,
    PROCESSING_FAILURE,
    REQUEST_TOO_LARGE,
    Failed,
    Stored,
    StowLimits,
    as_part10,
    build_multipart_related,
    check_stow_content_type,
    parse_media_type,
    parse_multipart_related,
    spool_multipart_related,
    store_response,
)


def test_round_trip_of_binary_parts_including_crlf_and_boundary_like_bytes():
    parts = [b"\x00\x01\r\n--not-it\r\n\xff" * 50, b"", b"DICM" + bytes(range(256))]
    body, content_type = build_multipart_related(parts, "b0und4ry")
    parsed = parse_multipart_related(body, content_type)
    assert [p.content for p in parsed] == parts
    assert all(p.content_type == "application/dicom" for p in parsed)


def test_quoted_boundary_and_preamble_are_accepted():
    body = b"preamble\r\n--a b\r\nContent-Type: application/dicom\r\n\r\nXYZ\r\n--a b--\r\nepilogue"
    parts = parse_multipart_related(body, 'multipart/related; type="application/dicom"; boundary="a b"')
    assert [p.content for p in parts] == [b"XYZ"]


def test_media_type_parameters():
    media = parse_media_type('Multipart/Related; Type="application/dicom"; boundary=xyz')
    assert media.type == "multipart/related"
    assert media.params == {"type": "application/dicom", "boundary": "xyz"}


@pytest.mark.parametrize("value, ok", [
    ('multipart/related; type="application/dicom"; boundary=x', True),
    ("multipart/related; boundary=x", True),  # type defaults to application/dicom
    ('multipart/related; type="application/dicom+json"; boundary=x', False),
    ("multipart/related; type=application/dicom", False),  # no boundary
    ("application/dicom", False),
    ("", False),
])
def test_content_type_check(value, ok):
    assert check_stow_content_type(value)[0] is ok


def test_truncated_body_is_refused():
    body, content_type = build_multipart_related([b"a" * 100], "bb")
    with pytest.raises(StowError, match="not closed"):
        parse_multipart_related(body[:60], content_type)


def test_wrong_media_type_is_415():
    with pytest.raises(StowError) as err:
        parse_multipart_related(b"x", "application/zip")
    assert err.value.status == 415


def test_response_all_stored_is_200_with_referenced_sequence():
    status, body = store_response("http://edge/studies/2.25.1", [Stored("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "u")], [])
    assert status == 200
    item = body["00081199"]["Value"][0]
    assert item["00081155"] == {"vr": "UI", "Value": ["1.2.3"]}
    assert item["00081190"]["Value"] == ["u"]
    assert "00081198" not in body


def test_response_partial_is_202_and_failure_reasons_are_mapped():
    status, body = store_response(None, [Stored("1.2", "1.2.3", "u")],
                                  [Failed(None, None, "NOT_DICOM"), Failed("1.2", "1.2.4", "VERIFICATION_FAILED")])
    assert status == 202
    reasons = [item["00081197"]["Value"][0] for item in body["00081198"]["Value"]]
    assert reasons == [CANNOT_UNDERSTAND, PROCESSING_FAILURE]
    assert "00081155" not in body["00081198"]["Value"][0]


def test_response_none_stored_is_409():
    status, _ = store_response(None, [], [Failed(None, None, "TRUNCATED_FILE")])
    assert status == 409


def test_part_without_preamble_gets_one():
    meta_first = b"\x02\x00\x00\x00UL\x04\x00" + bytes(200)
    fixed = as_part10(meta_first)
    assert fixed[128:132] == b"DICM" and fixed[132:] == meta_first
    assert as_part10(fixed) == fixed
    assert as_part10(b"not dicom") == b"not dicom"


# ------------------------------------------------------------------------------- streamed to disk, with caps


class _Chunks(io.RawIOBase):
    """A body of ``size`` bytes made on the fly (never in memory whole) around one large part."""

    def __init__(self, head: bytes, filler: int, tail: bytes) -> None:
        self.pieces = [head, filler, tail]

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while self.pieces:
            piece = self.pieces[0]
            if isinstance(piece, int):
                if piece == 0:
                    self.pieces.pop(0)
                    continue
                take = min(n, piece)
                self.pieces[0] = piece - take
                return b"\x5a" * take
            if not piece:
                self.pieces.pop(0)
                continue
            self.pieces[0] = piece[n:]
            return piece[:n]
        return b""


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 20])
def test_streamed_parts_equal_the_parsed_ones_at_any_chunk_size(tmp_path, chunk):
    parts = [b"\x00\x01\r\n--not-it\r\n\xff" * 50, b"", b"DICM" + bytes(range(256)), b"\x02\x00" + bytes(300)]
    body, content_type = build_multipart_related(parts, "b0und4ry")
    spool = tmp_path / f"spool{chunk}"
    spool.mkdir()
    spooled = spool_multipart_related(io.BytesIO(body), content_type, spool, chunk=chunk)
    assert [p.path.read_bytes() for p in spooled] == [as_part10(p) for p in parts]  # preamble added on the way
    assert [p.sha256 for p in spooled] == [hashlib.sha256(p).hexdigest() for p in parts]  # of the bytes as sent
    assert {stat.S_IMODE(p.path.stat().st_mode) for p in spooled} == {0o600}


def test_a_part_over_the_cap_is_refused_and_never_written_or_held(tmp_path):
    small = b"DICM" + bytes(100)
    big = 10 << 20
    body, content_type = build_multipart_related([small, b"@@BIG@@", small], "bnd")
    head, tail = body.split(b"@@BIG@@")
    spooled = spool_multipart_related(_Chunks(head, big, tail), content_type, tmp_path,
                                      StowLimits(max_part_bytes=1 << 20, max_request_bytes=1 << 30), chunk=64 << 10)
    assert [p.refused for p in spooled] == [None, PART_TOO_LARGE, None]
    assert spooled[1].path is None and spooled[1].size == big
    assert sorted(f.name for f in tmp_path.iterdir()) == ["part-00001", "part-00003"]


def test_a_request_over_the_cap_is_413_request_too_large(tmp_path):
    body, content_type = build_multipart_related([bytes(5000)], "bnd")
    with pytest.raises(StowError) as refused:
        spool_multipart_related(io.BytesIO(body), content_type, tmp_path, StowLimits(max_request_bytes=4000),
                                chunk=1000)
    assert refused.value.status == 413 and refused.value.reason == REQUEST_TOO_LARGE


@pytest.mark.parametrize("body", [b"no boundary here", b"--bnd\r\nContent-Type: application/dicom\r\n\r\nunclosed",
                                  b"--bnd\r\n" + b"X" * (70 << 10)])
def test_a_malformed_streamed_body_is_a_400(tmp_path, body):
    with pytest.raises(StowError) as refused:
        spool_multipart_related(io.BytesIO(body), 'multipart/related; type="application/dicom"; boundary=bnd',
                                tmp_path, chunk=4096)
    assert refused.value.status == 400
