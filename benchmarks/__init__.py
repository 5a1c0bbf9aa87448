"""Benchmarks run from the repository checkout: ``python -m benchmarks.<name>``."""
