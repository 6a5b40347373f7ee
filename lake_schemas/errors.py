"""Exceptions of the contracts package."""


class LakeSchemaError(Exception):
    """Base of lake_schemas errors."""


class SchemaViolation(LakeSchemaError):
    """An event does not match its registered schema (at produce or at consume)."""


class RegistryError(LakeSchemaError):
    """The schema registry refused or could not be reached."""


class SchemaCompileError(LakeSchemaError):
    """A schema uses a keyword the compiled validator does not implement, so it cannot be enforced."""
