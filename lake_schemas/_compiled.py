"""JSON Schema -> a compiled msgspec decoder that parses and validates an event in one pass.

The contracts use a small subset of draft 7 (objects with properties, typed scalars with their bounds,
arrays, const/enum, the uuid and date-time formats). Each keyword of that subset maps onto a msgspec type or
constraint; any other validating keyword makes compilation fail, so a contract can never be checked more
loosely than it is written. A violation is reported with the path of the field, e.g. ``$.data.study_uid``.
"""

from __future__ import annotations

import datetime
import json
from functools import lru_cache
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


def _meta(**constraints: Any) -> msgspec.Meta | None:
    given = {k: v for k, v in constraints.items() if v is not None}
    return msgspec.Meta(**given) if given else None


def _annotated(base: Any, meta: msgspec.Meta | None) -> Any:
    return base if meta is None else Annotated[base, meta]


class _Compiler:
    def __init__(self, title: str) -> None:
        self.title = title

    def node(self, schema: dict[str, Any], path: str) -> Any:
        unknown = {k for k in schema if not k.startswith("x-")} - _ANNOTATIONS - {"type", "const", "enum"}
        if "const" in schema or "enum" in schema:
            values = (schema["const"],) if "const" in schema else tuple(schema["enum"])
            if unknown - {"type"}:
                raise SchemaCompileError(f"{self.title} {path}: {sorted(unknown)} beside const/enum")
            return Literal[values]
        types = schema.get("type")
        if types is None:
            if unknown:
                raise SchemaCompileError(f"{self.title} {path}: keywords {sorted(unknown)} without a type")
            return Any
        types = [types] if isinstance(types, str) else list(types)
        allowed = frozenset().union(*(_BY_TYPE.get(t, frozenset()) for t in types))
        if not set(types) <= set(_BY_TYPE) or unknown - allowed:
            raise SchemaCompileError(
                f"{self.title} {path}: cannot compile {sorted(unknown - allowed) or types} (not in the subset the "
                f"contracts use)")
        members = [self._one(t, schema, path) for t in types]
        return members[0] if len(members) == 1 else Union[tuple(members)]

    def _one(self, kind: str, schema: dict[str, Any], path: str) -> Any:
        if kind == "null":
            return None
        if kind == "boolean":
            return bool
        if kind == "string":
            base = _FORMATS.get(schema.get("format", ""), str)
            formatted = schema.get("format") in (*_FORMATS, "uuid")
            if formatted and any(k in schema for k in ("minLength", "maxLength", "pattern")):
                raise SchemaCompileError(f"{self.title} {path}: length or pattern beside format {schema['format']}")
            if schema.get("format") == "uuid":
                return Annotated[str, msgspec.Meta(pattern=_UUID_PATTERN)]
            return _annotated(base, _meta(min_length=schema.get("minLength"), max_length=schema.get("maxLength"),
                                          pattern=schema.get("pattern")))
        if kind in ("integer", "number"):
            return _annotated(int if kind == "integer" else float,
                              _meta(ge=schema.get("minimum"), le=schema.get("maximum")))
        if kind == "array":
            items = self.node(schema.get("items", {}), f"{path}[]")
            return _annotated(list[items], _meta(min_length=schema.get("minItems"),  # type: ignore[valid-type]
                                                 max_length=schema.get("maxItems")))
        return self._object(schema, path)

    def _object(self, schema: dict[str, Any], path: str) -> Any:
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, dict):
            if properties:
                raise SchemaCompileError(f"{self.title} {path}: properties beside an additionalProperties schema")
            return dict[str, self.node(extra, f"{path}.*")]  # type: ignore[misc]
        required = set(schema.get("required", ()))
        missing = required - set(properties)
        if missing:
            if extra is False or properties:
                raise SchemaCompileError(f"{self.title} {path}: required {sorted(missing)} not among its properties")
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for name, sub in properties.items():
            kind = self.node(sub, f"{path}.{name}")
            fields.append((name, kind) if name in required else (name, Optional[kind], None))  # absent reads as None
        if not properties:
            return dict[str, Any]
        where = path[2:].replace("[]", "_item").replace(".", "_")  # "$.data.series[]" -> "data_series_item"
        struct = msgspec.defstruct(f"{self.title}_{where}" if where else self.title, fields, kw_only=True,
                                   forbid_unknown_fields=extra is False)
        _STRUCT_TYPES.append(struct)
        return struct


@lru_cache(maxsize=None)
def compile_schema(schema_str: str) -> msgspec.json.Decoder:
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
        return msgspec.json.Decoder(compiler.node(schema, "$"))
    except (TypeError, ValueError) as err:  # msgspec refuses a type or a constraint the walk built
        raise SchemaCompileError(f"{compiler.title}: {err}") from err
