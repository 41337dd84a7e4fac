"""The server-side metrics of docs/protocol.md with the names, labels and buckets of
services/lab/metrics.ts, and the HTTP listener for /metrics and /healthz.

prometheus_client has no default labels, so requests are counted in plain numbers under a lock
and handed to it as metric families when scraped, each sample with `variant`; the client's own
process and garbage-collector series are relabelled the same way (every series carries
`variant`, docs/protocol.md)."""

import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .cgroup import cpu_count

#: LATENCY_BUCKETS of services/lab/metrics.ts, spelled as prom-client prints them (`le` is a
#: string label: the same text on both sides lets one query sum them).
LATENCY_BUCKETS = ['0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30']
_BOUNDS = [float(le) for le in LATENCY_BUCKETS]

OUTCOMES = ['ok', 'bad_request', 'out_of_range', 'line_too_long', 'line_timeout', 'input_overflow', 'overloaded', 'unavailable', 'internal']
CLOSE_REASONS = ['client', 'idle', 'line_too_long', 'line_timeout', 'input_overflow', 'shutdown']


class _Histogram:
    def __init__(self):
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value):
        bucket = 0
        while bucket < len(_BOUNDS) and value > _BOUNDS[bucket]:
            bucket += 1
        self.counts[bucket] += 1
        self.sum += value
        self.count += 1

    def buckets(self):
        cumulative, result = 0, []
        for le, count in zip(LATENCY_BUCKETS, self.counts):
            cumulative += count
            result.append((le, cumulative))
        result.append(('+Inf', self.count))
        return result


class ServerMetrics:
    """One server's series. Gauges of what is alive are read when scraped from the functions the
    server sets (`connections`, `workers`), so they never drift from what they count."""

    def __init__(self, variant, cgroup):
        self.variant = variant
        self.cgroup = cgroup
        self.lock = threading.Lock()
        self.answered = dict.fromkeys(OUTCOMES, 0)
        self.duration, self.queue_wait, self.compute = _Histogram(), _Histogram(), _Histogram()
        self.inflight_now = 0
        self.closed_by_reason = dict.fromkeys(CLOSE_REASONS, 0)
        self.worker_requests = None  # {index: count} for a fixed set of workers
        self.connections = lambda: 0
        self.workers = lambda: 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        # Each registers itself somewhere: a registry of its own, never scraped.
        own = [kind(registry=CollectorRegistry()) for kind in (ProcessCollector, GCCollector, PlatformCollector)]
        self.registry.register(_Relabelled(variant, own))

    # What a connection reports, from any thread.
    def inflight(self, delta):
        with self.lock:
            self.inflight_now += delta

    def finished(self, outcome, duration_seconds, queue_wait_seconds=None, compute_seconds=None, worker=None):
        """One request answered; the queue wait and compute time where fib ran."""
        with self.lock:
            self.answered[outcome] = self.answered.get(outcome, 0) + 1
            self.duration.observe(duration_seconds)
            if compute_seconds is not None:
                self.queue_wait.observe(max(0.0, queue_wait_seconds or 0.0))
                self.compute.observe(compute_seconds)
            if worker is not None and self.worker_requests is not None:
                self.worker_requests[worker] = self.worker_requests.get(worker, 0) + 1

    def count_request(self, outcome):
        """A request answered without a connection to serve it (refused over the cap)."""
        with self.lock:
            self.answered[outcome] = self.answered.get(outcome, 0) + 1

    def closed(self, reason):
        with self.lock:
            self.closed_by_reason[reason] += 1

    def fixed_workers(self, size):
        """A fixed set of `size` workers: fib_worker_requests_total{worker} from zero for each."""
        with self.lock:
            self.worker_requests = {index: self.worker_requests.get(index, 0) if self.worker_requests else 0 for index in range(size)}

    def collect(self):
        v = self.variant
        with self.lock:
            answered = dict(self.answered)
            histograms = [(name, h.buckets(), h.sum) for name, h in (('duration', self.duration), ('queue_wait', self.queue_wait), ('compute', self.compute))]
            inflight = self.inflight_now
            closed = dict(self.closed_by_reason)
            workers = dict(self.worker_requests) if self.worker_requests is not None else None
        requests = CounterMetricFamily('fib_requests_total', 'Requests answered, by outcome (ok or the error code sent).', labels=['outcome', 'variant'])
        for outcome, count in answered.items():
            requests.add_metric([outcome, v], count)
        yield requests
        helps = {
            'duration': ('fib_request_duration_seconds', 'From the request line received to its reply written.'),
            'queue_wait': ('fib_queue_wait_seconds', 'From the request line received to its computation started.'),
            'compute': ('fib_compute_seconds', 'Time spent computing fib(n) for one request.'),
        }
        for name, buckets, total in histograms:
            family = HistogramMetricFamily(helps[name][0], helps[name][1], labels=['variant'])
            family.add_metric([v], buckets, total)
            yield family
        yield _gauge('fib_inflight_requests', 'Requests received and not yet answered.', v, inflight)
        yield _gauge('fib_connections_active', 'Client connections open (admitted under the cap).', v, self.connections())
        yield _gauge('fib_workers', 'Threads or processes computing fib, alive now.', v, self.workers())
        by_reason = CounterMetricFamily('fib_connections_closed_total', 'Connections that ended, by reason: the client left, idle timeout, line_too_long, line_timeout, input_overflow, or shutdown.', labels=['reason', 'variant'])
        for reason, count in closed.items():
            by_reason.add_metric([reason, v], count)
        yield by_reason
        if workers is not None:
            per_worker = CounterMetricFamily('fib_worker_requests_total', 'Requests computed by each worker of a fixed set (pool process).', labels=['worker', 'variant'])
            for index, count in sorted(workers.items()):
                per_worker.add_metric([str(index), v], count)
            yield per_worker
        yield from self._cgroup()

    def _cgroup(self):
        """The container's CPU and memory, from its cgroup (never summed across processes)."""
        if self.cgroup is None or self.cgroup.version is None:
            return
        v = self.variant
        stats = self.cgroup.stats()
        quota = self.cgroup.quota_cores()
        yield _gauge('lab_cpu_quota_cores', 'CPU quota of the container in cores (the CPU count when it has no quota).', v, cpu_count() if quota is None else quota)
        yield _gauge('lab_cpu_quota_limited', '1 when the container has a CPU quota, else 0.', v, 0 if quota is None else 1)
        for name, key, help_text in (
            ('lab_cpu_usage_seconds_total', 'usage_seconds', 'CPU time used by the whole container.'),
            ('lab_cpu_periods_total', 'periods', 'CFS enforcement periods elapsed.'),
            ('lab_cpu_throttled_periods_total', 'throttled_periods', 'CFS periods in which the container was throttled.'),
            ('lab_cpu_throttled_seconds_total', 'throttled_seconds', 'Time the container spent throttled.'),
        ):
            if stats.get(key) is not None:
                family = CounterMetricFamily(name, help_text, labels=['variant'])
                family.add_metric([v], stats[key])
                yield family
        if stats.get('memory_bytes') is not None:
            yield _gauge('lab_memory_bytes', 'Memory used by the whole container, without inactive file cache.', v, stats['memory_bytes'])


def _gauge(name, help_text, variant, value):
    family = GaugeMetricFamily(name, help_text, labels=['variant'])
    family.add_metric([variant], value)
    return family


class _Relabelled:
    """prometheus_client's process, gc and platform collectors, each sample with `variant` added."""

    def __init__(self, variant, collectors):
        self.variant = variant
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            for family in collector.collect():
                relabelled = Metric(family.name, family.documentation, family.type, family.unit)
                for s in family.samples:
                    relabelled.samples.append(s._replace(labels={**s.labels, 'variant': self.variant}))
                yield relabelled


def start_http(host, port, metrics, health):
    """Serves /metrics and /healthz (200, or 503 when `health()` says not ok) from a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split('?', 1)[0]
            if path == '/metrics':
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            elif path == '/healthz':
                report = health()
                self._send(200 if report['ok'] else 503, 'application/json', (json.dumps(report, separators=(',', ':')) + '\n').encode())
            else:
                self._send(404, 'text/plain', b'not found: try /metrics or /healthz\n')

        def _send(self, status, content_type, body):
            self.send_response(status)
            self.send_header('content-type', content_type)
            self.send_header('content-length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = _MetricsServer.bound(host, port, Handler)
    threading.Thread(target=server.serve_forever, name='metrics-http', daemon=True).start()
    return server


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    @classmethod
    def bound(cls, host, port, handler):
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return type('MetricsServer', (cls,), {'address_family': family})((host, port), handler)

    def server_bind(self):
        # HTTPServer's own asks DNS for the host's name (getfqdn): slow or stuck without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
