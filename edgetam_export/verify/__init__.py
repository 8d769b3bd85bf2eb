"""Parity: the one metrics module, the one tolerance table, and verifying a bundle against the reference."""
