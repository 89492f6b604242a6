"""Benchmarks: each one is measured against a raw baseline on this machine.

`python -m bench.run` runs them and rewrites bench/RESULTS.md; nothing here asserts a time.
"""
