"""Benchmarks of Converge: `python -m bench [--quick]` writes out/BENCHMARKS.md and out/bench.json (a full run with
`--update-docs`, as `make bench` does, writes docs/BENCHMARKS.md instead).

Machines here are shared and noisy, so every figure is a ratio against a baseline measured in the same run,
or a count. Nothing in this package is deployed.
"""
