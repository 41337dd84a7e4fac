// Built-in scenarios: the talk's two clients. A scenario is a named set of probes; a probe is
// one kind of request sent in a closed loop (send, wait for the reply, think, repeat) on its
// own connections. Running perf1 and perf2 together is the talk's demo: how short requests
// fare while long ones run.

export interface Probe {
  /** The `probe` label: `long` or `short`. */
  name: string;
  n: number;
}

export interface Scenario {
  description: string;
  probes: Probe[];
}

export const SCENARIOS = {
  perf1: {
    description: "the talk's perf1: the latency of a long request, fib(30), in a loop",
    probes: [{ name: 'long', n: 30 }],
  },
  perf2: {
    description: "the talk's perf2: requests per second of trivial requests, fib(1), in a loop",
    probes: [{ name: 'short', n: 1 }],
  },
} satisfies Record<string, Scenario>;

export type ScenarioName = keyof typeof SCENARIOS;
