"""The platform layer: what every component shares and none owns.

Settings, where each service is (``endpoints``), Kafka clients and topic creation (``kafka``), the
registry serde (``serde``, ``registration``), Vault clients (``vault``), the identity provider (``identity_provider``,
``realm``, ``realm_roles``, ``device_authorization``, ``user_session``), the Spark session (``spark``),
the object store (``object_store``) and Java discovery (``java``). Components (``infra``, ``nifi``,
``streams``, ``spark_jobs``, ``inference_workers``) import this layer; it imports none of them.
"""
