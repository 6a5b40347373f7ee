"""The interface between the per-instance pipeline and a de-identification path.

A path (:mod:`radlake.deid.byte_path`, :mod:`radlake.deid.dataset_path`) reads an instance its own way
and offers two steps: :meth:`DeidPath.prepare` reads and validates it and lists the messages whose keyed
MACs it needs; :meth:`DeidPath.finish` de-identifies it with those MACs, encodes and verifies it. Between
the two, the pipeline (:mod:`radlake.deid.pipeline`) asks the pseudonymiser once for the MACs of many
instances. A path that does not handle an instance exactly raises :class:`Unsupported` from either step,
and the next path takes the instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from radlake import dicom_io
from radlake.deid.confidentiality_profile import Rules
from radlake.deid.instance_result import InstanceResult
from radlake.deid.verification import Identifiers

# Errors that mean an instance cannot be de-identified as it is: the dataset path quarantines it, the
# byte path leaves it to the dataset path.
DEID_ERRORS = dicom_io.PARSE_ERRORS + (ArithmeticError, LookupError)

Reading = TypeVar("Reading")


class Unsupported(Exception):
    """This input is not one the path handles exactly; the next path takes it."""


@dataclass(frozen=True)
class Prepared(Generic[Reading]):
    """An instance a path has taken: the path's reading of it, and what the pipeline needs to finish it."""

    instance: Reading
    provider: str
    identifiers: Identifiers
    messages: list[bytes]  # whose keyed MACs :meth:`DeidPath.finish` needs


class DeidPath(Protocol):
    """One way of de-identifying a Part-10 instance (a module that defines these two functions)."""

    def prepare(self, data: bytes, rules: Rules, provider_override: str | None) -> Prepared[Any] | InstanceResult:
        """The instance taken on, or the result for one that is not to be released (quarantined, skipped)."""
        ...

    def finish(self, prepared: Prepared[Any], rules: Rules, digests: Mapping[bytes, bytes]) -> InstanceResult:
        """The instance de-identified, encoded and verified, with the MACs of its messages in ``digests``."""
        ...
