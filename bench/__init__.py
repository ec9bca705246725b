"""Benchmarks: commands that measure, never part of the test run."""
