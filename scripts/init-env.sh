#!/usr/bin/env bash
# Creates .env on first run, and adds any setting a newer lab introduced, never overwriting a value
# that is already there. The defaults come from config/lab.env (generated from the variant table);
# each variant's CPU quota is lowered to the Docker host's CPU count when that is smaller (Docker
# refuses a quota above it), and Grafana gets a random admin password. The one exception is
# LOADGEN_TOKEN, the load generator's control token: per run, so replaced by a fresh one each time
# (make up, make test-stack). Portable to the bash 3.2 of a stock macOS (no case-changing
# expansions, no associative arrays, no sed -i).
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

# The control token: the old one (and its comment) out, a fresh one in. Rewritten in place, so
# .env keeps its owner and mode.
token_comment="the load generator's control token (PUT and DELETE need it: make load, lab sweep); new at every make up"
kept=$(grep -vE "^LOADGEN_TOKEN=|^# the load generator's control token " "$file" || true)
printf '%s\n' "$kept" | sed '/./,$!d' >"$file"
add LOADGEN_TOKEN "$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')" "$token_comment"

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

if ((${#added[@]})); then echo "init-env: wrote ${added[*]} to $file"; fi
