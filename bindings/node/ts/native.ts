/**
 * The private native module (napi's generated `native/index.js`) and the
 * conversion of its errors.
 *
 * The Rust side rejects with a plain Error whose message starts with
 * `[<code>] `; `fromNative` turns it into the generated class of that code,
 * so `err.code` and `instanceof` work. That is the one place engine errors
 * become Node errors.
 */

import * as native from "../native/index.js";
import { onEngineRecord } from "./log.js";
import {
  ERRORS_BY_CODE,
  InternalError,
  InvalidTypeError,
} from "./_generated/errors.js";

export type {
  AddOptions as NativeAddOptions,
  BackoffOptions as NativeBackoff,
  Delivery,
  DlqEntry as NativeDlqEntry,
  MissedFiresObject,
  PatternObject,
  RepeatableMeta as NativeRepeatableMeta,
  SettleOutcome,
  UpsertSpec,
} from "../native/index.js";

const CODED = /^\[([a-z_]+)\] ([\s\S]*)$/;

// napi's own argument conversions fail with these codes: a JavaScript value
// of the wrong type reached the native module.
const NAPI_TYPE_CODES = new Set([
  "InvalidArg",
  "ObjectExpected",
  "StringExpected",
  "NameExpected",
  "FunctionExpected",
  "NumberExpected",
  "BooleanExpected",
  "ArrayExpected",
  "BigintExpected",
  "DateExpected",
  "ArrayBufferExpected",
  "DetachableArraybufferExpected",
]);

/** The ChasquiMQ error for an error thrown by the native module. */
export function fromNative(e: unknown): unknown {
  if (!(e instanceof Error)) {
    return e;
  }
  const m = CODED.exec(e.message);
  if (m) {
    const cls = ERRORS_BY_CODE[m[1]] ?? InternalError;
    return new cls(m[2]);
  }
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && NAPI_TYPE_CODES.has(code)) {
    return new InvalidTypeError(e.message);
  }
  return e;
}

function rethrow(e: unknown): never {
  throw fromNative(e);
}

// Every function of the native module converts its errors at the boundary,
// whether it throws or returns a rejected promise, so no caller (this
// package's classes or a power user of Producer/Consumer/Scheduler) ever
// sees an unconverted native error.
function converting<F extends (...args: never[]) => unknown>(f: F): F {
  return function (this: unknown, ...args: Parameters<F>) {
    try {
      const out = f.apply(this, args);
      return out instanceof Promise ? out.catch(rethrow) : out;
    } catch (e) {
      rethrow(e);
    }
  } as F;
}

function convertingClass<C extends abstract new (...args: never[]) => object>(cls: C): C {
  const proto = cls.prototype as Record<string, unknown>;
  for (const key of Object.getOwnPropertyNames(proto)) {
    const desc = Object.getOwnPropertyDescriptor(proto, key);
    if (key === "constructor" || !desc || typeof desc.value !== "function") {
      continue;
    }
    Object.defineProperty(proto, key, {
      ...desc,
      value: converting(desc.value as (...args: never[]) => unknown),
    });
  }
  return new Proxy(cls, {
    construct(target, args, newTarget) {
      try {
        return Reflect.construct(target, args, newTarget);
      } catch (e) {
        rethrow(e);
      }
    },
  });
}

// The engine's log records reach JavaScript from the first import on.
native._setLogSink(onEngineRecord);

/** The engine's producer for one queue (power-user surface). */
export const Producer = convertingClass(native.Producer);
export type Producer = native.Producer;
/** The engine's consumer for one queue (power-user surface). */
export const Consumer = convertingClass(native.Consumer);
export type Consumer = native.Consumer;
/** A repeatable-job scheduler without a worker (power-user surface). */
export const Scheduler = convertingClass(native.Scheduler);
export type Scheduler = native.Scheduler;

/** The version of the native binding crate. */
export const version: () => string = converting(native.version);

/** @internal Every engine error code (tests of the conversion). */
export const engineErrorCodes: () => string[] = converting(native._engineErrorCodes);
/** @internal Throws the sample engine error of `code` (tests of the conversion). */
export const throwEngineError: (code: string) => void = converting(native._throwEngineError);
