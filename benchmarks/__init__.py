"""Benchmarks of storage_core: ours, the raw driver floor and the original.

Run ``nox -s bench`` or ``python -m benchmarks --help``. Not part of CI's tests.
"""
