"""The container's CPU quota, CPU use, throttling and memory from its cgroup, v2 or v1, read the
way services/lab/cgroup.ts reads them (LAB_CGROUP_ROOT and LAB_CGROUP_SELF point elsewhere,
as there). On a host the process's own group is found in /proc/self/cgroup; when that path does
not exist under the mount, the mount's root is used."""

import math
import os


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _number(path):
    text = _read(path)
    try:
        return float(text.strip()) if text is not None else None
    except ValueError:
        return None


def _keyed(path):
    result = {}
    for line in (_read(path) or '').splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return result


def _own_dir(mount, path):
    directory = os.path.join(mount, path.lstrip('/'))
    return directory if path != '/' and os.path.isdir(directory) else mount


class CgroupReader:
    def __init__(self):
        root = os.environ.get('LAB_CGROUP_ROOT') or '/sys/fs/cgroup'
        membership = {}
        for line in (_read(os.environ.get('LAB_CGROUP_SELF') or '/proc/self/cgroup') or '').splitlines():
            parts = line.strip().split(':', 2)
            if len(parts) == 3:
                for controller in parts[1].split(','):
                    membership[controller] = parts[2]
        self.dirs = {}
        if os.path.exists(os.path.join(root, 'cgroup.controllers')):
            self.version = 2
            self.dirs['unified'] = _own_dir(root, membership.get('', '/'))
        elif os.path.exists(os.path.join(root, 'cpu')) or os.path.exists(os.path.join(root, 'cpu,cpuacct')):
            self.version = 1
            for name in ('cpu', 'cpuacct', 'memory'):
                for candidate in (name, 'cpu,cpuacct', 'cpuacct,cpu'):
                    directory = os.path.join(root, candidate)
                    if os.path.exists(directory):
                        self.dirs[name] = _own_dir(directory, membership.get(name, '/'))
                        break
        else:
            self.version = None

    def quota_cores(self):
        """The CPU quota in cores, or None without one."""
        if self.version == 2:
            fields = (_read(os.path.join(self.dirs['unified'], 'cpu.max')) or 'max').split()
            if not fields or fields[0] == 'max':
                return None
            period = float(fields[1]) if len(fields) > 1 else 100000.0
            return float(fields[0]) / period if period > 0 else None
        if self.version == 1 and 'cpu' in self.dirs:
            quota = _number(os.path.join(self.dirs['cpu'], 'cpu.cfs_quota_us'))
            period = _number(os.path.join(self.dirs['cpu'], 'cpu.cfs_period_us'))
            if quota is None or period is None or quota <= 0 or period <= 0:
                return None
            return quota / period
        return None

    def stats(self):
        """usage_seconds, periods, throttled_periods, throttled_seconds, memory_bytes (None where unknown)."""
        scaled = lambda value, per: None if value is None else value / per
        if self.version == 2:
            directory = self.dirs['unified']
            cpu = _keyed(os.path.join(directory, 'cpu.stat'))
            memory = _number(os.path.join(directory, 'memory.current'))
            inactive = _keyed(os.path.join(directory, 'memory.stat')).get('inactive_file', 0)
            return {
                'usage_seconds': scaled(cpu.get('usage_usec'), 1e6),
                'periods': cpu.get('nr_periods'),
                'throttled_periods': cpu.get('nr_throttled'),
                'throttled_seconds': scaled(cpu.get('throttled_usec'), 1e6),
                'memory_bytes': None if memory is None else max(0, memory - inactive),
            }
        if self.version == 1:
            cpu = _keyed(os.path.join(self.dirs['cpu'], 'cpu.stat')) if 'cpu' in self.dirs else {}
            usage = _number(os.path.join(self.dirs['cpuacct'], 'cpuacct.usage')) if 'cpuacct' in self.dirs else None
            memory = _number(os.path.join(self.dirs['memory'], 'memory.usage_in_bytes')) if 'memory' in self.dirs else None
            inactive = _keyed(os.path.join(self.dirs['memory'], 'memory.stat')).get('total_inactive_file', 0) if 'memory' in self.dirs else 0
            return {
                'usage_seconds': scaled(usage, 1e9),
                'periods': cpu.get('nr_periods'),
                'throttled_periods': cpu.get('nr_throttled'),
                'throttled_seconds': scaled(cpu.get('throttled_time'), 1e9),
                'memory_bytes': None if memory is None else max(0, memory - inactive),
            }
        return {}


def cpu_count():
    """The CPUs this process may run on (its affinity), like os.availableParallelism()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_parallelism(reader):
    """The default size of a pool: the CPU quota rounded up (at least 1), else the CPU count."""
    quota = reader.quota_cores()
    return cpu_count() if quota is None else max(1, math.ceil(quota - 1e-9))
