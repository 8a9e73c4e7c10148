# bandmate: setup, demo and tests on Debian 12 (as root it installs the system packages itself;
# as a normal user it prints the apt-get command to run and carries on).
#
#   make setup   system packages (if missing) + .venv with the project and its test/bench extras
#   make demo    setup, then `bandmate demo`
#   make test    setup, then pytest (the tests start their own jackd through a fixture)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.bandmate-setup-stamp
# python3/python3-venv: a fresh Debian has no venv module (ensurepip) without python3-venv.
# mosquitto: the MQTT tests start their own broker; openssl makes their TLS certificates;
# iproute2 (ip) sets up loopback multicast in the Link test's network namespace.
APT_PACKAGES := python3 python3-venv jackd2 libjack-jackd2-dev libportaudio2 libsndfile1 sox mosquitto openssl iproute2

.PHONY: setup system-packages demo test clean

setup: system-packages $(STAMP)

system-packages:
	@if ! command -v dpkg >/dev/null 2>&1; then \
	  echo "make setup: no dpkg here; install the equivalents of: $(APT_PACKAGES)"; exit 0; fi; \
	missing=""; \
	for p in $(APT_PACKAGES); do \
	  case "$$(dpkg -s "$$p" 2>/dev/null || true)" in \
	    *"Status: install ok installed"*) ;; \
	    *) missing="$$missing $$p" ;; \
	  esac; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "make setup: installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q; \
	  apt-get install -y -q --no-install-recommends$$missing </dev/null; \
	else \
	  echo "make setup: missing Debian packages:$$missing"; \
	  echo "make setup: run:  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; \
	  echo "make setup: continuing without them (JACK tests and audio will fail until then)"; \
	fi

# Rebuilt when pyproject.toml changes or the venv is gone/broken; otherwise a rerun is instant.
$(STAMP): pyproject.toml
	@if ! $(VENV)/bin/python -c 'import sys' >/dev/null 2>&1; then \
	  echo "make setup: creating $(VENV) with $$(command -v $(PYTHON))"; \
	  rm -rf $(VENV); \
	  $(PYTHON) -m venv $(VENV); \
	fi
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-input --progress-bar off -q -e '.[test,bench,words]'
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/bandmate demo

# The kernels are compiled (or loaded from Numba's cache) once before pytest, so no test's own
# timeout has to cover a cold compile of the whole engine.
test: setup
	$(VENV)/bin/python -m engine.control.warmup
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
