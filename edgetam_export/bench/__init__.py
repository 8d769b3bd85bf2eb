"""Benchmarks: bench packs (captured I/O + plan), the host runner, statistics, profiles and reports.

See docs/BENCHMARKS.md for the protocol, ``benchmarks/schema/`` for the pack format and result schema.
"""
