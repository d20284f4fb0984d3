"""Benchmarks of the platform against hand-written SQLAlchemy code doing the same work.

Run them with ``python -m benchmarks.run``; BENCHMARKS.md explains each one and keeps
the figures of the last full run.
"""
