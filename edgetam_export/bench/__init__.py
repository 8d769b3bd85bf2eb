"""Benchmarks: bench packs, the host runner, results, reports, and the checks of the device runners."""
