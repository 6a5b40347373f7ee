"""What became of one input instance: released as de-identified Part-10 bytes, quarantined, or skipped.

Both de-identification paths answer with an :class:`InstanceResult`, and so does
:func:`radlake.deid.pipeline.deidentify_instances`; its callers (the batch run, the NiFi edge) act on
its :class:`Status`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from radlake.deid.errors import QuarantineReason


class Status(StrEnum):
    DEIDENTIFIED = "deidentified"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class InstanceResult:
    """What became of one input instance; ``encoded`` holds the de-identified Part-10 bytes.

    The bytes are kept in pieces (``encoded_parts``: the header, then the pixel data as a view of the
    input) and joined only when ``encoded`` is read; writing a file does not need to join them.
    """

    status: Status
    provider: str
    reason: str | None = None
    message: str = ""
    original_sop_uid: str | None = None
    encoded_parts: tuple[bytes | memoryview, ...] | None = None
    relative_path: str | None = None
    verified: bool | None = None  # None: never reached the verification scan
    leaks: tuple[str, ...] = ()

    @cached_property
    def encoded(self) -> bytes | None:
        parts = self.encoded_parts
        if parts is None:
            return None
        return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)

    @classmethod
    def released(cls, provider: str, original_sop_uid: str, encoded_parts: tuple[bytes | memoryview, ...],
                 relative_path: str) -> InstanceResult:
        """A de-identified instance that passed the verification scan."""
        return cls(Status.DEIDENTIFIED, provider, None, "", original_sop_uid, encoded_parts, relative_path,
                   verified=True)

    @classmethod
    def leaked(cls, provider: str, original_sop_uid: str, leaks: Sequence[str]) -> InstanceResult:
        """A de-identified instance whose output still holds input PHI values: quarantined."""
        return cls(Status.QUARANTINED, provider, QuarantineReason.VERIFICATION_FAILED,
                   f"{len(leaks)} input PHI value(s) found in the output", original_sop_uid, verified=False,
                   leaks=tuple(leaks))

    @classmethod
    def failed(cls, provider: str, original_sop_uid: str, err: Exception) -> InstanceResult:
        """An instance that de-identification failed on: quarantined, with the error."""
        return cls(Status.QUARANTINED, provider, QuarantineReason.DEID_FAILED, f"{type(err).__name__}: {err}",
                   original_sop_uid)
