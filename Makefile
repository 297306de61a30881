# Entry points. Every target that needs tools installs them first (scripts/bootstrap.sh).
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python

.PHONY: demo evacuate test bootstrap units sanity lint integration lab-up lab-down lab-status bench

## The main job against the local two-host lab.
demo: lab-up
	$(VENV)/bin/ansible-playbook playbooks/kae_migrate.yml

## Drain a lab host of its guests (HOST=kae-lab-a by default), measured, with the fleet report.
HOST ?= kae-lab-a
evacuate: lab-up
	$(VENV)/bin/ansible-playbook playbooks/kae_evacuate.yml -e kae_evacuate_host=$(HOST) -e kae_evacuate_all_guests=true

## Everything CI runs: units, sanity, lint, lab integration.
test: bootstrap
	scripts/test.sh all

bootstrap:
	scripts/bootstrap.sh

units: bootstrap
	scripts/test.sh units

sanity: bootstrap
	scripts/test.sh sanity

lint: bootstrap
	scripts/test.sh lint

integration: bootstrap
	scripts/test.sh integration

lab-up: bootstrap
	$(PY) lab/kaelab.py up

lab-status:
	$(PY) lab/kaelab.py status

lab-down:
	$(PY) lab/kaelab.py down

bench: bootstrap
	$(PY) bench/trace_extract.py
	$(PY) bench/preflight_scan.py
