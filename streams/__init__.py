"""Study completion: pure decision functions (``completion``, ``dedupe``, ``series_summary``) and the
transactional Kafka worker around them (``worker``), started by ``radlake streams run``."""
