"""Benchmarks, run on demand (``python -m benchmarks NAME``), never as tests.

Each benchmark repeats its measurement, reports median and spread, and writes
``benchmarks/results/NAME.json`` plus ``NAME.md`` (the table docs/performance.md,
docs/results.md or docs/reliability.md quotes), stamped with the machine it ran on.
"""
