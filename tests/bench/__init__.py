"""Benchmarks: commands that print figures and ratios (no timing is ever asserted)."""
