"""The platform's own monitoring processes: the Kafka consumer-lag exporter and the alert webhook receiver.

Prometheus and Alertmanager themselves are started by ``infra`` (``radlake stack up monitoring``), which also
writes their configuration; these are the two small radlake processes beside them.
"""
