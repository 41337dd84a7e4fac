"""The options of `lab serve` that apply to the Python servers, read like services/lab/options.ts
reads them: a flag (`--port 0` or `--port=0`), else its environment variable (empty counts as
unset), else the default. A bad value exits 2 with one line naming the option."""

import json
import os
import sys

from .protocol import FIB_MAX_N_LIMIT


class Option:
    def __init__(self, key, flag, env, default, parse, description):
        self.key, self.flag, self.env, self.default = key, flag, env, default
        self.parse, self.description = parse, description

    @property
    def label(self):
        return f'{self.flag} ({self.env})'


class ConfigError(Exception):
    """Bad configuration: its message names the option (`invalid --port (PORT): ...`)."""

    def __init__(self, option, message):
        super().__init__(f'invalid {option.label if isinstance(option, Option) else option}: {message}')


def _js(value):
    """The value as JSON.stringify shows it in the Node side's messages."""
    return json.dumps(value, ensure_ascii=False)


def integer(low, high):
    def parse(option, text):
        stripped = text.strip()
        digits = stripped[1:] if stripped.startswith('-') else stripped
        if not (digits.isascii() and digits.isdigit()) or not low <= int(stripped) <= high:
            raise ConfigError(option, f'expected an integer from {low} to {high}, got {_js(text)}')
        return int(stripped)

    return parse


def text(option, value):
    if not value.strip():
        raise ConfigError(option, f'expected a non-empty string, got {_js(value)}')
    return value.strip()


def shared_options(connection_cap, idle_timeout_ms):
    """The options every variant shares, with this server's own cap and idle timeout as defaults."""
    return [
        Option('host', '--host', 'HOST', '127.0.0.1', text, 'interface to listen on'),
        Option('port', '--port', 'PORT', 25000, integer(0, 65535), 'fib protocol TCP port (0 picks a free port)'),
        Option('metrics_port', '--metrics-port', 'METRICS_PORT', 9464, integer(0, 65535), 'HTTP port for /metrics and /healthz'),
        Option('fib_max_n', '--fib-max-n', 'FIB_MAX_N', 40, integer(0, FIB_MAX_N_LIMIT), f'largest n served (at most {FIB_MAX_N_LIMIT})'),
        Option('max_connections', '--max-connections', 'MAX_CONNECTIONS', connection_cap, integer(1, 1_000_000), 'connection cap'),
        Option('drain_timeout_ms', '--drain-timeout-ms', 'DRAIN_TIMEOUT_MS', 10_000, integer(0, 3_600_000), 'drain timeout on SIGTERM'),
        # Read and checked like the Node side's, but one request per connection is in flight at
        # a time here: further pipelined lines wait unread.
        Option('max_pipeline', '--max-pipeline', 'MAX_PIPELINE', 64, integer(1, 100_000), 'requests in flight per connection (here always 1)'),
        Option('idle_timeout_ms', '--idle-timeout-ms', 'IDLE_TIMEOUT_MS', idle_timeout_ms, integer(1, 86_400_000), 'idle timeout'),
        Option('line_timeout_ms', '--line-timeout-ms', 'LINE_TIMEOUT_MS', 30_000, integer(1, 86_400_000), "a request line must be finished within this long of its first byte"),
    ]


class Settings(dict):
    __getattr__ = dict.__getitem__


def resolve(options, argv=None, environ=None):
    """Every option's value from argv, else the environment, else its default; raises ConfigError."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    by_flag = {option.flag: option for option in options}
    given = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, value = arg.partition('=')
        option = by_flag.get(flag)
        if option is None:
            raise ConfigError(arg, f'no such option; expected one of {", ".join(by_flag)}')
        if not eq:
            if i + 1 >= len(argv):
                raise ConfigError(option, 'expected a value after it')
            i += 1
            value = argv[i]
        given[option.key] = value
        i += 1
    settings = Settings()
    for option in options:
        raw = given.get(option.key, environ.get(option.env, ''))
        settings[option.key] = option.default if raw == '' else option.parse(option, raw)
    return settings
