# Two commands do everything on a fresh machine:
#   make serve   install, serve on :8089 at once, train the missing models beside it (quick)
#   make test    install and run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# cpu (tensorflow-cpu) or gpu (tensorflow with CUDA)
FLAVOUR ?= cpu
PROFILE ?= quick
# The port and the models folder are the app's own settings: TFSERVE_PORT and TFSERVE_MODEL_DIR
# from the environment, else from .env, else 8089 and models/. On the command line,
# `make serve PORT=9000 MODELS_DIR=/data/models` overrides them.
MODELS_DIR ?= $(shell $(PY) -c 'from app.settings import Settings; print(Settings().model_dir)' \
	2>/dev/null || echo models)
# Keras' cache. Offline machines seed it with symlinks to a local copy of the data.
export KERAS_HOME ?= $(CURDIR)/.keras
OFFLINE_DATA ?= $(CURDIR)/../shared/keras
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install keras-cache models models-full serve test test-long test-all lint clean compose-test swarm-test browser-test bench-grpc \
	fuzz overload soak bench profile drift

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(FLAVOUR),dev]'
	@# TF Serving's protos (model config, warm-up records). Its wheel requires the `tensorflow`
	@# distribution, which tensorflow-cpu provides under another name: no deps, on purpose.
	$(PY) -m pip install -q --no-deps 'tensorflow-serving-api==2.21.0'
	touch $@

# Symlink tree of the offline data into a writable Keras cache; a no-op when there is none.
keras-cache: install
	@if [ -d "$(OFFLINE_DATA)" ]; then $(PY) -m training.cache "$(OFFLINE_DATA)"; fi

models: install keras-cache
	$(PY) -m training all --profile $(PROFILE) --missing-only --models-dir $(MODELS_DIR)

models-full: install keras-cache
	$(PY) -m training all --profile full --models-dir $(MODELS_DIR)

# the server starts at once; the models it lacks are trained beside it, fastest first
serve: install keras-cache
	$(if $(filter command line,$(origin PORT)),TFSERVE_PORT=$(PORT)) \
		$(PY) -m training.serve --profile $(PROFILE) --models-dir $(MODELS_DIR)

# lint first: a style error fails fast. `make test` leaves out the tests marked `long` (load,
# soak, overload, processes, training runs): `make test-long` runs those, `make test-all` both
# (what CI runs).
test: lint keras-cache
	$(PY) -m pytest -m "not long"

test-long: install keras-cache
	$(PY) -m pytest -m long

test-all: test test-long

lint: install
	$(VENV)/bin/ruff check app training tests bench deploy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Build the image, run the compose stack (2 API replicas behind nginx), predict, tear down.
# Needs a Docker engine (here: ../shared/tools/docker-sandbox) and trained models.
# long runs, never part of `make test`
fuzz: install keras-cache
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} FUZZ_SEED=$${FUZZ_SEED:-$$RANDOM} $(PY) -m pytest -s tests/test_fuzz.py

# a 1 s queue-delay target, as behind a retrying proxy; QUEUE_DELAY_MS=0: the server's default
QUEUE_DELAY_MS ?= 1000
overload: models
	$(PY) -m bench.overload --models-dir $(MODELS_DIR) --max-queue-delay-ms $(QUEUE_DELAY_MS)

# prediction monitoring on real data: ok for what the models were trained on, drift for the rest
drift: models
	$(PY) -m bench.drift --models-dir $(MODELS_DIR)

# 20 minutes of mixed traffic at 70% of capacity with versions rotating: drift checks and a plot
soak: models
	$(PY) -m bench.soak --models-dir $(MODELS_DIR) --docs docs

# tfserve vs the in-process call, plain FastAPI, LitServe, the no-model floor (needs wrk)
BENCH_IMAGE ?= $(wildcard ../shared/samples/images/koala.jpg)
bench: models
	$(VENV)/bin/pip install -q -e '.[$(FLAVOUR),dev,bench]'
	$(PY) -m bench run --models-dir $(MODELS_DIR) $(if $(BENCH_IMAGE),--image $(BENCH_IMAGE)) \
		--docs docs/BENCHMARKS.md

# gRPC against the JSON route (h2load and wrk: apt-get install nghttp2-client wrk)
bench-grpc: models
	$(PY) -m bench.grpc --models-dir $(MODELS_DIR) --docs docs/BENCHMARKS.md

# py-spy samples of the server under mnist load (ROUTED=1: through FastAPI's router)
profile: models
	$(VENV)/bin/pip install -q -e '.[$(FLAVOUR),dev,bench]'
	$(PY) -m bench.profile --models-dir $(MODELS_DIR) $(if $(ROUTED),--routed)

compose-test: models
	$(PY) deploy/compose_check.py --models-dir $(MODELS_DIR)

# A real two-node Docker Swarm (../shared/tools/swarm-sandbox): deploy deploy/stack.yml, then
# a rolling update, scaling, a killed node and `stack rm`, all under 64 connections.
swarm-test: models
	$(PY) deploy/swarm_check.py --models-dir $(MODELS_DIR)

# Swagger UI's "Try it out" in headless Chromium (installs Debian's chromium + driver).
browser-test: install keras-cache
	@command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	$(PY) -m pytest tests/browser -p no:cacheprovider
