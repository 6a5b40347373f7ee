"""Study completion streams: pure decision functions (``completion``, ``dedupe``, ``series_summary``)
and the faust adapter around them (``app``), started by ``radlake streams run``."""
