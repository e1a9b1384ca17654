"""Benchmarks: figures and ratios, printed; never timed assertions in tests."""
