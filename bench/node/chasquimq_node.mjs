// The Node slot: chasquimq through its Node API (bindings/node). bench/run.py
// runs this driver only when the package loads; otherwise every scenario
// prints a "not available" row for it. `nox -s bench` points
// CHASQUIMQ_NODE_PKG at a copy of bindings/node with a release build of the
// native module; without it, bindings/node itself is loaded as built there.
// Options follow the generated API (spec/api.yaml): redisUrl, delay,
// attempts, backoff, addBulk, eventsEnabled, storeResults, maxPayloadBytes.
import { createRequire } from 'node:module';
import { SPEC, producerMain, workerMain } from './common.mjs';

const require = createRequire(import.meta.url);
const { Queue, Worker } = require(process.env.CHASQUIMQ_NODE_PKG ?? '../../bindings/node');

const NAME = 'bench';

function jobOpts() {
  const o = {};
  if (SPEC.delay_ms) o.delay = SPEC.delay_ms;
  if (SPEC.retry) {
    o.attempts = 2;
    o.backoff = 0;
  }
  return o;
}

async function setup() {
  const queue = new Queue(SPEC.queue, { redisUrl: SPEC.url });
  const opts = jobOpts();
  return {
    add: (data) => queue.add(NAME, data, opts),
    addBulk: (items) => queue.addBulk(items.map((data) => ({ name: NAME, data, opts }))),
    close: () => queue.close(),
  };
}

function start(tracker) {
  const opts = {
    redisUrl: SPEC.url,
    concurrency: SPEC.concurrency ?? 100,
    eventsEnabled: SPEC.events ?? true,
    storeResults: !!SPEC.results,
  };
  if ((SPEC.size ?? 10) >= 1 << 20) opts.maxPayloadBytes = 4 << 20;
  const worker = new Worker(
    SPEC.queue,
    async (job) => {
      tracker.begin(job.data);
      if (SPEC.yield) await Promise.resolve();
      return tracker.end(job.data);
    },
    opts,
  );
  tracker.extra.config = opts;
  return worker.run();
}

if (SPEC.role === 'producer') await producerMain(setup);
else await workerMain(start);
