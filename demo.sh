#!/usr/bin/env bash
# `make demo`: picl's main job on the reference cluster, step by step.
set -euo pipefail
cd "$(dirname "$0")"
PICL=.venv/bin/picl
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "picl validate: the reference three-node cluster (cluster.toml)"
$PICL validate

step "a typo is caught with file, line and key, before anything touches a node"
broken=$(mktemp -d)
trap 'rm -rf "$broken"' EXIT
sed 's/^address = "10.1.10.241"/adress = "10.1.10.241"/' cluster.toml > "$broken/cluster.toml"
$PICL --spec "$broken/cluster.toml" validate || echo "(exit $?)"
