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

# make bench                    wrk and h2load against every row, then a 60 s sustained run
# make bench SUSTAINED=20        a shorter sustained run (0: none)
# make profile SERVICE=order SECONDS=20    py-spy flame graph under POST /orders load
# make soak MINUTES=30 RATE=50   steady load; each process's RSS every 30 s, levelled off or not
bench: setup ## wrk/h2load rows vs same-run baselines, 60 s sustained run (SUSTAINED=s); bench/results/latest.md
	$(PY) -m bench.benchmark $(if $(SUSTAINED),--sustained $(SUSTAINED))

profile: setup ## py-spy flame graph of SERVICE=order|pay|bakery|customer under POST /orders load (SECONDS=20), in var/
	$(PY) -m bench.profile $(or $(SERVICE),order) --seconds $(or $(SECONDS),20)

soak: setup ## does memory level off? steady orders (RATE=50/s) for MINUTES=30, RSS every 30 s
	$(PY) -m bench.soak --minutes $(or $(MINUTES),30) --rate $(or $(RATE),50)

.PHONY: load bench profile soak
