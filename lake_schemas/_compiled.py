"""JSON Schema -> a compiled msgspec decoder that parses and validates an event in one pass.

The contracts use a small subset of draft 7 (objects with properties, typed scalars with their bounds,
arrays, const/enum, the uuid and date-time formats). Each keyword of that subset maps onto a msgspec type or
constraint; any other validating keyword makes compilation fail, so a contract can never be checked more
loosely than it is written. A violation is reported with the path of the field, e.g. ``$.data.study_uid``.

Patterns (the uuid format is one) are not given to msgspec, which searches every value with its regex: the
decoded view goes through a checker generated for the schema that applies the same ``re.search`` of the same
pattern, except to a value equal to the last one that passed at the same place. Most pattern-checked values
repeat from one event to the next (a study's and a series' UIDs, the provider, the SOP class), and comparing
two strings costs a fraction of a search; the values that never repeat (SOP instance UIDs, hashes, event ids)
are searched every time. A list of strings, or of objects whose only checks are patterns of their string
fields, is searched in C loops (``all(map(search, ...))``) and walked item by item only to name the one that
fails.
"""

from __future__ import annotations

import datetime
import json
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any, Literal, Optional, Union

import msgspec

from lake_schemas.errors import SchemaCompileError

# Keywords that only describe (never validate) and keywords each type below consumes.
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "examples", "$comment"})
_BY_TYPE = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": frozenset({"minimum", "maximum"}),
    "number": frozenset({"minimum", "maximum"}),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
# A uuid stays a string (as the event classes hold it), checked by the rule jsonschema's format checker applies
# (hex digits in the 8-4-4-4-12 groups, either case); date-time and date are decoded.
_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_FORMATS: dict[str, Any] = {"date-time": datetime.datetime, "date": datetime.date}

# Every Struct type made here lives as long as the process, also those of a compilation that failed half way:
# a msgspec Struct type freed by the cyclic garbage collector has crashed processes (msgspec #151, #717), and
# a forked child (the de-identification pool) collects whatever garbage it inherits.
_STRUCT_TYPES: list[type] = []


@dataclass(frozen=True)
class _Pattern:
    """The value must match ``pattern`` (``re.search``, msgspec's and jsonschema's rule)."""

    pattern: str


@dataclass(frozen=True)
class _Fields:
    """Checks of a Struct's attributes."""

    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class _Each:
    """The check of every item of a list, or of every value of a dict (``mapping``)."""

    check: Any
    mapping: bool = False


@dataclass(frozen=True)
class _When:
    """Checks that apply to a value of one type only: union members, optional (None when absent) properties."""

    cases: tuple[tuple[type, Any], ...]


def _meta(**constraints: Any) -> msgspec.Meta | None:
    given = {k: v for k, v in constraints.items() if v is not None}
    return msgspec.Meta(**given) if given else None


def _annotated(base: Any, meta: msgspec.Meta | None) -> Any:
    return base if meta is None else Annotated[base, meta]


def _checked_type(kind: Any, check: Any) -> type:
    """The Python type a value with ``check`` has in the view."""
    if isinstance(check, _Pattern):
        return str
    if isinstance(check, _Each):
        return dict if check.mapping else list
    if isinstance(check, _Fields):
        return kind
    raise AssertionError(check)


class _Compiler:
    """Schema -> (msgspec type, pattern checks of the decoded value or None)."""

    def __init__(self, title: str) -> None:
        self.title = title

    def node(self, schema: dict[str, Any], path: str) -> tuple[Any, Any]:
        unknown = {k for k in schema if not k.startswith("x-")} - _ANNOTATIONS - {"type", "const", "enum"}
        if "const" in schema or "enum" in schema:
            values = (schema["const"],) if "const" in schema else tuple(schema["enum"])
            if unknown - {"type"}:
                raise SchemaCompileError(f"{self.title} {path}: {sorted(unknown)} beside const/enum")
            return Literal[values], None
        types = schema.get("type")
        if types is None:
            if unknown:
                raise SchemaCompileError(f"{self.title} {path}: keywords {sorted(unknown)} without a type")
            return Any, None
        types = [types] if isinstance(types, str) else list(types)
        allowed = frozenset().union(*(_BY_TYPE.get(t, frozenset()) for t in types))
        if not set(types) <= set(_BY_TYPE) or unknown - allowed:
            raise SchemaCompileError(
                f"{self.title} {path}: cannot compile {sorted(unknown - allowed) or types} (not in the subset the "
                f"contracts use)")
        members = [self._one(t, schema, path) for t in types]
        if len(members) == 1:
            return members[0]
        cases = tuple((_checked_type(kind, check), check) for kind, check in members if check is not None)
        return Union[tuple(kind for kind, _ in members)], (_When(cases) if cases else None)

    def _one(self, kind: str, schema: dict[str, Any], path: str) -> tuple[Any, Any]:
        if kind == "null":
            return None, None
        if kind == "boolean":
            return bool, None
        if kind == "string":
            base = _FORMATS.get(schema.get("format", ""), str)
            formatted = schema.get("format") in (*_FORMATS, "uuid")
            if formatted and any(k in schema for k in ("minLength", "maxLength", "pattern")):
                raise SchemaCompileError(f"{self.title} {path}: length or pattern beside format {schema['format']}")
            if schema.get("format") == "uuid":
                return str, _Pattern(_UUID_PATTERN)
            pattern = schema.get("pattern")
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as err:
                    raise SchemaCompileError(f"{self.title} {path}: pattern {pattern!r}: {err}") from err
            return (_annotated(base, _meta(min_length=schema.get("minLength"), max_length=schema.get("maxLength"))),
                    None if pattern is None else _Pattern(pattern))
        if kind in ("integer", "number"):
            return _annotated(int if kind == "integer" else float,
                              _meta(ge=schema.get("minimum"), le=schema.get("maximum"))), None
        if kind == "array":
            items, check = self.node(schema.get("items", {}), f"{path}[]")
            return (_annotated(list[items], _meta(min_length=schema.get("minItems"),  # type: ignore[valid-type]
                                                  max_length=schema.get("maxItems"))),
                    None if check is None else _Each(check))
        return self._object(schema, path)

    def _object(self, schema: dict[str, Any], path: str) -> tuple[Any, Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, dict):
            if properties:
                raise SchemaCompileError(f"{self.title} {path}: properties beside an additionalProperties schema")
            values, check = self.node(extra, f"{path}.*")
            return dict[str, values], None if check is None else _Each(check, mapping=True)  # type: ignore[valid-type]
        required = set(schema.get("required", ()))
        missing = required - set(properties)
        if missing:
            if extra is False or properties:
                raise SchemaCompileError(f"{self.title} {path}: required {sorted(missing)} not among its properties")
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        checks: list[tuple[str, Any]] = []
        for name, sub in properties.items():
            kind, check = self.node(sub, f"{path}.{name}")
            if name in required:
                fields.append((name, kind))
            else:
                fields.append((name, Optional[kind], None))  # absent reads as None
                if check is not None and not isinstance(check, _When):
                    check = _When(((_checked_type(kind, check), check),))
            if check is not None:
                checks.append((name, check))
        if not properties:
            return dict[str, Any], None
        where = path[2:].replace("[]", "_item").replace(".", "_")  # "$.data.series[]" -> "data_series_item"
        struct = msgspec.defstruct(f"{self.title}_{where}" if where else self.title, fields, kw_only=True,
                                   forbid_unknown_fields=extra is False)
        _STRUCT_TYPES.append(struct)
        return struct, (_Fields(tuple(checks)) if checks else None)


def _violation(pattern: str, path: str) -> msgspec.ValidationError:
    return msgspec.ValidationError(f"Expected `str` matching regex {pattern!r} - at `{path}`")


class _CheckWriter:
    """Python source of one function that decodes and then walks the view to each pattern-checked value."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"_violation": _violation, "_all": all}
        self.cells: list[str] = []
        self._count = 0

    def _name(self, prefix: str, value: Any = None) -> str:
        self._count += 1
        name = f"{prefix}{self._count}"
        if value is not None:
            self.names[name] = value
        return name

    @staticmethod
    def _path(parts: list[tuple[bool, str]]) -> str:
        """An expression of the path: literal text and index variables."""
        out: list[str] = []
        text = ""
        for is_index, part in parts:
            if is_index:
                if text:
                    out.append(repr(text))
                    text = ""
                out.append(f"str({part})")
            else:
                text += part
        if text:
            out.append(repr(text))
        return " + ".join(out)

    def _guard(self, check: Any, items: str) -> str | None:
        """An expression true when every item of the list ``items`` passes ``check``, searched in C loops
        (``all(map(search, ...))``), for a list of strings or of objects whose only checks are patterns of
        their own string fields; None for any other check."""
        if isinstance(check, _Pattern):
            return f"_all(map({self._name('search', re.compile(check.pattern).search)}, {items}))"
        if isinstance(check, _Fields) and check.fields and all(isinstance(sub, _Pattern) for _, sub in check.fields):
            return " and ".join(
                f"_all(map({self._name('search', re.compile(sub.pattern).search)}, "
                f"map({self._name('get', attrgetter(name))}, {items})))" for name, sub in check.fields)
        return None

    def write(self, check: Any, value: str, path: list[tuple[bool, str]], depth: int) -> None:
        pad = "    " * depth
        if isinstance(check, _Pattern):
            search = self._name("search", re.compile(check.pattern).search)
            last = self._name("last")  # a cell of the enclosing function: the last value that matched here
            self.cells.append(last)
            pattern = self._name("pattern", check.pattern)
            self.lines += [
                f"{pad}if {value} != {last}:",
                f"{pad}    if {search}({value}) is None:",
                f"{pad}        raise _violation({pattern}, {self._path(path)})",
                f"{pad}    {last} = {value}",
            ]
        elif isinstance(check, _Fields):
            for name, sub in check.fields:
                item = self._name("v")
                if name.isidentifier() and not keyword.iskeyword(name):
                    self.lines.append(f"{pad}{item} = {value}.{name}")
                else:
                    self.lines.append(f"{pad}{item} = getattr({value}, {name!r})")
                self.write(sub, item, [*path, (False, f".{name}")], depth)
        elif isinstance(check, _Each):
            guard = None if check.mapping else self._guard(check.check, value)
            if guard is not None:  # the item-by-item walk below only runs to name the item that fails
                self.lines.append(f"{pad}if not ({guard}):")
                depth += 1
                pad += "    "
            index, item = self._name("i"), self._name("v")
            if check.mapping:  # msgspec names a dict's values `[...]`
                self.lines.append(f"{pad}for {item} in {value}.values():")
                self.write(check.check, item, [*path, (False, "[...]")], depth + 1)
            else:
                self.lines.append(f"{pad}for {index}, {item} in enumerate({value}):")
                self.write(check.check, item, [*path, (False, "["), (True, index), (False, "]")], depth + 1)
        elif isinstance(check, _When):
            for kind, sub in check.cases:
                self.lines.append(f"{pad}if type({value}) is {self._name('type', kind)}:")
                self.write(sub, value, path, depth + 1)
        else:
            raise AssertionError(check)


class CompiledSchema:
    """``decode(payload)``: the validated view of a JSON document, or ``msgspec.ValidationError`` naming the path
    of the first value the schema refuses (``msgspec.DecodeError`` for bytes that are not JSON)."""

    __slots__ = ("decode", "type")

    def __init__(self, kind: Any, check: Any) -> None:
        self.type = kind
        decoder = msgspec.json.Decoder(kind)
        if check is None:
            self.decode: Callable[[Any], Any] = decoder.decode
            return
        writer = _CheckWriter()
        writer.names["_decode"] = decoder.decode
        writer.write(check, "view", [(False, "$")], 2)
        source = "\n".join([
            "def checked():",
            *(f"    {cell} = None" for cell in writer.cells),
            "    def decode(payload):",
            f"        nonlocal {', '.join(writer.cells)}",
            "        view = _decode(payload)",
            *writer.lines,
            "        return view",
            "    return decode",
        ])
        exec(source, writer.names)  # noqa: S102 - source built above from the schema's structure
        self.decode = writer.names["checked"]()


@lru_cache(maxsize=None)
def compile_schema(schema_str: str) -> CompiledSchema:
    """A decoder into a validated view of the event (msgspec Structs named after the schema's title, with the
    schema's property names as attributes; an absent optional property reads as None). It raises ``msgspec.ValidationError`` (with the field's path) for a document the schema
    refuses, and ``msgspec.DecodeError`` for bytes that are not JSON. Cached by schema text, for good (a
    process meets a handful of schemas; see _STRUCT_TYPES)."""
    try:
        schema = json.loads(schema_str)
    except ValueError as err:
        raise SchemaCompileError(f"the schema is not JSON: {err}") from err
    if not isinstance(schema, dict):
        raise SchemaCompileError("the schema is not a JSON object")
    compiler = _Compiler(str(schema.get("title", "Event")).replace(" ", "_"))
    try:
        return CompiledSchema(*compiler.node(schema, "$"))
    except (TypeError, ValueError) as err:  # msgspec refuses a type or a constraint the walk built
        raise SchemaCompileError(f"{compiler.title}: {err}") from err
