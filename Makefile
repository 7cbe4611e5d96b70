# The course in two commands:
#   make lab    install everything, start the databases, open JupyterLab on the course
#   make test   install everything, start the databases, run the whole test suite
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export PLOOMBER_STATS_ENABLED := false
export PYDEVD_DISABLE_FILE_VALIDATION := 1

LAB_PORT ?= 8888
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test install services stop status reset build release help

help:
	@echo "make lab      install, start the databases, open JupyterLab on the course"
	@echo "make test     install, start the databases, run every test (what CI runs)"
	@echo "make services | stop | status | reset   manage the database servers"
	@echo "make build    authors: execute solutions/ and regenerate notebooks/"

install:
	@scripts/install.sh

services: install
	@dbcourse services up --install

lab: services
	jupyter lab --ServerApp.root_dir="$(CURDIR)" --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
	  $(ALLOW_ROOT) notebooks/00_start_here.ipynb

test:
	@scripts/test.sh

stop: install
	@dbcourse services down

status: install
	@dbcourse services status

reset: install
	@dbcourse services reset

build: install
	IPYTHONDIR="$(CURDIR)/tests/ipython" dbcourse build

release: install
	dbcourse release
