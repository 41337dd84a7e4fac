#!/usr/bin/env bash
# The lab on Docker Swarm (docs/swarm.md): `scripts/swarm.sh up` deploys docker-stack.yml as the
# stack concurrency-lab on the swarm this Docker engine manages, `down` removes it. Run by
# `make swarm-up` / `make swarm-down`, and by the swarm test (test/stack/swarm.test.ts).
#
# up: writes .env (scripts/init-env.sh) and reads it (`docker stack deploy` does not; a variable
# already in the environment wins, as in compose); builds the images (`docker compose build`) and,
# with LAB_REGISTRY, tags and pushes them there for the other nodes; gives a single node every role
# label, or checks that some node has each role; deploys (Grafana too when COMPOSE_PROFILES has
# it and LAB_NO_GRAFANA is not 1); waits until every task runs (swarm calls a task running once
# its healthcheck passes); prints where to browse.
# down: removes the stack and waits until its containers and network are gone. Leaves the swarm.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=concurrency-lab
ROLES=(lab.load lab.variants lab.monitor)
WAIT_SECONDS=${SWARM_WAIT_SECONDS:-300}

die() { # CODE MESSAGE
  echo "swarm: $2" >&2
  exit "$1"
}

manager_check() {
  local state manager
  state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null) || die 2 'cannot reach the Docker daemon'
  manager=$(docker info --format '{{.Swarm.ControlAvailable}}')
  [[ $state == active ]] || die 2 "this Docker engine is in no swarm ($state): run 'docker swarm init' (docs/swarm.md), or make up for compose"
  [[ $manager == true ]] || die 2 'this node is not a swarm manager: run make swarm-up on a manager'
}

# .env's settings, those the environment lacks (the environment wins, as compose does).
load_env() {
  local line key
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[1]}
    [[ -n ${!key+set} ]] || export "$key=${BASH_REMATCH[2]}"
  done <.env
}

# One node: every role. More: each role must be on some node (the user says where).
label_nodes() {
  local nodes role missing=()
  mapfile -t nodes < <(docker node ls --format '{{.ID}}')
  if ((${#nodes[@]} == 1)); then
    # Every queue worker on the one node (the spread limit is for several).
    export QUEUE_WORKERS_PER_NODE=${QUEUE_WORKERS_PER_NODE:-${QUEUE_WORKERS:-2}}
    for role in "${ROLES[@]}"; do
      if [[ $(docker node inspect --format "{{index .Spec.Labels \"$role\"}}" "${nodes[0]}") != true ]]; then
        docker node update --label-add "$role=true" "${nodes[0]}" >/dev/null
        echo "swarm: labelled the only node $role=true"
      fi
    done
    return
  fi
  for role in "${ROLES[@]}"; do
    [[ -n $(docker node ls --filter "node.label=$role=true" --format '{{.ID}}') ]] || missing+=("$role")
  done
  ((${#missing[@]} == 0)) || die 2 "no node has the label ${missing[*]}: docker node update --label-add <label>=true <node> (docs/swarm.md, Labels)"
}

images() {
  docker compose build
  if [[ -n ${LAB_REGISTRY:-} ]]; then
    export LAB_IMAGE=$LAB_REGISTRY/concurrency-lab:local LAB_PYTHON_IMAGE=$LAB_REGISTRY/concurrency-lab-python:local
    docker tag concurrency-lab:local "$LAB_IMAGE"
    docker tag concurrency-lab-python:local "$LAB_PYTHON_IMAGE"
    docker push "$LAB_IMAGE"
    docker push "$LAB_PYTHON_IMAGE"
  fi
}

# Every service's running tasks against its replicas ("2/2"), until all match or the time is up.
wait_running() {
  local started=$SECONDS listing pending
  while :; do
    listing=$(docker stack services "$STACK" --format '{{.Name}} {{.Replicas}}')
    pending=$(awk '{ split($2, r, "/"); if (r[1] != r[2]) print $1 " " $2 }' <<<"$listing")
    [[ -n $listing && -z $pending ]] && break
    if ((SECONDS - started > WAIT_SECONDS)); then
      docker stack ps "$STACK" --no-trunc --filter desired-state=running >&2 || true
      die 1 "not every task running after ${WAIT_SECONDS} s: $(tr '\n' ' ' <<<"$pending")"
    fi
    sleep 2
  done
  echo "swarm: every task of $STACK is running and healthy after $((SECONDS - started)) s"
}

# The node that runs a service's task: its host-mode ports listen there, on every interface.
node_of() { docker service ps "${STACK}_$1" --filter desired-state=running --format '{{.Node}}' | head -n 1; }

urls() {
  echo
  echo "The lab is up on the swarm. Host-mode ports listen on the node that runs each task"
  echo "(127.0.0.1 there; from elsewhere, that node's address):"
  if docker service inspect "${STACK}_grafana" >/dev/null 2>&1; then
    echo "  Grafana     port ${GRAFANA_PORT:-3000} on $(node_of grafana)"
  fi
  echo "  Prometheus  port ${PROMETHEUS_PORT:-9090} on $(node_of prometheus)"
  echo "  Load gen    port ${LOADGEN_PORT:-9465} on $(node_of loadgen) (/metrics)"
  echo "  Variants    ports from ${VARIANT_BASE_PORT:-25001} (<VARIANT>_PORT in .env), on the variants' nodes"
  echo "Quotas: lab cpus <variant> <cores> (swarm replaces the variant's task to apply a new limit)."
}

up() {
  manager_check
  ./scripts/init-env.sh
  load_env
  if [[ ${LAB_NO_GRAFANA:-} == 1 ]]; then COMPOSE_PROFILES=; fi
  label_nodes
  images
  local files=(-c docker-stack.yml)
  [[ ${COMPOSE_PROFILES:-} == *grafana* ]] && files+=(-c config/stack.grafana.yml)
  LAB_CONFIG_VERSION=$(cat prometheus/prometheus.swarm.yml prometheus/rules/*.yml grafana/provisioning/*/*.yml grafana/dashboards/*.json | sha256sum | cut -c1-12)
  export LAB_CONFIG_VERSION
  local resolve=never
  [[ -n ${LAB_REGISTRY:-} ]] && resolve=always
  docker stack deploy --prune --resolve-image "$resolve" ${LAB_REGISTRY:+--with-registry-auth} "${files[@]}" "$STACK"
  wait_running
  urls
}

down() {
  manager_check
  docker stack rm "$STACK"
  local started=$SECONDS left
  while :; do
    left=$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")
    [[ -z $left ]] && break
    ((SECONDS - started > WAIT_SECONDS)) && die 1 "the stack's containers or network still exist after ${WAIT_SECONDS} s"
    sleep 1
  done
  echo "swarm: stack $STACK removed after $((SECONDS - started)) s (the swarm itself stays: docker swarm leave --force)"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) die 2 "usage: scripts/swarm.sh up|down" ;;
esac
