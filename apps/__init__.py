"""The ``radlake`` command (``apps.cli``) and one module per subcommand. Nothing imports this package."""
