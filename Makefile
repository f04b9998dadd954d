# Two-command set-up: `make demo` and `make test` each install what they need, idempotently.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Debian packages the tests and the demo use (real peers for the lab bench).
APT_PACKAGES := python3-venv snmp snmpd
# SIP peers for the signalling tests and benchmarks: SIPp, baresip, Kamailio.
APT_PACKAGES += sip-tester baresip kamailio
# Media engine: Opus and G.722 (spandsp) through ctypes; opus-tools reads recordings back in tests.
APT_PACKAGES += libopus0 libspandsp2 opus-tools
# UPS: NUT's real upsd + dummy-ups for the nut simulator, upsc for its tests.
APT_PACKAGES += nut-server nut-client
# Monitoring peers: an MQTT broker and its clients, a Modbus master CLI.
APT_PACKAGES += mosquitto mosquitto-clients mbpoll
# The hub's own SNMP agent: snmptrapd receives its notifications in tests; smilint (smitools)
# checks mibs/CCHUB-MIB.txt, with SNMPv2-SMI/TC/CONF as text from erlang-snmp (Debian's
# libsmi leaves the IETF modules out for licence reasons).
APT_PACKAGES += snmptrapd smitools erlang-snmp

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
