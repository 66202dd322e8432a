"""Benchmarks of Converge: `python -m bench [--quick]` writes docs/BENCHMARKS.md and out/bench.json.

Machines here are shared and noisy, so every figure is a ratio against a baseline measured in the same run,
or a count. Nothing in this package is deployed.
"""
