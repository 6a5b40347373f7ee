"""Exceptions of the contracts package."""


class RadlakeError(Exception):
    """Root of every exception radlake raises. It lives in the contracts package because that is the one
    package every other part may import."""


class LakeSchemaError(RadlakeError):
    """Base of lake_schemas errors."""


class SchemaViolation(LakeSchemaError):
    """An event does not match its registered schema (at produce or at consume)."""


class RegistryError(LakeSchemaError):
    """The schema registry refused or could not be reached."""


class SchemaCompileError(LakeSchemaError):
    """A schema uses a keyword the compiled validator does not implement, so it cannot be enforced."""
