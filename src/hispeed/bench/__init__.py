"""Benchmarks run on demand by `hispeed bench ...`; they print figures and never fail on time."""
