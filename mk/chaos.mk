# Chaos against a running `make run` (in another terminal): real faults under steady order
# load, then an audit of every order (ops/chaos.py; tests/chaos runs the same scenarios).
# `make run EDGE_RATE_LIMIT=0 FAULT_INJECTION=on ...`: the load is one caller, far above the
# edge's per-caller limit, and kill-replica holds Pay calls open with pay's fault switch.
#   make chaos                                    the layout `make run` got: give the same
#   make chaos DB=polyglot REPLICAS=2             DB and REPLICAS as it
#   make chaos SCENARIOS="broker-outage races"    only some of them
# It stops and starts the local RabbitMQ, PostgreSQL and MariaDB, always starting them again.

chaos: setup ## break the broker, databases and replicas of a running `make run` under load; audit every order (SCENARIOS=...)
	$(PY) -m ops.chaos --profile $(DB) --replicas $(REPLICAS) $(if $(SCENARIOS),--only $(SCENARIOS))

.PHONY: chaos
