"""Benchmarking: bench packs, host and on-device runners, result JSON (benchmarks/schema/)."""
