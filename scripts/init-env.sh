#!/usr/bin/env bash
# Creates .env on first run (and adds any setting a newer lab introduced), never overwriting a
# value that is already there: a random Grafana admin password, the Grafana profile, and each
# variant's CPU quota (2 cores, or the Docker host's CPU count if lower: Docker refuses more).
set -euo pipefail
cd "$(dirname "$0")/.."
file=.env
touch "$file"

cpus=$(docker info --format '{{.NCPU}}' 2>/dev/null || nproc)
[[ $cpus =~ ^[0-9]+$ ]] || cpus=$(nproc)
default_cpus=$(( cpus < 2 ? cpus : 2 ))

added=()
set_default() { # KEY VALUE COMMENT
  if ! grep -qE "^$1=" "$file"; then
    printf '# %s\n%s=%s\n' "$3" "$1" "$2" >>"$file"
    added+=("$1")
  fi
}

set_default GRAFANA_ADMIN_PASSWORD "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" "Grafana's admin password (generated; anonymous users get read-only access)"
set_default COMPOSE_PROFILES grafana "compose profiles to start: grafana (empty leaves Grafana out)"
for variant in sync eventloop generators threads threadpool processes processpool cluster gil; do
  set_default "${variant^^}_CPUS" "$default_cpus" "CPU quota of the $variant container, in cores (live: docker update --cpus N concurrency-lab-$variant-1)"
done
set_default THREADPOOL_POOL_SIZE "" "threadpool workers; empty sizes the pool from its CPU quota at start"
set_default PROCESSPOOL_POOL_SIZE "" "processpool processes; empty sizes the pool from its CPU quota at start"
set_default CLUSTER_WORKERS "" "cluster worker processes; empty sizes it from its CPU quota at start"
set_default GIL_SWITCH_MS 5 "gil: how long a thread may keep the lock while another waits (CPython's switch interval)"
set_default GENERATORS_FIB_SLICE 10000 "generators: fib calls between two yields to the scheduler"
set_default LOADGEN_CPUS 1 "CPU quota of the load generator"
set_default LOAD_SCENARIO perf1,perf2 "the continuous load: built-in scenarios run together against every variant"
set_default LOAD_CONNECTIONS 1 "connections per probe and variant"
set_default LOAD_THINK 250ms "pause between a reply and the next request on a connection (keeps the lab under about one core)"

if ((${#added[@]})); then echo "init-env: wrote ${added[*]} to $file"; fi
