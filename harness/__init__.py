"""The system under test, started and stopped for tests, bench/ and `make chaos` alike.

Real service processes on free ports, a real Envoy, each run's own broker objects and
databases (system.py), and the load generator and checkers that judge a run (load.py,
invariants.py, envoy_stats.py). tests/ and bench/ both build on this package and never on
each other.
"""
