"""Provider ingestion: the edge's request handling (STOW-RS, archives, manifests) and the provider-side client.

- :mod:`radlake.ingest.stow_rs` — PS3.18 STOW-RS: ``multipart/related`` parsing and the store response;
- :mod:`radlake.ingest.edge` — what one request becomes: de-identified instances (radlake's engine),
  stored objects, ``instance received`` / ``quarantined`` / ``study manifest`` events;
- :mod:`radlake.ingest.tokens` — per-provider endpoint tokens kept in Vault KV v2;
- :mod:`radlake.ingest.publish` — registry-validated publishing (Confluent wire format) with acknowledgements;
- :mod:`radlake.ingest.journal`, :mod:`radlake.ingest.client` — ``radlake upload`` and its resumable journal;
- :mod:`radlake.ingest.reconcile` — ``radlake ingest report``: journal vs object store vs topic.

The NiFi processor ``nifi/python/extensions/ingest_dicom.py`` is a thin adapter around :mod:`edge`.
"""
