//! Repeatable specs without Redis: patterns, next-fire computation, missed-fire
//! planning and the byte-exact `repeat:spec:<key>` codecs.
//!
//! Everything here is pure (no I/O, no clock): the scheduler passes `now_ms`
//! in, so every rule is unit-testable and the conformance vectors can pin a
//! fixed clock.
//!
//! - [`pattern`]: [`Pattern`] (`Cron` / `Every`), its validation, spec keys and
//!   [`Schedule`], the compiled form that answers "when is the next fire?".
//! - [`cron`]: cron evaluation in a time zone with the wire contract's DST
//!   rules (an ambiguous local time fires once, at the earlier instant; a
//!   local time in a spring-forward gap fires at the first valid local time
//!   after the gap).
//! - [`missed`]: [`MissedFires`] and [`plan_fires`], which turns a due spec
//!   into the fires to emit now and the new next fire.
//! - [`spec`]: [`StoredSpec`] (the 1.x-compatible msgpack array in the hash
//!   field `spec`) and [`SpecOptions`] (our `opts` hash field, see below).
//!
//! # Per-fire retry options (`opts`), a ChasquiMQ 2 extension
//!
//! 1.x stores a spec as an 8- or 9-element array and rejects any other length,
//! so retry options cannot be appended to it without breaking 1.x readers.
//! They live instead in a separate field of the same hash:
//!
//! ```text
//! {chasqui:Q}:repeat:spec:<key>   field spec  = StoredSpec (unchanged 1.x bytes)
//!                                 field fired = fire counter (HINCRBY)
//!                                 field opts  = msgpack [max_attempts|nil, backoff|nil]
//! ```
//!
//! `backoff` has the shape of the job envelope's retry override
//! (`[kind, delay_ms, max_delay_ms|nil, multiplier|nil, jitter_ms|nil]`), so a
//! fire copies `opts` into its envelope's fifth element unchanged. An upsert
//! writes `opts` only when one of the two is set and deletes it otherwise, so
//! a spec without options has exactly the 1.x hash layout. 1.x readers only
//! read `spec` and `fired`, and deleting the hash on spec end removes `opts`
//! with it. Readers of `opts` accept arrays of two or more elements and ignore
//! the extra ones, so later versions can add slots.

pub mod cron;
pub mod missed;
pub mod pattern;
pub mod spec;

pub use self::cron::{CronSchedule, Zone};
pub use self::missed::{
    plan_fires, plan_fires_in, FirePlan, MissedFires, Outage, SpecLimits, MAX_FIRES_PER_PLAN,
};
pub use self::pattern::{first_fire, spec_key, validate_limits, Pattern, Schedule};
pub use self::spec::{Backoff, BackoffKind, SpecOptions, StoredSpec, OPTS_FIELD};
pub use crate::msgpack::DecodeError;

/// A caller-supplied repeatable setting is invalid.
///
/// Every variant names the offending `field` (as the public APIs spell it) and
/// its message says how to fix it. The engine maps all of them to its
/// `invalid_argument` code; [`RepeatError::field`] lets bindings point at the
/// argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepeatError {
    /// The cron expression does not parse, or never matches a real date.
    #[error(
        "{field}: invalid cron expression {expression:?}: {reason}; use 5 fields \
         `minute hour day-of-month month day-of-week` or 6 with leading seconds, e.g. \"0 2 * * *\""
    )]
    InvalidCron {
        field: &'static str,
        expression: String,
        reason: String,
    },
    /// The time zone is neither UTC, a fixed offset nor a known IANA name.
    #[error(
        "{field}: unknown time zone {tz:?}; use \"UTC\", \"Z\", a fixed offset such as \
         \"+05:30\" / \"-0800\", or an IANA name such as \"America/New_York\""
    )]
    InvalidTimezone { field: &'static str, tz: String },
    /// An `every` interval outside `1..=i64::MAX` milliseconds.
    #[error("{field}: interval must be a positive number of milliseconds (got {interval_ms})")]
    InvalidInterval {
        field: &'static str,
        interval_ms: u64,
    },
    /// `fire_all` with `max_catchup == 0`.
    #[error(
        "{field}: max_catchup must be at least 1 (got 0); use the skip policy to drop missed fires"
    )]
    InvalidMaxCatchup { field: &'static str },
    /// `limit == 0`: the spec could never fire.
    #[error("{field}: limit must be at least 1 (got 0); omit it for no limit")]
    InvalidLimit { field: &'static str },
    /// `start_after_ms >= end_before_ms`: the window holds no instant.
    #[error(
        "{field}: end_before_ms ({end_before_ms}) must be greater than start_after_ms ({start_after_ms})"
    )]
    EmptyWindow {
        field: &'static str,
        start_after_ms: u64,
        end_before_ms: u64,
    },
    /// A caller-supplied spec key that is empty or only whitespace.
    #[error("{field}: the spec key must not be empty or whitespace; omit it to derive one")]
    InvalidKey { field: &'static str },
    /// A per-fire retry option out of range.
    #[error("{field}: {reason}")]
    InvalidOption { field: &'static str, reason: String },
    /// A timestamp outside what the calendar code can represent.
    #[error("{field}: timestamp {ms} ms is outside the supported range")]
    TimeOutOfRange { field: &'static str, ms: i64 },
    /// A value too large for its msgpack slot (a string or payload over 4 GiB).
    #[error("{field}: value too large to encode ({len} bytes)")]
    TooLarge { field: &'static str, len: usize },
}

impl RepeatError {
    /// The public field name the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::InvalidCron { field, .. }
            | Self::InvalidTimezone { field, .. }
            | Self::InvalidInterval { field, .. }
            | Self::InvalidMaxCatchup { field }
            | Self::InvalidLimit { field }
            | Self::EmptyWindow { field, .. }
            | Self::InvalidKey { field }
            | Self::InvalidOption { field, .. }
            | Self::TimeOutOfRange { field, .. }
            | Self::TooLarge { field, .. } => field,
        }
    }
}
