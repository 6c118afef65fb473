# The contract: `make up` brings up a local cluster on a fresh Debian 12
# machine (as root, installing what it needs); `make test` runs every test;
# `make down` stops the cluster and removes what it created.
.PHONY: up down test unit lint protos check-protos bench deps images
.PHONY: dist ansible-lint vagrant-box vagrant-smoke

VENV := .venv
PY := $(VENV)/bin/python

deps:
	bash hack/install-deps.sh

up: deps
	bash hack/start-docker.sh
	bash hack/build-images.sh
	$(VENV)/bin/kubelite-up

down:
	@if [ -x $(VENV)/bin/kubelite-down ]; then $(VENV)/bin/kubelite-down; fi

test: deps
	bash hack/test.sh

unit: deps
	$(PY) -m pytest -q tests/unit

lint: deps
	$(VENV)/bin/ruff check .

protos: deps
	bash hack/gen-protos.sh

check-protos: deps
	bash hack/gen-protos.sh --check

images: deps
	bash hack/start-docker.sh
	bash hack/build-images.sh --force

bench: deps
	$(PY) bench/api_latency.py

# Real deployments (deploy/, ansible/, Vagrantfile). dist: the wheel, its
# dependencies as wheels for the hosts, uv and the images (hack/build-dist.sh).
dist: deps
	bash hack/build-dist.sh

ansible-lint: deps
	cd ansible && ../$(VENV)/bin/ansible-lint && ../$(VENV)/bin/ansible-playbook -i inventory/sample/hosts.ini --syntax-check cluster.yml tests/smoke.yml

# The Debian 12 libvirt box (hack/build-vagrant-box.sh), and the whole real-VM
# check: box, vagrant up with libvirt, provisioning twice, ansible/tests/smoke.yml,
# destroy (hack/vagrant-smoke.sh; about 36 minutes on 2 cores under emulation,
# 2.3 GB per VM).
vagrant-box:
	bash hack/build-vagrant-box.sh

vagrant-smoke: deps
	bash hack/vagrant-smoke.sh
