#!/usr/bin/env bash
# `make demo`: picl's main job on a local lab of the reference cluster:
# validate, plan, apply, a drift made by hand, its plan and its repair, and at the end
# what the cluster is for: an MPI program compiled on node0 and run across every node, by hand
# and as a Slurm job, and the cluster seen from outside: the agent's metrics, scraped by
# Prometheus on node0.
# KEEP=1 leaves the lab running afterwards (`picl lab down` removes it).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PWD/.venv/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

work=$(mktemp -d)
cleanup() {
  if [ -z "${KEEP:-}" ]; then step "picl lab down"; picl lab down; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Lab-only secrets, outside the repository: a real cluster keeps its own secrets.toml.
secrets="$work/secrets.toml"
printf 'wifi_psk = "lab-only-not-a-secret"\nroot_password_hash = "%s"\n' \
  "$(openssl passwd -6 picl-lab)" > "$secrets"
chmod 600 "$secrets"
export PICL_SECRETS="$secrets"
# The reference cluster, its compute layer ([mpi], [slurm]: examples/mpi.toml, examples/slurm.toml)
# and its monitoring ([metrics], [[notify]]: examples/metrics.toml), as one spec.
mkdir "$work/spec" && cat cluster.toml examples/mpi.toml examples/slurm.toml examples/metrics.toml \
  > "$work/spec/cluster.toml"
export PICL_SPEC="$work/spec/cluster.toml"

step "picl validate: the reference three-node cluster (cluster.toml, with examples/mpi.toml, slurm.toml and metrics.toml)"
picl validate

step "a typo is caught with file, line and key, before anything touches a node"
sed 's/^address = "10.1.10.241"/adress = "10.1.10.241"/' "$PICL_SPEC" > "$work/cluster.toml"
picl --spec "$work/cluster.toml" validate || echo "(exit $?)"

step "picl lab up: one container per node, a freshly flashed Raspberry Pi OS Lite (bookworm)"
picl lab up
picl lab status

step "picl --lab plan: fresh cards, everything to do (what picl needs installed first)"
picl --lab plan --detailed-exitcode || echo "(exit $?: changes pending)"

step "picl --lab apply --yes"
picl --lab apply --yes

step "picl --lab plan: converged"
picl --lab plan --detailed-exitcode && echo "(exit 0: nothing to do)"

step "drift: someone edits /etc/hosts on node1 and switches node2 to the desktop"
picl lab ssh node1 -- "sed -i '/^# END picl/i 10.1.10.99 rogue' /etc/hosts"
picl lab ssh node2 -- systemctl set-default graphical.target
picl --lab plan --detailed-exitcode || echo "(exit $?: drift found)"

step "repair: picl --lab apply --yes, then the plan is empty again"
picl --lab apply --yes
picl --lab plan --detailed-exitcode && echo "(exit 0: converged)"

step "picl --lab agent install: the primary becomes the control node (installed offline)"
picl --lab agent install

step "git push to the primary: the agent converges the lab"
repo="$work/repo"; mkdir "$repo"; cp "$PICL_SPEC" "$repo/"
printf '\n[[files]]\npath = "/etc/motd"\ncontent = "arrakis: the spice must flow\\n"\n' >> "$repo/cluster.toml"
git -C "$repo" init -q -b main && git -C "$repo" add cluster.toml
git -C "$repo" -c user.name=demo -c user.email=demo@example.org commit -q -m "a message of the day"
picl lab exec -- git -C "$repo" push -q ssh://federico@10.1.10.240/srv/picl/cluster.git main
sha=$(git -C "$repo" rev-parse HEAD)
for _ in $(seq 120); do picl --lab status --json | grep -q "\"applied\": \"$sha\"" && break; sleep 1; done
picl --lab status
picl lab ssh node2 -- cat /etc/motd

step "metrics: the agent's endpoint (wired address only), and Prometheus on node0 asked for it"
picl --lab status --json | grep '"metrics"'
picl lab exec -- curl -sf http://10.1.10.240:10105/metrics | grep -E '^picl_(ready|node_converged)'
for _ in $(seq 90); do
  picl lab exec -- curl -sf 'http://10.1.10.240:9090/api/v1/query?query=picl_node_converged' \
    | grep -q node2 && break; sleep 1; done
picl lab exec -- curl -sf 'http://10.1.10.240:9090/api/v1/query?query=picl_node_converged'; echo

step "the primary's LED strip, drawn here: every node converged"
picl --lab leds show --backend terminal --frames 4

step "MPI: plain mpirun on node0 as federico uses every node (hostfile and pinning by picl)"
picl lab ssh node0 -- cat /etc/openmpi/openmpi-default-hostfile
picl lab ssh node0 -- "cat > /tmp/pi.c" < examples/pi.c
# The container lab has no NFS: the binary goes to the same path on every node with scp and
# the cluster key (on boards, it is compiled into the NFS share and every node sees it).
picl lab ssh node0 -- "runuser -u federico -- sh -c 'cd && mpicc -O2 -o pi /tmp/pi.c -lm \
  && for n in node1 node2; do scp -q pi \$n:; done && mpirun ./pi'"

step "Slurm: jobs queue on node0 (munge key, slurm.conf and daemons by picl)"
picl lab ssh node0 -- sinfo -N
picl lab ssh node0 -- "runuser -u federico -- sh -c 'cd && srun -N 3 hostname \
  && sbatch --wait -N 3 --ntasks-per-node=1 -o pi.out --wrap \"mpirun ./pi\" && cat pi.out'"
