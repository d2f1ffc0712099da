// Every validation error: the class (TypeError- or RangeError-derived), the
// stable code, a message naming the field, and nothing written to Redis.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";
import {
  BackoffSpec,
  ChasquiError,
  Job,
  MissedFiresPolicy,
  Queue,
  QueueEvents,
  RepeatPattern,
  Worker,
} from "../index.mjs";
import { allKeys, useRedis } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const validate = require("../dist/validate.js");
const ctx = useRedis();
const handler = async () => undefined;

// [label, call(queue), code, text the message must contain]
const CASES = [
  // Queue constructor
  ["queue name type", () => new Queue(123), "invalid_type", "name"],
  ["queue name blank", () => new Queue("  "), "invalid_argument", "name"],
  ["queue name braces", () => new Queue("a{b}"), "invalid_argument", "name"],
  ["queue name bytes", () => new Queue("é".repeat(200)), "invalid_argument", "256 bytes"],
  ["queue name lone surrogate", () => new Queue("a\ud800"), "invalid_argument", "name"],
  ["redisUrl scheme", () => new Queue("q", { redisUrl: "http://h:1" }), "invalid_argument", "redisUrl"],
  ["redisUrl port", () => new Queue("q", { redisUrl: "redis://h:99999" }), "invalid_argument", "port"],
  ["redisUrl db", () => new Queue("q", { redisUrl: "redis://h:6379/x" }), "invalid_argument", "database"],
  ["redisUrl no host", () => new Queue("q", { redisUrl: "redis://:6379" }), "invalid_argument", "redisUrl"],
  ["redisUrl type", () => new Queue("q", { redisUrl: 6379 }), "invalid_type", "redisUrl"],
  ["redisUrl tls file", () => new Queue("q", { redisUrl: "rediss://h?tls_ca_file=/no/such.pem" }), "invalid_argument", "cannot read"],
  ["redisUrl tls plain", () => new Queue("q", { redisUrl: "redis://h?tls_ca_file=/etc/hostname" }), "invalid_argument", "needs a TLS URL"],
  ["redisUrl tls unknown", () => new Queue("q", { redisUrl: "rediss://h?tls_ca=/x" }), "invalid_argument", "unknown query parameter"],
  ["redisUrl fragment", () => new Queue("q", { redisUrl: "redis://:p#w@h" }), "invalid_argument", "%23"],
  ["maxStreamLen zero", () => new Queue("q", { maxStreamLen: 0 }), "invalid_argument", "maxStreamLen"],
  ["maxStreamLen float", () => new Queue("q", { maxStreamLen: 1.5 }), "invalid_type", "maxStreamLen"],
  ["maxDelaySecs huge", () => new Queue("q", { maxDelaySecs: 2 ** 60 }), "invalid_argument", "maxDelaySecs"],
  ["unknown option", () => new Queue("q", { connection: {} }), "invalid_type", "options.connection"],
  ["options type", () => new Queue("q", "redis://x"), "invalid_type", "options"],
  // Queue.add
  ["job name type", (q) => q.add(5, 1), "invalid_type", "name"],
  ["job name bytes", (q) => q.add("x".repeat(257), 1), "invalid_argument", "name"],
  ["delayMs negative", (q) => q.add("n", 1, { delayMs: -1 }), "invalid_argument", "delayMs"],
  ["delayMs NaN", (q) => q.add("n", 1, { delayMs: NaN }), "invalid_argument", "delayMs"],
  ["delayMs infinite", (q) => q.add("n", 1, { delayMs: Infinity }), "invalid_argument", "delayMs"],
  ["delayMs string", (q) => q.add("n", 1, { delayMs: "5" }), "invalid_type", "delayMs"],
  ["delayMs bad Date", (q) => q.add("n", 1, { delayMs: new Date("x") }), "invalid_argument", "delayMs"],
  ["delay negative", (q) => q.add("n", 1, { delay: -5 }), "invalid_argument", "delay"],
  ["delay string", (q) => q.add("n", 1, { delay: "5" }), "invalid_type", "delay"],
  ["delayMs and delay", (q) => q.add("n", 1, { delayMs: 5, delay: 5 }), "invalid_argument", "mutually exclusive"],
  ["attempts zero", (q) => q.add("n", 1, { attempts: 0 }), "invalid_argument", "attempts"],
  ["attempts float", (q) => q.add("n", 1, { attempts: 1.5 }), "invalid_type", "attempts"],
  ["attempts bool", (q) => q.add("n", 1, { attempts: true }), "invalid_type", "attempts"],
  ["backoff negative", (q) => q.add("n", 1, { backoff: -1 }), "invalid_argument", "backoff"],
  ["backoff float", (q) => q.add("n", 1, { backoff: 1.5 }), "invalid_type", "backoff"],
  ["backoff string", (q) => q.add("n", 1, { backoff: "fixed" }), "invalid_type", "backoff"],
  ["backoff bullmq type", (q) => q.add("n", 1, { backoff: { type: "custom", delay: 5 } }), "invalid_argument", "backoff.type"],
  ["backoff bullmq delay", (q) => q.add("n", 1, { backoff: { type: "fixed", delay: -5 } }), "invalid_argument", "backoff.delay"],
  ["backoff unknown key", (q) => q.add("n", 1, { backoff: { kind: "fixed", delayMs: 5, x: 1 } }), "invalid_type", "backoff.x"],
  ["backoff native kind", (q) => q.add("n", 1, { backoff: { kind: "linear", delayMs: 5 } }), "invalid_argument", "linear"],
  ["backoff multiplier", (q) => q.add("n", 1, { backoff: { kind: "exponential", delayMs: 5, multiplier: 0.5 } }), "invalid_argument", "multiplier"],
  ["jobId blank", (q) => q.add("n", 1, { jobId: "  " }), "invalid_argument", "jobId"],
  ["jobId control", (q) => q.add("n", 1, { jobId: "a\nb" }), "invalid_argument", "jobId"],
  ["jobId type", (q) => q.add("n", 1, { jobId: 5 }), "invalid_type", "jobId"],
  ["repeat type", (q) => q.add("n", 1, { repeat: 5 }), "invalid_type", "repeat"],
  ["repeat unknown key", (q) => q.add("n", 1, { repeat: { cron: "* * * * *" } }), "invalid_type", "repeat.cron"],
  ["missedFires without repeat", (q) => q.add("n", 1, { missedFires: MissedFiresPolicy.skip() }), "invalid_argument", "missedFires needs repeat"],
  ["missedFires kind", (q) => q.add("n", 1, { repeat: RepeatPattern.every(5), missedFires: { kind: "all" } }), "invalid_argument", "missedFires.kind"],
  ["missedFires maxCatchup", (q) => q.add("n", 1, { repeat: RepeatPattern.every(5), missedFires: { kind: "fire-all" } }), "invalid_type", "missedFires.maxCatchup"],
  ["data function", (q) => q.add("n", () => 1), "encode", "data"],
  ["data Set", (q) => q.add("n", new Set([1])), "encode", "Set"],
  ["data symbol", (q) => q.add("n", { s: Symbol("x") }), "encode", "data"],
  ["data bigint", (q) => q.add("n", 10n), "encode", "data"],
  // Encodable, but no reader can decode a compound map key: refused at add.
  ["data Map array key", (q) => q.add("n", new Map([[[1, 2], 3]])), "encode", "data: a map key"],
  ["addBulk Map array key", (q) => q.addBulk([{ name: "ok", data: 1 }, { name: "n", data: new Map([[[1], 2]]) }]), "encode", "jobs[1].data"],
  ["add unknown option", (q) => q.add("n", 1, { priority: 1 }), "invalid_type", "options.priority"],
  // addUnique, addBulk
  ["addUnique without jobId", (q) => q.addUnique("n", 1, {}), "invalid_type", "jobId"],
  ["addBulk not array", (q) => q.addBulk({ name: "n", data: 1 }), "invalid_type", "jobs"],
  ["addBulk entry type", (q) => q.addBulk([5]), "invalid_type", "jobs[0]"],
  ["addBulk missing data", (q) => q.addBulk([{ name: "n" }]), "invalid_type", "jobs[0]"],
  ["addBulk unknown key", (q) => q.addBulk([{ name: "n", data: 1, prio: 1 }]), "invalid_type", "jobs[0].prio"],
  ["addBulk bad delay", (q) => q.addBulk([{ name: "n", data: 1 }, { name: "n", data: 1, delay: -1 }]), "invalid_argument", "jobs[1].delay"],
  ["addBulk bad opts key", (q) => q.addBulk([{ name: "n", data: 1, opts: { lifo: true } }]), "invalid_type", "jobs[0].opts.lifo"],
  ["addBulk opts twice", (q) => q.addBulk([{ name: "n", data: 1, jobId: "a", opts: { jobId: "b" } }]), "invalid_argument", "mutually exclusive"],
  ["addBulk bad name", (q) => q.addBulk([{ name: 1, data: 1 }]), "invalid_type", "jobs[0].name"],
  ["addBulk unencodable", (q) => q.addBulk([{ name: "ok", data: 1 }, { name: "n", data: () => 1 }]), "encode", "jobs[1].data"],
  // other Queue methods
  ["cancelDelayed blank", (q) => q.cancelDelayed(" "), "invalid_argument", "jobId"],
  ["peekDlq zero", (q) => q.peekDlq(0), "invalid_argument", "limit"],
  ["peekDlq string", (q) => q.peekDlq("5"), "invalid_type", "limit"],
  ["replayDlq negative", (q) => q.replayDlq(-1), "invalid_argument", "limit"],
  ["getRepeatableJobs zero", (q) => q.getRepeatableJobs(0), "invalid_argument", "limit"],
  ["removeRepeatableByKey blank", (q) => q.removeRepeatableByKey(""), "invalid_argument", "key"],
  ["getJobResult type", (q) => q.getJobResult(5), "invalid_type", "jobId"],
  ["getJobResultBulk string", (q) => q.getJobResultBulk("abc"), "invalid_type", "jobIds"],
  ["getJobResultBulk item", (q) => q.getJobResultBulk(["ok", " "]), "invalid_argument", "jobIds[1]"],
  ["upsert repeat object", (q) => q.upsertRepeatableJob("n", 1, { repeat: { every: 5 } }), "invalid_type", "repeat"],
  ["upsert without options", (q) => q.upsertRepeatableJob("n", 1), "invalid_type", "repeat"],
  ["upsert limit", (q) => q.upsertRepeatableJob("n", 1, { repeat: RepeatPattern.every(5), limit: 0 }), "invalid_argument", "limit"],
  ["upsert startAfterMs", (q) => q.upsertRepeatableJob("n", 1, { repeat: RepeatPattern.every(5), startAfterMs: -1 }), "invalid_argument", "startAfterMs"],
  ["upsert bad cron", (q) => q.upsertRepeatableJob("n", 1, { repeat: RepeatPattern.cron("61 * * * *") }), "invalid_argument", "cron"],
  ["upsert bad tz", (q) => q.upsertRepeatableJob("n", 1, { repeat: RepeatPattern.cron("* * * * *", { tz: "Mars/Base" }) }), "invalid_argument", "tz"],
  // Worker
  ["worker handler", () => new Worker("q", "not a function"), "invalid_type", "handler"],
  ["worker queue name", () => new Worker("", handler), "invalid_argument", "queueName"],
  ["worker concurrency zero", () => new Worker("q", handler, { concurrency: 0 }), "invalid_argument", "concurrency"],
  ["worker concurrency cap", () => new Worker("q", handler, { concurrency: 200_000 }), "invalid_argument", "concurrency"],
  ["worker maxAttempts type", () => new Worker("q", handler, { maxAttempts: "3" }), "invalid_type", "maxAttempts"],
  ["worker group blank", () => new Worker("q", handler, { group: " " }), "invalid_argument", "group"],
  ["worker consumerId empty", () => new Worker("q", handler, { consumerId: "" }), "invalid_argument", "consumerId"],
  ["worker readBlockMs", () => new Worker("q", handler, { readBlockMs: 0 }), "invalid_argument", "readBlockMs"],
  ["worker eventsEnabled", () => new Worker("q", handler, { eventsEnabled: "yes" }), "invalid_type", "eventsEnabled"],
  ["worker storeResults", () => new Worker("q", handler, { storeResults: 1 }), "invalid_type", "storeResults"],
  ["worker resultTtlMs", () => new Worker("q", handler, { resultTtlMs: -1 }), "invalid_argument", "resultTtlMs"],
  ["worker shutdownTimeoutMs", () => new Worker("q", handler, { shutdownTimeoutMs: 0 }), "invalid_argument", "shutdownTimeoutMs"],
  ["worker redisUrl", () => new Worker("q", handler, { redisUrl: "redis://u:hunter2@h:0" }), "invalid_argument", "redisUrl"],
  ["worker unknown option", () => new Worker("q", handler, { autorun: true }), "invalid_type", "options.autorun"],
  // QueueEvents
  ["events lastEventId", () => new QueueEvents("q", { lastEventId: "latest" }), "invalid_argument", "lastEventId"],
  ["events blockMs", () => new QueueEvents("q", { blockMs: 0 }), "invalid_argument", "blockMs"],
  ["events count", () => new QueueEvents("q", { count: 1.5 }), "invalid_type", "count"],
  // Job and the value types
  ["waitForResult timeoutMs", () => new Job({ id: "j", name: "", data: 1, attempt: 0, createdAtMs: 0 }).waitForResult({ timeoutMs: 0 }), "invalid_argument", "timeoutMs"],
  ["waitForResult poll", () => new Job({ id: "j", name: "", data: 1, attempt: 0, createdAtMs: 0 }).waitForResult({ pollIntervalMs: "1" }), "invalid_type", "pollIntervalMs"],
  ["cron empty", () => RepeatPattern.cron(""), "invalid_argument", "expression"],
  ["cron type", () => RepeatPattern.cron(5), "invalid_type", "expression"],
  ["cron tz blank", () => RepeatPattern.cron("* * * * *", { tz: " " }), "invalid_argument", "tz"],
  ["every zero", () => RepeatPattern.every(0), "invalid_argument", "intervalMs"],
  ["every float", () => RepeatPattern.every(1.5), "invalid_type", "intervalMs"],
  ["fixed negative", () => BackoffSpec.fixed(-1), "invalid_argument", "delayMs"],
  ["fixed jitter", () => BackoffSpec.fixed(1, -1), "invalid_argument", "jitterMs"],
  ["exponential multiplier", () => BackoffSpec.exponential(1, { multiplier: 0 }), "invalid_argument", "multiplier"],
  ["exponential maxMs", () => BackoffSpec.exponential(1, { maxMs: "x" }), "invalid_type", "maxMs"],
  ["fireAll zero", () => MissedFiresPolicy.fireAll(0), "invalid_argument", "maxCatchup"],
];

async function failure(call, queue) {
  try {
    await call(queue);
  } catch (e) {
    return e;
  }
  return null;
}

test("every validation error: class, code, field, nothing written", async () => {
  const queue = new Queue("validation", { redisUrl: ctx.url });
  const before = await allKeys(ctx.r);
  for (const [label, call, code, text] of CASES) {
    const e = await failure(call, queue);
    assert.ok(e !== null, `${label}: no error`);
    assert.equal(e.code, code, `${label}: ${e.code} ${e.message}`);
    assert.ok(e instanceof ChasquiError, label);
    if (code === "invalid_type" || code === "encode") assert.ok(e instanceof TypeError, label);
    if (code === "invalid_argument") assert.ok(e instanceof RangeError, label);
    assert.ok(e.message.includes(text), `${label}: ${JSON.stringify(text)} not in ${JSON.stringify(e.message)}`);
    assert.ok(!e.message.includes("hunter2"), `${label}: the password is echoed`);
  }
  assert.deepEqual(await allKeys(ctx.r), before, "a rejected call wrote to Redis");
  await queue.close();
});

test("every rule of the spec schema exists in validate.ts", () => {
  const schema = JSON.parse(readFileSync(new URL("../../../spec/schema/api.schema.json", import.meta.url)));
  const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
  for (const rule of schema.$defs.rule.enum) {
    assert.equal(typeof validate[camel(rule)], "function", rule);
  }
});

test("accepted values pass the rules", () => {
  validate.redisUrl("u", "redis://user:pw@localhost:6379/0");
  validate.redisUrl("u", "rediss://[::1]:6380");
  validate.redisUrl("u", "redis://h");
  validate.redisUrl("u", "redis-cluster://h:7000?node=h:7001&node=h:7002");
  validate.redisUrl("u", "valkeys://h:6380?tls_ca_file=/etc/hostname");
  validate.streamId("s", "$");
  validate.streamId("s", "0");
  validate.streamId("s", "1700000000000-5");
  validate.delayMs("d", 0);
  validate.delayMs("d", 1.5);
  validate.delayMs("d", new Date());
  validate.jobName("n", "");
  validate.jobName("n", "é".repeat(128));
  validate.jobId("j", "order-42");
  validate.backoffLike("b", 0);
  validate.backoffLike("b", BackoffSpec.fixed(1));
  validate.backoffLike("b", { type: "fixed", delay: 1 });
  validate.repeatLike("r", { every: 1 });
  validate.missedFiresLike("m", { kind: "fire-all", maxCatchup: 2 });
  validate.bulkJobs("jobs", [{ name: "a", data: 1, opts: { delay: 5 } }, { name: "b", data: null }]);
  validate.positiveInt("p", Number.MAX_SAFE_INTEGER);
});
