# Load scenarios and the benchmark (bench/). Each starts its own whole bread on free ports.
#   make load SCENARIO=slow-pay                    the reference's siege run: 100 clients, 20 s
#   make load SCENARIO=hung-pay CLIENTS=50 DURATION=10 DELAY=1 PROTOCOL=grpc
#   make load SCENARIO=slow-pay TOOL=siege         loaded by the real siege (apt-get install siege)
SCENARIO ?= slow-pay
TOOL ?= bench
LOAD_ARGS = $(if $(CLIENTS),-c $(CLIENTS)) $(if $(DURATION),-t $(DURATION)) \
	$(if $(DELAY),-d $(DELAY)) $(if $(PROTOCOL),--protocol $(PROTOCOL)) --profile $(DB) --tool $(TOOL)

load: setup ## resilience scenario SCENARIO=slow-pay|failing-pay|hung-pay|recovery|all (TOOL=siege)
	$(PY) -m bench.scenario $(SCENARIO) $(LOAD_ARGS)

bench: setup ## benchmark vs a no-op baseline, markdown table also in bench/results/latest.md
	$(PY) -m bench.benchmark

.PHONY: load bench
