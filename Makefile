# Two-command set-up: `make demo` and `make test` each install what they need, idempotently.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Debian packages the tests and the demo use (real peers for the lab bench).
APT_PACKAGES := python3-venv snmp snmpd

.PHONY: demo test lint deps apt-deps snmpsim

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

deps: apt-deps $(STAMP)

# snmpsim (the lab's UPS agent engine) in its own venv from Debian's python3, readable by
# `nobody` because snmpsim refuses to run as root (path: python -m lab.snmpsim_env prints it).
snmpsim: deps
	$(VENV)/bin/python -m lab.snmpsim_env

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint snmpsim
	$(VENV)/bin/pytest -q

demo: deps snmpsim
	$(VENV)/bin/cchub demo
