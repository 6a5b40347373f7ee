"""Record types derived from the ``lake_schemas`` event models.

A part of the system that keeps some fields of an event (the streams' instance record, the image plane
of a slice) takes them from the model: :func:`event_record` builds a frozen, keyword-only dataclass whose
fields are named, typed and defaulted as the model declares them, and :func:`record_from` fills one from
the model, another record, or a mapping with the same names (a lake row, JSON, ``model_dump()``).
A dataclass, not a pydantic model: the values were validated when the event was, and a record is built
on every handled event. :func:`event_struct` builds the same fields as a frozen msgspec Struct, for a record
that a hot path builds, keeps by the million and encodes (the streams' instance record): it is built in a
fraction of a frozen dataclass's time and (de)serialised by msgspec in C.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from dataclasses import field, make_dataclass
from typing import Any, TypeVar

import msgspec

R = TypeVar("R")


def _is_tuple(annotation: Any) -> bool:
    return any(typing.get_origin(a) is tuple for a in (annotation, *typing.get_args(annotation)))


def _specs(parts: Iterable[tuple[type, Iterable[str]]]) -> tuple[list[tuple], list[str]]:
    """(name, annotation[, default]) of each named field of each part, and the names of the tuple fields."""
    specs: list[tuple] = []
    tuples: list[str] = []
    for model, names in parts:
        for field_name in names:
            info = model.model_fields[field_name]
            if info.is_required() or info.default_factory is not None:
                specs.append((field_name, info.annotation))
            else:
                specs.append((field_name, info.annotation, info.default))
            if _is_tuple(info.annotation):
                tuples.append(field_name)
    return specs, tuples


def event_struct(name: str, *parts: tuple[type, Iterable[str]]) -> type:
    """:func:`event_record`'s fields as a frozen, keyword-only msgspec Struct (same names, types, defaults and
    class attributes ``_field_names``, ``_tuple_fields``); subclass it to name it and add behaviour.
    msgspec decodes JSON into it with the field types checked (tuple fields as tuples)."""
    specs, tuples = _specs(parts)
    namespace = {"__module__": __name__, "_field_names": tuple(s[0] for s in specs), "_tuple_fields": tuple(tuples)}
    # gc=False: the fields are strings, numbers and tuples of numbers, which cannot form a reference cycle, so the
    # collector need not scan the millions of records a worker keeps
    return msgspec.defstruct(name, specs, frozen=True, kw_only=True, gc=False, namespace=namespace)


def event_record(name: str, *parts: tuple[type, Iterable[str]]) -> type:
    """A frozen, keyword-only dataclass with the named fields of each ``(model, names)`` part (a
    ``lake_schemas`` model class and names of its fields), in order,
    and the class method ``of`` (:func:`record_from`). Subclass it to name it and add behaviour.

    A field the model defaults to a constant keeps that default; a required field, or one with a default
    factory (an event id), is required: a record keeps what the event had and invents nothing.
    """
    specs, tuples = _specs(parts)
    specs = [(s[0], s[1], field(default=s[2])) if len(s) == 3 else s for s in specs]
    namespace = {"__module__": __name__, "_field_names": tuple(s[0] for s in specs), "_tuple_fields": tuple(tuples),
                 "of": classmethod(record_from)}
    return make_dataclass(name, specs, frozen=True, kw_only=True, namespace=namespace)


def record_from(cls: type[R], source: Mapping[str, Any] | object, **values: Any) -> R:
    """An ``event_record`` class's instance from ``source`` and keyword ``values`` (which win).

    ``source`` is a mapping (a missing key takes the field's default) or an object with the fields as
    attributes. Tuple fields (positions, orientations, spacings) become tuples of floats whatever
    sequence they arrive as (JSON list, Arrow list, pydicom multi-value).
    """
    names = [name for name in cls._field_names if name not in values]
    if isinstance(source, Mapping):
        present = {name: source[name] for name in names if name in source}
    else:
        present = {name: getattr(source, name) for name in names}
    present.update(values)
    for name in cls._tuple_fields:
        value = present.get(name)
        if value is not None:
            present[name] = tuple(float(v) for v in value)
    return cls(**present)
