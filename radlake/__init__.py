"""radlake domain package: DICOM I/O, de-identification, pseudonyms, object storage, radiomics, settings.

Code shared by several parts of the system (``infra``, ``nifi``, ``streams``, ``spark_jobs``,
``inference_workers``) lives here; each of those parts imports its contracts from ``lake_schemas``.
"""

__version__ = "0.1.0"
