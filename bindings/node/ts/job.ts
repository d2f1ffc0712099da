/** Behaviour of `Job` (fields are generated in `_generated/types.ts`). */

import { ClosedError } from "./_generated/errors.js";
import type { Queue } from "./_generated/api.js";

export class JobBase {
  /** @internal Created on first use of `signal` (most handlers never read it). */
  declare _abort: AbortController | undefined;

  /** @internal */
  get _signal(): AbortSignal {
    let a = this._abort;
    if (a === undefined) {
      a = this._abort = new AbortController();
    }
    return a.signal;
  }

  /** @internal The run failed at its time limit: abort `signal`. */
  _abortRun(reason: unknown): void {
    let a = this._abort;
    if (a === undefined) {
      a = this._abort = new AbortController();
    }
    a.abort(reason);
  }

  /** @internal */
  async _waitForResult(options: { timeoutMs: number; pollIntervalMs: number }): Promise<any> {
    const self = this as unknown as { id: string; _queue: Queue | null };
    const queue = self._queue;
    if (queue == null) {
      throw new ClosedError(
        "waitForResult needs a Job returned by Queue.add; a Job given to a handler has no queue to poll",
      );
    }
    return (queue as unknown as QueueResults)._waitResult(self.id, options.timeoutMs, options.pollIntervalMs);
  }
}

/** What JobBase needs from QueueBase (kept out of the public types). */
interface QueueResults {
  _waitResult(jobId: string, timeoutMs: number, pollIntervalMs: number): Promise<any>;
}
