# picl's entry points. `make demo` and `make test` work as root on a fresh Debian 12.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PICL   := $(BIN)/picl
# Debian packages picl needs on the operator's machine: the venv, ssh and git for
# reaching nodes, and what the lab builds and boots its nodes with (qemu: `lab up --vm`).
APT_PACKAGES := python3-venv python3-dev gcc git openssh-client iproute2 \
                debootstrap systemd-container iputils-ping procps \
                qemu-system-x86 qemu-utils e2fsprogs

.PHONY: setup test test-arm64 test-vm demo lint docs bench bench-arm64 clean

setup: $(VENV)/.installed

$(VENV)/.apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.installed: $(VENV)/.apt pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

# Every test but those of arm64 nodes: an arm64 image's cold build (every maintainer script
# under qemu-user) alone takes longer than the rest of the suite; they run apart, below. The VM
# node tests are in (about 15 minutes of emulated boots); test-vm runs them alone.
test: setup
	$(BIN)/pytest -m "not arm64"

test-arm64: setup
	$(BIN)/pytest -m arm64

test-vm: setup
	$(BIN)/pytest -m vm

lint: setup
	$(BIN)/ruff check picl deploy facts transport operate reconciler tests
	$(BIN)/mypy picl deploy facts transport operate reconciler

# The reference docs are generated from the code; a test fails when they are stale.
docs: setup
	$(BIN)/python -m picl.reference

demo: setup
	./demo.sh

# Every figure in docs/benchmarks.md, from nothing: about 45 minutes on 2 cores. The lab's own
# benchmark (bench/lab.py: image build, up and down) runs apart: it empties the image cache.
BENCH_COMPARE ?= --nodes 3 10 30 --runs 3 --converge-runs 2
bench: setup
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/compare.py $(BENCH_COMPARE)
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/read.py --as after
	$(BIN)/python bench/agent.py
	.venv-bench/bin/python bench/report.py

# The agent on an arm64 primary (emulated by qemu-user): apart, as make test-arm64, its image
# alone takes 84 minutes cold. Its section of docs/benchmarks.md is rewritten with the others.
bench-arm64: setup
	$(BIN)/python bench/agent.py --nodes 3 --runs 5 --arch node0=arm64 --idle 60 \
		--lab agentbench-arm64 --out bench/results/agent-arm64.json
	.venv-bench/bin/python bench/report.py

clean:
	-$(PICL) lab down --all
	rm -rf $(VENV) .venv-bench build dist *.egg-info
