/**
 * Behaviour of the schedule and retry value types (fields and validation are
 * generated in `_generated/types.ts`).
 */

import type {
  BackoffSpecFields,
  MissedFiresPolicyFields,
  RepeatPatternFields,
} from "./_generated/types.js";
import type { MissedFiresObject, NativeBackoff, PatternObject } from "./native.js";

type Make<F, T> = new (fields: F) => T;

export class RepeatPatternBase {
  /** @internal */
  static _cron<T>(this: Make<RepeatPatternFields, T>, expression: string, options: { tz: string | null }): T {
    return new this({ kind: "cron", expression, tz: options.tz });
  }

  /** @internal */
  static _every<T>(this: Make<RepeatPatternFields, T>, intervalMs: number): T {
    return new this({ kind: "every", intervalMs });
  }

  /** @internal */
  _toDict(): Record<string, any> {
    const s = this as unknown as RepeatPatternFields;
    if (s.kind === "cron") {
      return { kind: "cron", expression: s.expression, tz: s.tz ?? null };
    }
    return { kind: "every", intervalMs: s.intervalMs };
  }

  /** @internal The native shape (no null fields). */
  _native(): PatternObject {
    const s = this as unknown as RepeatPatternFields;
    const out: PatternObject = { kind: s.kind };
    if (s.expression != null) out.expression = s.expression;
    if (s.tz != null) out.tz = s.tz;
    if (s.intervalMs != null) out.intervalMs = s.intervalMs;
    return out;
  }
}

export class BackoffSpecBase {
  /** @internal */
  static _fixed<T>(this: Make<BackoffSpecFields, T>, delayMs: number, jitterMs: number | null): T {
    return new this({ kind: "fixed", delayMs, jitterMs });
  }

  /** @internal */
  static _exponential<T>(
    this: Make<BackoffSpecFields, T>,
    initialMs: number,
    options: { multiplier: number; maxMs: number | null; jitterMs: number | null },
  ): T {
    return new this({
      kind: "exponential",
      delayMs: initialMs,
      maxDelayMs: options.maxMs,
      multiplier: options.multiplier,
      jitterMs: options.jitterMs,
    });
  }

  /** @internal The native shape (no null fields). */
  _native(): NativeBackoff {
    const s = this as unknown as BackoffSpecFields;
    const out: NativeBackoff = { kind: s.kind, delayMs: s.delayMs };
    if (s.maxDelayMs != null) out.maxDelayMs = s.maxDelayMs;
    if (s.multiplier != null) out.multiplier = s.multiplier;
    if (s.jitterMs != null) out.jitterMs = s.jitterMs;
    return out;
  }
}

export class MissedFiresPolicyBase {
  /** @internal */
  static _skip<T>(this: Make<MissedFiresPolicyFields, T>): T {
    return new this({ kind: "skip" });
  }

  /** @internal */
  static _fireOnce<T>(this: Make<MissedFiresPolicyFields, T>): T {
    return new this({ kind: "fire-once" });
  }

  /** @internal */
  static _fireAll<T>(this: Make<MissedFiresPolicyFields, T>, maxCatchup: number): T {
    return new this({ kind: "fire-all", maxCatchup });
  }

  /** @internal */
  _toDict(): Record<string, any> {
    const s = this as unknown as MissedFiresPolicyFields;
    const out: Record<string, any> = { kind: s.kind };
    if (s.maxCatchup != null) out.maxCatchup = s.maxCatchup;
    return out;
  }

  /** @internal The native shape. */
  _native(): MissedFiresObject {
    return this._toDict() as MissedFiresObject;
  }
}
