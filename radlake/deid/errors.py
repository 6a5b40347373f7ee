"""Exceptions and reason codes of the de-identification engine.

Expected bad input never raises: validators return ``(ok, reason)`` and the reason becomes the
quarantine record. Exceptions are for misuse (bad profile) and infrastructure (Vault unreachable).
"""

from __future__ import annotations

from enum import StrEnum

from lake_schemas.errors import RadlakeError


class DeidError(RadlakeError):
    """Base class of the errors raised by :mod:`radlake.deid`."""


class ProfileError(DeidError):
    """A profile file or the Table E.1-1 data file is malformed."""


class PseudonymError(DeidError):
    """The keyed-HMAC service (Vault Transit) failed or is unreachable."""


class QuarantineReason(StrEnum):
    """Why an input was not released. Stable codes: they end up in ``quarantine.jsonl`` and reports."""

    NOT_DICOM = "NOT_DICOM"
    MISSING_FILE_META = "MISSING_FILE_META"
    TRUNCATED_FILE = "TRUNCATED_FILE"
    EMPTY_FILE = "EMPTY_FILE"
    INVALID_DATASET = "INVALID_DATASET"
    MISSING_REQUIRED_ATTRIBUTE = "MISSING_REQUIRED_ATTRIBUTE"
    NO_PIXEL_DATA = "NO_PIXEL_DATA"
    UNSUPPORTED_TRANSFER_SYNTAX = "UNSUPPORTED_TRANSFER_SYNTAX"
    BURNED_IN_ANNOTATION = "BURNED_IN_ANNOTATION"
    BURNED_IN_ANNOTATION_UNKNOWN = "BURNED_IN_ANNOTATION_UNKNOWN"
    VERIFICATION_FAILED = "VERIFICATION_FAILED"
    CONFLICTING_DUPLICATE = "CONFLICTING_DUPLICATE"
    DEID_FAILED = "DEID_FAILED"
    SEQUENCE_TOO_DEEP = "SEQUENCE_TOO_DEEP"  # nested deeper than radlake.dicom_io.MAX_SEQUENCE_DEPTH
    ELEMENT_TOO_LONG = "ELEMENT_TOO_LONG"  # a value other than the pixel data over MAX_ELEMENT_BYTES
    PART_TOO_LARGE = "PART_TOO_LARGE"  # a STOW-RS part over the edge's part cap (its bytes are not kept)
    # archive members
    ARCHIVE_UNREADABLE = "ARCHIVE_UNREADABLE"
    ARCHIVE_PATH_TRAVERSAL = "ARCHIVE_PATH_TRAVERSAL"
    ARCHIVE_ABSOLUTE_PATH = "ARCHIVE_ABSOLUTE_PATH"
    ARCHIVE_SYMLINK = "ARCHIVE_SYMLINK"
    ARCHIVE_HARDLINK = "ARCHIVE_HARDLINK"
    ARCHIVE_SPECIAL_FILE = "ARCHIVE_SPECIAL_FILE"
    ARCHIVE_ENCRYPTED_MEMBER = "ARCHIVE_ENCRYPTED_MEMBER"
    ARCHIVE_BOMB = "ARCHIVE_BOMB"
    ARCHIVE_TOO_DEEP = "ARCHIVE_TOO_DEEP"
    ARCHIVE_TOO_LARGE = "ARCHIVE_TOO_LARGE"  # the upload's expanded-size budget is spent
    ARCHIVE_TOO_MANY_MEMBERS = "ARCHIVE_TOO_MANY_MEMBERS"
    ARCHIVE_UNSUPPORTED_COMPRESSION = "ARCHIVE_UNSUPPORTED_COMPRESSION"
