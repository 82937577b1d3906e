"""Benchmarks: decart_sync against bare aiortc and the official SDK, in one run.

python -m benchmarks              # full run (see docs/benchmarks.md for the figures)
python -m benchmarks --smoke      # a few seconds, no speed targets: CI keeps it alive
"""
