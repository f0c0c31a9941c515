"""Resilience scenarios, the benchmark report and profiles for bread; the load generator and
the system they run against are harness/'s.

python -m harness.load --target 127.0.0.1:8088 -c 100 -t 20S    # siege-like load
python -m bench.scenario slow-pay                               # `make load SCENARIO=...`
python -m bench.benchmark                                       # `make bench` (wrk, h2load)
python -m bench.profile order                                   # `make profile SERVICE=order`
"""
