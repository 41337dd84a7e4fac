// The container healthcheck (the images have no curl or wget): exits 0 when this container's
// own /healthz answers 200 within two seconds. Reads METRICS_PORT like the process it checks.

const port = Number(process.env.METRICS_PORT || 9464);
fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).then(
  (response) => process.exit(response.ok ? 0 : 1),
  () => process.exit(1),
);
