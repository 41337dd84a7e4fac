#!/bin/bash
# The container healthcheck of every lab process: exits 0 when this container's own /healthz
# answers 200. Bash, not Node: Docker runs it every interval in every container, and starting a
# JavaScript runtime for it cost about a tenth of a core per container on a 2-core machine (the
# lab must not disturb what it measures). Reads METRICS_PORT like the process it checks.
exec 3<>"/dev/tcp/127.0.0.1/${METRICS_PORT:-9464}" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
read -r -t 2 status <&3 || exit 1
[[ $status == HTTP/1.?' 200 '* ]]
