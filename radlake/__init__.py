"""The domain: DICOM I/O, de-identification and pseudonyms, radiomics, imaging, synthetic data.

Pure logic that every component may use; it imports no infrastructure client (Kafka, Vault, HTTP,
object stores, Spark, Delta): those are the platform layer's (``platform_layer``).
"""

__version__ = "0.1.0"
