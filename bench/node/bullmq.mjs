// BullMQ (ioredis): Queue.add / addBulk / Worker({concurrency}).
// Events stream: always written (no switch). Results: the return value is
// always kept in the job's hash (removeOnComplete is off as shipped).
// Delays: opts.delay. Retry: opts.attempts = 2 and no backoff, which
// moves a failed job straight back to wait.
import { Queue, Worker } from 'bullmq';
import { SPEC, producerMain, workerMain, redisOptions } from './common.mjs';

const NAME = 'bench';

function jobOpts() {
  const o = {};
  if (SPEC.delay_ms) o.delay = SPEC.delay_ms;
  if (SPEC.retry) o.attempts = 2;
  return o;
}

async function setup() {
  const queue = new Queue(SPEC.queue, { connection: redisOptions() });
  await queue.waitUntilReady();
  const opts = jobOpts();
  return {
    add: (data) => queue.add(NAME, data, opts),
    addBulk: (items) => queue.addBulk(items.map((data) => ({ name: NAME, data, opts }))),
    close: () => queue.close(),
  };
}

function start(tracker) {
  const worker = new Worker(
    SPEC.queue,
    async (job) => {
      tracker.begin(job.data);
      if (SPEC.yield) await Promise.resolve();
      return tracker.end(job.data);
    },
    { connection: redisOptions(), concurrency: SPEC.concurrency ?? 100, autorun: false },
  );
  worker.on('error', (e) => console.error('bullmq worker error:', e));
  tracker.extra.config = { concurrency: SPEC.concurrency ?? 100, removeOnComplete: false };
  return worker.run();
}

if (SPEC.role === 'producer') await producerMain(setup);
else await workerMain(start);
