"""The admin console: a web front for platform administrators over what the components expose (the overview of
``radlake status``, Prometheus's series, quarantine triage, dead-letter replay). It sits above the components,
like the commands, because it reads several of them; nothing below imports it."""
