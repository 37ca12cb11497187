"""Benchmarks: `python -m bench [section ...] [--events N]` (what `make bench` runs).

Each section measures one part of the platform against raw baselines on its own
embedded PostgreSQL and broker, prints one table and merges its figures into
bench-results.json under keys prefixed with the section name.
"""
