"""Benchmarks of resilient-session against plain requests; ``python -m benchmarks`` runs them all."""
