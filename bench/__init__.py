"""Benchmarks of the portal against a bare Flask page (``make bench``, see bench/README.md)."""
