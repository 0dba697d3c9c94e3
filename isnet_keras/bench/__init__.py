"""Benchmarks runnable from the `isnet bench` command."""
