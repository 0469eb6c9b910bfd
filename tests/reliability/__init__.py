"""Reliability: kill-and-resume, determinism, bad input, integrity, collapse warnings."""
