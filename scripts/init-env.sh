#!/usr/bin/env bash
# Creates .env on first run, and adds any setting a newer lab introduced, never overwriting a value
# that is already there. The defaults come from config/lab.env (generated from the variant table);
# each variant's host port (<VARIANT>_PORT) is derived from VARIANT_BASE_PORT at every run;
# each variant's CPU quota is lowered to the Docker host's CPU count when that is smaller (Docker
# refuses a quota above it), and Grafana gets a random admin password. Two settings follow each
# run instead: COMPOSE_FILE follows the engine (with Docker 25+ it adds config/compose.health.yml:
# healthy within seconds of a start), and LOADGEN_TOKEN, the load generator's control token, is
# replaced by a fresh one (make up, make test-stack). Portable to the bash 3.2 of a stock macOS
# (no case-changing expansions, no associative arrays, no sed -i).
set -euo pipefail
cd "$(dirname "$0")/.."
file=.env
defaults=config/lab.env
touch "$file"

cpus=$(docker info --format '{{.NCPU}}' 2>/dev/null || true)
[[ $cpus =~ ^[0-9]+$ ]] || cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)

added=()
has() { grep -qE "^$1=" "$file"; }
add() { # KEY VALUE COMMENT
  printf '# %s\n%s=%s\n' "$3" "$1" "$2" >>"$file"
  added+=("$1")
}

# Settings that follow each run: the old line (and its comment) out, the new one in. Rewritten
# in place, so .env keeps its owner and mode.
renew() { # KEY VALUE COMMENT
  local kept
  # Drops the KEY= line and the comment line just above it.
  kept=$(awk -v key="$1=" '{ line[NR] = $0 }
    END { for (i = 1; i <= NR; i++) {
      if (index(line[i], key) == 1) continue
      if (substr(line[i], 1, 1) == "#" && index(line[i + 1], key) == 1) continue
      print line[i] } }' "$file")
  printf '%s\n' "$kept" | sed '/./,$!d' >"$file"
  add "$1" "$2" "$3"
}

has GRAFANA_ADMIN_PASSWORD || add GRAFANA_ADMIN_PASSWORD "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" \
  "Grafana's admin password (generated; anonymous users get read-only access)"

comment=''
while IFS= read -r line || [[ -n $line ]]; do
  case $line in
    '# GENERATED'* | '# Edit those'* | '#' | '# The defaults of .env'* | '# overwriting one'*) continue ;;
    '#'*) comment=${line#\# } ;;
    *=*)
      key=${line%%=*}
      value=${line#*=}
      has "$key" && continue
      if [[ $key == *_CPUS && $value =~ ^[0-9.]+$ ]] && awk -v v="$value" -v c="$cpus" 'BEGIN { exit !(v > c) }'; then
        value=$cpus
      fi
      add "$key" "$value" "$comment"
      ;;
  esac
done <"$defaults"

# Each variant's published port: VARIANT_BASE_PORT plus the variant's offset (config/variants.mk,
# from the variant table), rewritten at every run so that changing the one base moves them all.
# The shell's VARIANT_BASE_PORT wins over the file's, as in compose.
base=${VARIANT_BASE_PORT:-$(sed -n 's/^VARIANT_BASE_PORT=//p' "$file" | tail -n 1)}
base=${base:-25001}
if ! [[ $base =~ ^[0-9]+$ ]] || ((base < 1 || base > 65437)); then
  echo "init-env: VARIANT_BASE_PORT: expected a port from 1 to 65437, got '$base'" >&2
  exit 2
fi
reported=${#added[@]}
for pair in $(sed -n 's/^VARIANT_PORT_OFFSETS := //p' config/variants.mk); do
  name=${pair%%:*}
  key=$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')_PORT
  renew "$key" "$((base + ${pair#*:}))" \
    "$name's host port: VARIANT_BASE_PORT + ${pair#*:} (derived at every make up: change VARIANT_BASE_PORT)"
done
# Derived, not news: left out of the list of settings written.
if ((reported == 0)); then added=(); else added=("${added[@]:0:reported}"); fi

# The control token: per run.
renew LOADGEN_TOKEN "$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')" \
  "the load generator's control token (PUT, POST and DELETE need it: make load, lab sweep); new at every make up"

# COMPOSE_FILE follows the engine: start_interval needs API 1.44 (Docker 25), older engines refuse it.
api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null || true)
compose_file=docker-compose.yml
if [[ $api =~ ^([0-9]+)\.([0-9]+)$ ]] && ((BASH_REMATCH[1] > 1 || BASH_REMATCH[2] >= 44)); then
  compose_file=docker-compose.yml:config/compose.health.yml
fi
renew COMPOSE_FILE "$compose_file" "compose files, from the Docker engine's API version (${api:-unknown}); set at every make up"

if ((${#added[@]})); then echo "init-env: wrote ${added[*]} to $file"; fi
