#!/usr/bin/env bash
# Prints the Docker engine's socket as the engine's own host sees it: what `make cpus` mounts into
# its one-shot container. Found the way the docker CLI (and `lab`, services/quota/docker-host.ts)
# finds the engine: DOCKER_HOST, else the active context's endpoint (docker context inspect), else
# /var/run/docker.sock. A unix socket on this Linux host (rootless Docker's
# $XDG_RUNTIME_DIR/docker.sock, a custom path) is mounted as it is. Where the engine runs in a VM
# (Docker Desktop, Colima: the context's socket is a forwarding on the Mac's side) or is reached
# over TCP or SSH, the engine's own socket inside its VM or host is /var/run/docker.sock.
# Portable to the bash 3.2 of a stock macOS.
set -euo pipefail
host=${DOCKER_HOST:-$(docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null || true)}
path=''
case $host in
  unix://*) path=${host#unix://} ;;
esac
if [[ $(uname -s) == Linux && -n $path && -S $path ]]; then
  echo "$path"
else
  echo /var/run/docker.sock
fi
