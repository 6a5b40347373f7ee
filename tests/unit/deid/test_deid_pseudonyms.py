"""Pure pseudonym functions and the local HMAC (the Vault adapter is tested in integration)."""

from __future__ import annotations

import hashlib

import pytest
from pydicom.uid import UID

from radlake.deid.errors import PseudonymError
from radlake.deid.pseudonyms import (
    LocalHmac,
    LruCache,
    date_offset_from_digest,
    patient_message,
    pseudonym_from_digest,
    transit_key_name,
    uid_from_digest,
    uid_message,
)


def test_uid_from_digest_is_a_valid_2_25_uid():
    for i in range(200):
        uid = uid_from_digest(hashlib.sha256(str(i).encode()).digest())
        assert uid.startswith("2.25.")
        assert len(uid) <= 64
        assert UID(uid).is_valid
        assert int(uid[5:]) >> 76 & 0xF == 8  # RFC 9562 version 8


def test_pseudonyms_are_digits_only_and_deterministic():
    digest = hashlib.sha256(b"x").digest()
    assert pseudonym_from_digest(digest) == pseudonym_from_digest(digest)
    assert pseudonym_from_digest(digest)[2:].isdigit()
    assert 1 <= date_offset_from_digest(digest, 10) <= 10


def test_messages_are_namespaced():
    assert uid_message("p", "1.2.3") != patient_message("p", "1.2.3")


def test_uids_are_keyed_per_provider():
    assert uid_message("hospital-a", "1.2.3") != uid_message("hospital-b", "1.2.3")
    assert uid_message("hospital-a", " 1.2.3 ") == uid_message("hospital-a", "1.2.3")
    assert patient_message("a", "1") != patient_message("b", "1")


def test_keys_separate_projects():
    message = [patient_message("provider", "MRN1")]
    assert LocalHmac(b"a").hmac_many(message) != LocalHmac(b"b").hmac_many(message)
    assert LocalHmac(b"a").hmac_many(message) == LocalHmac(b"a").hmac_many(message)


def test_lru_cache_is_bounded_and_keeps_recent():
    cache = LruCache(2)
    cache.put(b"a", b"1")
    cache.put(b"b", b"2")
    assert cache.get(b"a") == b"1"
    cache.put(b"c", b"3")
    assert len(cache) == 2
    assert cache.get(b"b") is None
    assert cache.get(b"a") == b"1"


def test_transit_key_name_is_the_project_name_as_it_is():
    assert transit_key_name("lung-screening-2026") == "radlake-deid-lung-screening-2026"


@pytest.mark.parametrize("name", ["lung screening/2026", "lung.2024", "lung 2024", "lung/2024", "Lung-2024",
                                  "2024-lung", "l", "", " lung", "lung_2024", "a" * 64])
def test_project_names_that_could_share_a_key_are_refused(name):
    with pytest.raises(PseudonymError, match="not valid"):
        transit_key_name(name)
