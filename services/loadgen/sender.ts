// A sending thread (see senders.ts): runs the parts of load runs it is given, each on its own
// connections, and posts back what they measured. Keeps a mirror of every pause gate the main
// thread uses, and reports the connections its loops open and close to gated targets.

import { parentPort } from 'node:worker_threads';
import { PauseGate } from './pause.js';
import { RunPart } from './part.js';
import type { FromSender, ToSender } from './senders.js';

const port = parentPort!;
const post = (message: FromSender) => port.postMessage(message);

/** The main thread's gate, as this thread knows it: paused as told, holding what this thread's loops hold. */
class MirroredGate extends PauseGate {
  constructor(private readonly id: number) {
    super();
  }

  override adjustHeld(target: string, delta: number): void {
    super.adjustHeld(target, delta);
    // A paused target left alone: what was measured against it reaches the main thread before
    // the news that it is quiet (messages keep their order), so figures read then are complete.
    if (delta < 0 && this.connections(target) === 0 && this.isPaused(target)) for (const part of parts.values()) part.flush();
    post({ type: 'held', gateId: this.id, target, delta });
  }

  /** Takes on the main thread's state. */
  update(paused: string[], all: boolean): void {
    for (const target of this.pausedNames) if (!paused.includes(target)) this.resume(target);
    for (const target of paused) this.pause(target);
    this.setAll(all);
  }
}

const gates = new Map<number, MirroredGate>();
const parts = new Map<number, RunPart>();

port.on('message', (message: ToSender) => {
  switch (message.type) {
    case 'gate': {
      let gate = gates.get(message.gateId);
      if (!gate) gates.set(message.gateId, (gate = new MirroredGate(message.gateId)));
      gate.update(message.paused, message.all);
      break;
    }
    case 'start': {
      const { spec, gateId } = message;
      const gate = gateId === null ? null : (gates.get(gateId) ?? null);
      const part = new RunPart(spec, (flush) => post({ type: 'flush', flush }), gate);
      parts.set(spec.runId, part);
      part.finished.then(
        () => parts.delete(spec.runId),
        (error: Error) => {
          parts.delete(spec.runId);
          post({ type: 'failed', runId: spec.runId, message: error.message });
        },
      );
      break;
    }
    case 'stop':
      parts.get(message.runId)?.stop();
      break;
  }
});
