/**
 * Argument validation rules of the public API, mirroring the Python
 * package's `_validate.py` rule for rule, with the same error codes.
 *
 * spec/api.yaml names a rule per parameter (`validate: positive_int`) and the
 * generated code calls the function of the camelCase name here, with the
 * field name first: `validate.positiveInt("concurrency", concurrency)`. A rule
 * returns nothing for an accepted value and throws InvalidTypeError (a
 * TypeError) for a wrong type or InvalidArgumentError (a RangeError) for a
 * wrong value, with a message naming the field and the fix. Messages never
 * echo a Redis URL's password.
 *
 * Rules run on every call of Queue.add, so they do the cheap checks first and
 * allocate nothing on the accepted path. null and undefined are handled by the
 * caller: the generated code skips the rules of an optional parameter that is
 * not given.
 */

import { accessSync, constants } from "node:fs";
import { inspect } from "node:util";
import { InvalidArgumentError, InvalidTypeError } from "./_generated/errors.js";
// Value types are read at call time, not at load time: the generated types
// module imports this one.
import * as types from "./_generated/types.js";

export type Rule = (field: string, value: unknown) => void;

export const MAX_NAME_BYTES = 256;
/** The largest integer a JavaScript number holds exactly. */
export const MAX_INT = Number.MAX_SAFE_INTEGER;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const STREAM_ID = /^(?:\$|\d+(?:-\d+)?)$/;
const MISSED_FIRES_KINDS = ["skip", "fire-once", "fire-all"];

// --------------------------------------------------------------------------
// Messages
// --------------------------------------------------------------------------

function show(value: unknown): string {
  const text = inspect(value, { depth: 1, breakLength: Infinity });
  return text.length <= 60 ? text : text.slice(0, 57) + "...";
}

function typeName(value: unknown): string {
  if (value === null) {
    return "null";
  }
  if (typeof value === "object") {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === "string" && name ? name : "object";
  }
  return typeof value;
}

function wrongType(field: string, expected: string, value: unknown, fix: string): InvalidTypeError {
  return new InvalidTypeError(
    `${field} must be ${expected} (got ${typeName(value)} ${show(value)}); ${fix}`,
  );
}

function wrongValue(field: string, expected: string, value: unknown, fix: string): InvalidArgumentError {
  return new InvalidArgumentError(`${field} must be ${expected} (got ${show(value)}); ${fix}`);
}

/** The error for a call that gives more than one of `fields`. */
export function mutuallyExclusiveError(...fields: string[]): InvalidArgumentError {
  return new InvalidArgumentError(
    `${fields.join(" and ")} are mutually exclusive; pass only one of them`,
  );
}

/** The error for a call that gives `field` without `required`. */
export function requiresError(field: string, required: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${field} needs ${required}; pass ${required} too, or drop ${field}`,
  );
}

/** `rule`, accepting null and undefined as well. */
export function optional(rule: Rule): Rule {
  return (field, value) => {
    if (value != null) {
      rule(field, value);
    }
  };
}

/**
 * The options object of a call: `{}` for null or undefined, an
 * InvalidTypeError for anything but an object or for a key that is not an
 * option (as Python rejects an unknown keyword argument).
 */
export function options<T>(field: string, value: unknown, keys: readonly string[]): T {
  if (value == null) {
    return {} as T;
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    throw wrongType(field, "an options object", value, `pass an object with keys among ${keys.join(", ")}`);
  }
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      throw new InvalidTypeError(
        `${field}.${key} is not a known option; use only ${keys.join(", ")}`,
      );
    }
  }
  return value as T;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return false;
  }
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// --------------------------------------------------------------------------
// Scalars
// --------------------------------------------------------------------------

function checkIntRange(field: string, value: number): void {
  if (value > MAX_INT || value < -MAX_INT) {
    throw new InvalidArgumentError(
      `${field} must be at most ${MAX_INT} in size (got ${value}); pass a smaller integer`,
    );
  }
}

export function str(field: string, value: unknown): void {
  if (typeof value !== "string") {
    throw wrongType(field, "a string", value, "pass text");
  }
}

export function nonEmptyStr(field: string, value: unknown): void {
  if (typeof value !== "string") {
    throw wrongType(field, "a non-empty string", value, "pass text");
  }
  if (value.trim() === "") {
    throw wrongValue(field, "a non-empty string", value, "pass text that is not only whitespace");
  }
}

export function bool(field: string, value: unknown): void {
  if (value !== true && value !== false) {
    throw wrongType(field, "a boolean", value, "pass true or false");
  }
}

export function int(field: string, value: unknown): void {
  if (!Number.isInteger(value)) {
    throw wrongType(field, "an integer", value, "pass a whole number");
  }
  checkIntRange(field, value as number);
}

export function positiveInt(field: string, value: unknown): void {
  if (!Number.isInteger(value)) {
    throw wrongType(field, "a positive integer", value, "pass an integer >= 1");
  }
  if ((value as number) < 1) {
    throw wrongValue(field, "a positive integer", value, "pass an integer >= 1");
  }
  checkIntRange(field, value as number);
}

export function nonNegativeInt(field: string, value: unknown): void {
  if (!Number.isInteger(value)) {
    throw wrongType(field, "a non-negative integer", value, "pass an integer >= 0");
  }
  if ((value as number) < 0) {
    throw wrongValue(field, "a non-negative integer", value, "pass an integer >= 0");
  }
  checkIntRange(field, value as number);
}

export function positiveNumber(field: string, value: unknown): void {
  if (typeof value !== "number") {
    throw wrongType(field, "a positive number", value, "pass a number > 0");
  }
  if (!(value > 0) || !Number.isFinite(value)) {
    throw wrongValue(field, "a positive, finite number", value, "pass a number > 0");
  }
}

export function callable(field: string, value: unknown): void {
  if (typeof value !== "function") {
    throw wrongType(field, "a function", value, "pass a function");
  }
}

export function handler(field: string, value: unknown): void {
  if (typeof value !== "function") {
    throw wrongType(
      field,
      "a function taking a Job",
      value,
      "pass e.g. `async (job) => { ... }`",
    );
  }
}

// --------------------------------------------------------------------------
// Names and ids
// --------------------------------------------------------------------------

const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function"
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : () => true;

/** At most MAX_NAME_BYTES of UTF-8; short text (the usual case) skips counting. */
function checkBytes(field: string, value: string, what: string): void {
  if (!isWellFormed(value)) {
    throw wrongValue(field, `${what} of valid Unicode text`, value, "remove lone surrogates");
  }
  if (value.length * 3 <= MAX_NAME_BYTES) {
    return;
  }
  const size = Buffer.byteLength(value, "utf8");
  if (size > MAX_NAME_BYTES) {
    throw new InvalidArgumentError(
      `${field} must be at most ${MAX_NAME_BYTES} bytes of UTF-8 (got ${size} bytes: ${show(value)}); pass a shorter ${what}`,
    );
  }
}

// The Unicode White_Space property, as the engine's char::is_whitespace and
// Python's _validate (not JavaScript's \s or trim(), which count U+FEFF).
const WHITESPACE = new Set(
  "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" +
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
);

export function queueName(field: string, value: unknown): void {
  if (typeof value !== "string") {
    throw wrongType(field, "a string", value, "pass the queue name as text");
  }
  if (value === "" || [...value].every((c) => WHITESPACE.has(c))) {
    throw wrongValue(field, "a non-empty queue name", value, "pass a name such as 'emails'");
  }
  if (value.includes("{") || value.includes("}")) {
    throw wrongValue(
      field,
      "a queue name without '{' or '}'",
      value,
      "remove the braces: the name sits inside the Redis Cluster hash tag {chasqui:<name>}",
    );
  }
  // The rules of spec/vectors/queue_names.json, shared with the engine.
  if (CONTROL.test(value)) {
    throw wrongValue(field, "a queue name without control characters", value, "remove them");
  }
  if (WHITESPACE.has(value[0]) || WHITESPACE.has(value[value.length - 1])) {
    throw wrongValue(field, "a queue name without leading or trailing whitespace", value, "trim the name");
  }
  checkBytes(field, value, "name");
}

export function jobName(field: string, value: unknown): void {
  if (typeof value !== "string") {
    throw wrongType(field, "a string", value, "pass the job name as text ('' for none)");
  }
  checkBytes(field, value, "name");
}

export function jobId(field: string, value: unknown): void {
  if (typeof value !== "string") {
    throw wrongType(field, "a string", value, "pass the job id as text");
  }
  if (value.trim() === "") {
    throw wrongValue(
      field,
      "a non-empty job id",
      value,
      "pass a stable id such as 'order-42', not only whitespace",
    );
  }
  if (CONTROL.test(value)) {
    throw wrongValue(field, "a job id without control characters", value, "remove them");
  }
  checkBytes(field, value, "id");
}

export function jobIds(field: string, value: unknown): void {
  if (!Array.isArray(value)) {
    throw wrongType(field, "an array of job ids", value, "pass an array of strings, e.g. [job.id]");
  }
  for (let i = 0; i < value.length; i++) {
    jobId(`${field}[${i}]`, value[i]);
  }
}

export function streamId(field: string, value: unknown): void {
  if (typeof value !== "string") {
    throw wrongType(field, "a string", value, 'pass "$", "0" or an id like "1700000000000-0"');
  }
  if (!STREAM_ID.test(value)) {
    throw wrongValue(
      field,
      "a stream id",
      value,
      'pass "$" (new entries only), "0" (from the start) or "<ms>-<seq>"',
    );
  }
}

// --------------------------------------------------------------------------
// Redis URL
// --------------------------------------------------------------------------

/** `url` without its user info and query, which may hold a password. */
export function redact(url: string): string {
  const sep = url.indexOf("://");
  let scheme = "";
  let rest = url;
  if (sep >= 0) {
    scheme = url.slice(0, sep + 3);
    rest = url.slice(sep + 3);
  }
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    rest = "***@" + rest.slice(at + 1);
  }
  const q = rest.indexOf("?");
  if (q >= 0) {
    rest = rest.slice(0, q);
  }
  return scheme + rest;
}

/** URL schemes the engine accepts (the same list as the Python package). */
export const SCHEMES = [
  "redis",
  "rediss",
  "redis-cluster",
  "rediss-cluster",
  "valkey",
  "valkeys",
  "valkey-cluster",
  "valkeys-cluster",
];
/** The engine's TLS query parameters (PEM files). */
export const TLS_PARAMS = ["tls_ca_file", "tls_cert_file", "tls_key_file"];

export function isTlsScheme(scheme: string): boolean {
  return scheme.startsWith("rediss") || scheme.startsWith("valkeys");
}

const AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)(?::([^/?#]*))?/;

function urlProblem(url: string): string | null {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (!scheme || !SCHEMES.includes(scheme[1].toLowerCase())) {
    return "the scheme must be redis, rediss, redis-cluster or rediss-cluster";
  }
  if (url.includes("#")) {
    return "a '#' must be percent-encoded as %23";
  }
  const authority = AUTHORITY.exec(url);
  const port = authority?.[2];
  if (port !== undefined && port !== "" && !(/^\d+$/.test(port) && +port >= 1 && +port <= 65535)) {
    return "the port must be an integer in 1..65535";
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a URL";
  }
  for (const [k, v] of parsed.searchParams) {
    if (k.startsWith("tls_") && !TLS_PARAMS.includes(k)) {
      return `unknown query parameter '${k}'; use ${TLS_PARAMS.join(", ")}`;
    }
    if (TLS_PARAMS.includes(k) && !isTlsScheme(scheme[1].toLowerCase())) {
      return `${k} needs a TLS URL (rediss:// or rediss-cluster://)`;
    }
    if (TLS_PARAMS.includes(k)) {
      try {
        accessSync(v, constants.R_OK);
      } catch {
        return `${k}: cannot read '${v}'`;
      }
    }
  }
  if (!parsed.hostname) {
    return "no host";
  }
  if (parsed.port === "0") {
    return "the port must be an integer in 1..65535";
  }
  const db = parsed.pathname.replace(/^\//, "");
  if (db && !/^\d+$/.test(db)) {
    return "the path must be /<database number>";
  }
  return null;
}

export function redisUrl(field: string, value: unknown): void {
  if (typeof value !== "string") {
    throw wrongType(field, "a string", value, "pass a URL such as 'redis://127.0.0.1:6379'");
  }
  const problem = urlProblem(value);
  if (problem) {
    throw new InvalidArgumentError(
      `${field} must be a redis://, rediss:// or redis-cluster:// URL with a host ` +
        `(got '${redact(value)}': ${problem}); pass e.g. 'redis://user:password@host:6379/0'`,
    );
  }
}

// --------------------------------------------------------------------------
// Delays (a duration is a number of milliseconds in Node)
// --------------------------------------------------------------------------

export function delayMs(field: string, value: unknown): void {
  if (typeof value === "number") {
    // The comparison is false for NaN as well.
    if (!(value >= 0 && value < Infinity)) {
      throw wrongValue(
        field,
        "a non-negative, finite number of milliseconds",
        value,
        "pass e.g. 5000, or a Date for an absolute time",
      );
    }
    return;
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) {
      throw wrongValue(field, "a valid Date", value, "pass a Date with a time");
    }
    return;
  }
  throw wrongType(
    field,
    "a number of milliseconds or a Date",
    value,
    "pass e.g. { delayMs: 5000 }, or { delay: 5000 }",
  );
}

export function timedelta(field: string, value: unknown): void {
  if (typeof value !== "number") {
    throw wrongType(field, "a number of milliseconds", value, "pass e.g. 5000");
  }
  if (!(value >= 0 && value < Infinity)) {
    throw wrongValue(field, "a non-negative, finite number of milliseconds", value, "pass e.g. 5000");
  }
}

// --------------------------------------------------------------------------
// Value types
// --------------------------------------------------------------------------

export function backoffLike(field: string, value: unknown): void {
  if (Number.isInteger(value)) {
    if ((value as number) < 0) {
      throw wrongValue(
        field,
        "a non-negative delay in milliseconds",
        value,
        "pass an integer >= 0 or a BackoffSpec",
      );
    }
    checkIntRange(field, value as number);
    return;
  }
  if (value instanceof types.BackoffSpec || isPlainObject(value)) {
    return;
  }
  throw wrongType(
    field,
    "an integer of milliseconds, a BackoffSpec or an object",
    value,
    "pass e.g. BackoffSpec.exponential(1000) or { type: 'fixed', delay: 1000 }",
  );
}

export function repeatLike(field: string, value: unknown): void {
  if (!(value instanceof types.RepeatPattern) && !isPlainObject(value)) {
    throw wrongType(
      field,
      "a RepeatPattern or an object",
      value,
      "pass e.g. RepeatPattern.every(60_000) or RepeatPattern.cron('0 * * * *')",
    );
  }
}

export function repeatPattern(field: string, value: unknown): void {
  if (!(value instanceof types.RepeatPattern)) {
    throw wrongType(
      field,
      "a RepeatPattern",
      value,
      "pass e.g. RepeatPattern.every(60_000) or RepeatPattern.cron('0 * * * *')",
    );
  }
}

export function missedFiresLike(field: string, value: unknown): void {
  if (value instanceof types.MissedFiresPolicy) {
    return;
  }
  if (!isPlainObject(value)) {
    throw wrongType(
      field,
      "a MissedFiresPolicy or an object",
      value,
      "pass e.g. MissedFiresPolicy.fireOnce()",
    );
  }
  const kind = value.kind;
  if (typeof kind !== "string" || !MISSED_FIRES_KINDS.includes(kind)) {
    throw wrongValue(
      `${field}.kind`,
      "one of " + MISSED_FIRES_KINDS.map((k) => `'${k}'`).join(", "),
      kind,
      "or pass a MissedFiresPolicy",
    );
  }
  if (kind === "fire-all") {
    positiveInt(`${field}.maxCatchup`, value.maxCatchup);
  }
}

// --------------------------------------------------------------------------
// Queue.addBulk entries: the same rules as the parameters of Queue.add
// --------------------------------------------------------------------------

/** The options of one bulk entry, flat or under BullMQ's `opts`. */
export const BULK_OPTION_RULES: Readonly<Record<string, Rule>> = {
  delayMs: optional(delayMs),
  delay: optional(timedelta),
  attempts: optional(positiveInt),
  backoff: optional(backoffLike),
  jobId: optional(jobId),
  timeoutMs: optional(positiveInt),
  repeat: optional(repeatLike),
};
export const BULK_JOB_KEYS: readonly string[] = ["name", "data", ...Object.keys(BULK_OPTION_RULES), "opts"];
const BULK_REQUIRED = ["name", "data"];

export function bulkJobs(field: string, value: unknown): void {
  if (!Array.isArray(value)) {
    throw wrongType(field, "an array of objects", value, 'pass e.g. [{ name: "send", data: {...} }]');
  }
  const allowed = BULK_JOB_KEYS.join(", ");
  for (let i = 0; i < value.length; i++) {
    const where = `${field}[${i}]`;
    const entry: unknown = value[i];
    if (!isPlainObject(entry)) {
      throw wrongType(where, "an object", entry, `pass an object with keys among ${allowed}`);
    }
    for (const key of BULK_REQUIRED) {
      if (!(key in entry)) {
        throw new InvalidTypeError(`${where} has no '${key}' key; each entry needs 'name' and 'data'`);
      }
    }
    for (const key of Object.keys(entry)) {
      if (!BULK_JOB_KEYS.includes(key)) {
        throw new InvalidTypeError(`${where}.${key} is not a known key; use only ${allowed}`);
      }
    }
    jobName(`${where}.name`, entry.name);
    const opts = entry.opts;
    if (opts != null && !isPlainObject(opts)) {
      throw wrongType(`${where}.opts`, "an object", opts, "pass the job's options, e.g. { delay: 1000 }");
    }
    for (const [key, rule] of Object.entries(BULK_OPTION_RULES)) {
      rule(`${where}.${key}`, entry[key]);
      if (opts != null) {
        rule(`${where}.opts.${key}`, opts[key]);
        if (entry[key] != null && opts[key] != null) {
          throw mutuallyExclusiveError(`${where}.${key}`, `${where}.opts.${key}`);
        }
      }
    }
    if (opts != null) {
      for (const key of Object.keys(opts)) {
        if (!(key in BULK_OPTION_RULES)) {
          throw new InvalidTypeError(
            `${where}.opts.${key} is not a known option; use only ${Object.keys(BULK_OPTION_RULES).join(", ")}`,
          );
        }
      }
    }
    const merged = { ...(opts ?? {}), ...entry };
    const delayGiven = (merged.delayMs ?? opts?.delayMs) != null;
    const delayAlso = (merged.delay ?? opts?.delay) != null;
    if (delayGiven && delayAlso) {
      throw mutuallyExclusiveError(`${where}.delayMs`, `${where}.delay`);
    }
  }
}
