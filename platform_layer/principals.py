"""The names of the platform's principals (no imports: the NiFi edge's runtime reads them too).

What each may do in Vault is in :mod:`platform_layer.vault`; in Kafka, in :mod:`platform_layer.identities`.
"""

from __future__ import annotations

ADMIN_ROLE = ADMIN_POLICY = "radlake-admin"
EDGE_TOKEN_ROLE = "radlake-edge"
RUN_TOKEN_ROLE = "radlake-deid-run"
# Prometheus reading OpenBao's own metrics (sys/metrics, nothing else)
METRICS_TOKEN_ROLE = METRICS_POLICY = "radlake-metrics"

# Kafka principals (SCRAM users); the administrator is a Kafka super user, the others get ACLs.
KAFKA_ADMIN = "radlake-admin"
KAFKA_EDGE = "radlake-edge"
KAFKA_STREAMS = "radlake-streams"
KAFKA_LAKE = "radlake-lake"
KAFKA_RADIOMICS = "radlake-radiomics"
KAFKA_INFERENCE = "radlake-inference"
KAFKA_MONITORING = "radlake-monitoring"  # the consumer-lag exporter: describes topics and groups, reads nothing
KAFKA_RESULTS_BRIDGE = "radlake-results-bridge"  # reads the result topics, writes nothing, commits nothing
KAFKA_PRINCIPALS = (KAFKA_ADMIN, KAFKA_EDGE, KAFKA_STREAMS, KAFKA_LAKE, KAFKA_RADIOMICS, KAFKA_INFERENCE,
                    KAFKA_MONITORING, KAFKA_RESULTS_BRIDGE)
