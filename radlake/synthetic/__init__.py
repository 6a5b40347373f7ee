"""Synthetic data generators for tests and benchmarks (no real patient data)."""
