// A typed tour of the public surface, compiled with `tsc --noEmit` against
// the package's index.d.ts (in-tree through the package's self-reference,
// and again from the installed tarball). Never run.

import {
  BackoffSpec,
  ChasquiError,
  ClosedError,
  InvalidArgumentError,
  Job,
  MissedFiresPolicy,
  NotSupportedError,
  Queue,
  QueueEvent,
  QueueEvents,
  RepeatableMeta,
  RepeatPattern,
  UnrecoverableError,
  Worker,
  version,
} from "chasquimq";
import type { Handler, QueueAddOptions, WorkerOptions } from "chasquimq";

export async function tour(): Promise<void> {
  const queue = new Queue("emails", { redisUrl: "redis://127.0.0.1:6379", maxStreamLen: 10_000 });
  const name: string = queue.name;
  const closed: boolean = queue.isClosed;

  const job: Job = await queue.add("welcome", { to: "ada@example.com" });
  const id: string = job.id;
  const attempts: number = job.attemptsMade;
  await queue.add("later", null, { delay: 5_000, jobId: "welcome-ada", attempts: 3, backoff: { type: "exponential", delay: 1_000 } });
  await queue.add("at", null, { delayMs: new Date(Date.now() + 60_000) });
  await queue.add("retry", 1, { backoff: BackoffSpec.exponential(250, { multiplier: 3, maxMs: 10_000, jitterMs: 50 }) });
  await queue.add("fixed", 1, { backoff: 100 });
  const opts: QueueAddOptions = { repeat: RepeatPattern.every(60_000), missedFires: MissedFiresPolicy.fireOnce() };
  await queue.add("tick", {}, opts);
  await queue.addUnique("once", 1, { jobId: "only-once" });
  const jobs: Job[] = await queue.addBulk([
    { name: "a", data: 1 },
    { name: "b", data: 2, opts: { delay: 100 } },
  ]);
  const cancelled: boolean = await queue.cancelDelayed("welcome-ada");
  const dlq: Array<Record<string, any>> = await queue.peekDlq(10);
  const replayed: number = await queue.replayDlq();
  const spec: Job = await queue.upsertRepeatableJob("report", { day: 1 }, {
    repeat: RepeatPattern.cron("0 3 * * *", { tz: "America/New_York" }),
    limit: 10,
    missedFires: MissedFiresPolicy.fireAll(3),
  });
  const metas: RepeatableMeta[] = await queue.getRepeatableJobs();
  const next: number = metas[0].nextFireMs;
  const kind: string = metas[0].pattern.kind;
  const removed: boolean = await queue.removeRepeatableByKey(spec.id);
  const result: unknown = await queue.getJobResult(job.id);
  const results: unknown[] = await queue.getJobResultBulk([job.id]);
  const waited: unknown = await job.waitForResult({ timeoutMs: 5_000, pollIntervalMs: 50 });

  const handler: Handler = async (j: Job) => {
    if (!j.data.to) throw new UnrecoverableError("no recipient");
    return { sent: true, attempt: j.attempt };
  };
  const workerOptions: WorkerOptions = { concurrency: 10, storeResults: true, shutdownTimeoutMs: 5_000 };
  const worker = new Worker("emails", handler, workerOptions);
  const running: Promise<void> = worker.run();
  const isRunning: boolean = worker.isRunning;
  await worker.close();
  await running;

  const events = new QueueEvents("emails", { lastEventId: "0", blockMs: 1_000 });
  await events.waitUntilReady();
  events.on("completed", (ev: QueueEvent) => {
    const jobId: string | null = ev.jobId;
    const fields: Record<string, any> = ev.fields;
    void jobId;
    void fields;
  });
  for await (const ev of events) {
    const evName: string = ev.name;
    void evName;
    break;
  }
  await events.close();

  try {
    await queue.add("x", 1);
  } catch (e) {
    if (e instanceof ChasquiError) {
      const code: string = e.code;
      void code;
    }
    if (e instanceof InvalidArgumentError) {
      const asRange: RangeError = e;
      void asRange;
    }
    if (e instanceof ClosedError || e instanceof NotSupportedError) {
      throw e;
    }
  }
  await queue.close();
  const v: string = version();

  // Wrong types are compile errors.
  // @ts-expect-error delayMs is a number or a Date
  await queue.add("x", 1, { delayMs: "5" });
  // @ts-expect-error addUnique needs its options (jobId)
  await queue.addUnique("x", 1);
  // @ts-expect-error a handler takes a Job
  new Worker("q", (n: number) => n);
  // @ts-expect-error upsertRepeatableJob takes a RepeatPattern
  await queue.upsertRepeatableJob("x", 1, { repeat: 5 });

  void [name, closed, id, attempts, jobs, cancelled, dlq, replayed, next, kind, removed, result, results, waited, isRunning, v];
}

export async function scoped(): Promise<void> {
  // `await using` closes the queue and the worker at scope exit.
  await using queue = new Queue("scoped");
  await using worker = new Worker("scoped", async () => undefined);
  await queue.add("x", 1);
  void worker.run();
}
