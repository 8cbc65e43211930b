# Every public target depends on `setup`, so `make demo` or `make test` alone
# prepares a fresh machine. `setup` is idempotent: it reruns only when
# pyproject.toml changes or the venv is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FIXTURES := build/fixtures
DEMO := build/demo

.PHONY: setup demo test bench clean system-deps

setup: system-deps $(STAMP)

# espeak-ng speaks the offline demo corpora; its shared library gives word timings.
system-deps:
	@if ! command -v espeak-ng >/dev/null || ! ldconfig -p | grep -q libespeak-ng.so.1; then \
	  echo "installing espeak-ng (apt-get)"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q espeak-ng; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch 2.13.0 is the CPU build in the local wheel cache; asking for it first keeps
	# pip from pulling a multi-GB CUDA build for the align extra
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,align]'
	touch $(STAMP)

demo: setup
	$(PY) -m streamaudio fixtures $(FIXTURES)
	$(PY) -m streamaudio build --catalog manifests/demo.yaml --out $(DEMO)
	$(PY) -m streamaudio validate $(DEMO)

test: setup
	$(PY) -m pytest -q --durations=20

bench: setup
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_pools.py
	$(PY) benchmarks/bench_align.py
	$(PY) benchmarks/bench_llm.py
	$(PY) benchmarks/bench_scan.py

clean:
	rm -rf build
