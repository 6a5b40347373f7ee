"""Provider ingestion: the edge's request handling (STOW-RS, archives, manifests) and the provider-side client.

- :mod:`nifi.edge.stow_rs` — PS3.18 STOW-RS: ``multipart/related`` parsing and the store response;
- :mod:`nifi.edge.edge` — what one request becomes: de-identified instances (radlake's engine),
  stored objects, ``instance received`` / ``quarantined`` / ``study manifest`` events;
- :mod:`nifi.edge.tokens` — per-provider endpoint tokens kept in Vault KV v2;
- :mod:`nifi.edge.publish` — registry-validated publishing (Confluent wire format) with acknowledgements;
- :mod:`nifi.edge.journal`, :mod:`nifi.edge.client` — ``radlake upload`` and its resumable journal;
- :mod:`nifi.edge.reconcile` — ``radlake ingest report``: journal vs object store vs topic.

The NiFi processor ``nifi/python/extensions/ingest_dicom.py`` is a thin adapter around :mod:`edge`.
"""
