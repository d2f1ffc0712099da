//! What a due spec emits: the missed-fires policies and [`plan_fires_in`].
//!
//! # Semantics
//!
//! A spec's **windows** are its scheduled fire times from its stored next
//! fire on: the stored next fire itself, then each pattern fire after it (for
//! `Every`, the grid `stored_next + k * interval`). Windows before
//! `start_after_ms` or at/after `end_before_ms` do not exist.
//!
//! At a scheduler tick at `now_ms`, a window at or before `now_ms` is **due**.
//! A due window is **missed** when it falls inside an [`Outage`], a span in
//! which no scheduler ran, and **on time** otherwise.
//!
//! The scheduler measures the outage from the time of the queue's previous
//! tick, which every leader records (`scheduler:tick`, see
//! `docs/wire-format.md`): when that tick is recent (a healthy cadence,
//! across leader changes too) nothing was missed; when it is older, or
//! there is none, the windows after it and more than one tick before now
//! were missed. `docs/reliability.md` gives the numbers.
//!
//! - Every on-time window fires, under every policy, once each and in order.
//!   So a pattern faster than the tick (every 100 ms, ticked each second)
//!   loses nothing, and a spec a busy tick left for the next one (past the
//!   tick's batch) still fires all its windows.
//! - Missed windows follow the spec's [`MissedFires`] policy:
//!   [`Skip`](MissedFires::Skip) drops them all,
//!   [`FireOnce`](MissedFires::FireOnce) emits one fire for all of them (at
//!   the latest missed window's time), and
//!   [`FireAll`](MissedFires::FireAll) emits one fire per missed window, for
//!   the latest `max_catchup` of them (older ones are dropped).
//! - The new next fire is always the first window strictly after `now_ms`:
//!   missed time is never replayed later.
//! - `limit` caps the total: at most `limit - fired` fires are emitted (the
//!   earliest ones), and when the cap is reached the spec ends
//!   (`next_fire_ms == None`). It also ends when no window is left before
//!   `end_before_ms`.
//! - Fires come out in chronological order, each as its window's time.
//!
//! [`plan_fires`] is the same plan with a fixed lateness tolerance: every
//! due window older than `grace_ms` is missed.

use super::pattern::{wire_ms, Schedule};
use super::RepeatError;

/// How a spec catches up on windows missed while no scheduler ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MissedFires {
    /// Drop missed windows; resume on the first future window (the default).
    #[default]
    Skip,
    /// Emit one fire for all missed windows, then resume.
    FireOnce,
    /// Emit one fire per missed window, the latest `max_catchup` of them
    /// (`max_catchup >= 1`), then resume.
    FireAll { max_catchup: u32 },
}

impl MissedFires {
    /// A checked `FireAll`.
    pub fn fire_all(max_catchup: u32) -> Result<Self, RepeatError> {
        let policy = MissedFires::FireAll { max_catchup };
        policy.validate()?;
        Ok(policy)
    }

    /// Rejects `FireAll { max_catchup: 0 }`, which would behave like `Skip`
    /// while encoding differently.
    pub fn validate(&self) -> Result<(), RepeatError> {
        match self {
            MissedFires::FireAll { max_catchup: 0 } => Err(RepeatError::InvalidMaxCatchup {
                field: "missed_fires.max_catchup",
            }),
            _ => Ok(()),
        }
    }
}

/// The bounds and progress of a spec, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecLimits {
    /// The most fires the spec ever emits; `None` for no limit.
    pub limit: Option<u64>,
    /// Fires emitted so far (the hash's `fired` counter).
    pub fired: u64,
    /// No window before this instant (inclusive bound).
    pub start_after_ms: Option<u64>,
    /// No window at or after this instant (exclusive bound).
    pub end_before_ms: Option<u64>,
}

/// What one tick does with one spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// The window times to fire now, in order; all at or before `now_ms`.
    pub fires: Vec<i64>,
    /// The spec's new next fire; `None` when the spec ends (remove it).
    pub next_fire_ms: Option<i64>,
}

/// The most fires one plan emits. Only a pathological pattern reaches it (an
/// `every 1 ms` spec with a long grace); the windows past it are dropped like
/// missed ones, which bounds the work and the batch one tick writes.
pub const MAX_FIRES_PER_PLAN: usize = 10_000;

/// Plans a tick for one spec whose stored next fire is `stored_next_fire_ms`,
/// treating every due window older than `grace_ms` as missed.
///
/// The scheduler calls [`plan_fires_in`] with the outage it measured; this
/// is the same plan with the outage "everything before `now_ms - grace_ms`".
pub fn plan_fires(
    schedule: &Schedule,
    missed: MissedFires,
    limits: &SpecLimits,
    stored_next_fire_ms: i64,
    now_ms: i64,
    grace_ms: u64,
) -> Result<FirePlan, RepeatError> {
    let until = now_ms.saturating_sub(i64::try_from(grace_ms).unwrap_or(i64::MAX));
    plan_fires_in(
        schedule,
        missed,
        limits,
        stored_next_fire_ms,
        now_ms,
        &Outage {
            from_ms: i64::MIN,
            until_ms: until,
        },
    )
}

/// The span of time in which no scheduler ran: windows in
/// `from_ms..until_ms` (start inclusive, end exclusive) were **missed**;
/// every other due window is **on time**. An empty span (`from_ms >=
/// until_ms`) means nothing was missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub from_ms: i64,
    pub until_ms: i64,
}

impl Outage {
    /// No outage: every due window is on time.
    pub const NONE: Outage = Outage {
        from_ms: i64::MIN,
        until_ms: i64::MIN,
    };
}

/// Plans a tick for one spec whose stored next fire is `stored_next_fire_ms`.
///
/// See the [module docs](self) for the rules. A spec that is not due yet
/// (`stored_next_fire_ms > now_ms`) gets no fires and keeps its next fire
/// (moved up to `start_after_ms` if it was before it). Due windows before
/// the outage (a spec a busy tick left for the next one) and after it fire
/// on time; the windows inside it follow `missed`.
pub fn plan_fires_in(
    schedule: &Schedule,
    missed: MissedFires,
    limits: &SpecLimits,
    stored_next_fire_ms: i64,
    now_ms: i64,
    outage: &Outage,
) -> Result<FirePlan, RepeatError> {
    let ended = FirePlan {
        fires: Vec::new(),
        next_fire_ms: None,
    };
    let remaining = limits.limit.map(|limit| limit.saturating_sub(limits.fired));
    if remaining == Some(0) {
        return Ok(ended);
    }
    let windows = Windows {
        schedule,
        anchor: stored_next_fire_ms,
        start: limits.start_after_ms.map_or(i64::MIN, wire_ms),
        end: limits.end_before_ms.map(wire_ms),
    };
    let Some(first) = windows.after(stored_next_fire_ms.saturating_sub(1))? else {
        return Ok(ended);
    };
    if first > now_ms {
        return Ok(FirePlan {
            fires: Vec::new(),
            next_fire_ms: Some(first),
        });
    }

    // Nothing past the limit survives the final truncation, so stop there.
    let cap = remaining.map_or(MAX_FIRES_PER_PLAN, |r| {
        usize::try_from(r).map_or(MAX_FIRES_PER_PLAN, |r| r.min(MAX_FIRES_PER_PLAN))
    });
    let mut fires = Vec::new();
    let mut capped = false;

    // On time, before the outage.
    let mut next = Some(first);
    while let Some(at) = next {
        if at > now_ms || at >= outage.from_ms {
            break;
        }
        if fires.len() >= cap {
            capped = true;
            break;
        }
        fires.push(at);
        next = windows.after(at)?;
    }

    // Missed, inside the outage.
    let lo = first.max(outage.from_ms);
    let hi = outage.until_ms.min(now_ms.saturating_add(1));
    if !capped && lo < hi {
        let last_missed = windows.at_or_before(hi - 1)?.filter(|at| *at >= lo);
        match (missed, last_missed) {
            (MissedFires::Skip, _) | (_, None) => {}
            (MissedFires::FireOnce, Some(last)) => fires.push(last),
            (MissedFires::FireAll { max_catchup }, Some(last)) => {
                let want = usize::try_from(max_catchup)
                    .unwrap_or(usize::MAX)
                    .min(MAX_FIRES_PER_PLAN);
                let mut picked = Vec::new();
                let mut at = last;
                while picked.len() < want {
                    picked.push(at);
                    match windows.at_or_before(at - 1)? {
                        Some(prev) if prev >= lo => at = prev,
                        _ => break,
                    }
                }
                picked.reverse();
                fires.extend(picked);
            }
        }
    }

    // On time, after the outage.
    if !capped {
        // The first window past both earlier phases ([first, from) and
        // [from, until)); `lo >= first`, so this never re-fires one.
        next = windows.after(hi.max(lo) - 1)?;
        while let Some(at) = next {
            if at > now_ms {
                break;
            }
            if fires.len() >= cap {
                capped = true;
                break;
            }
            fires.push(at);
            next = windows.after(at)?;
        }
    }
    if capped {
        next = windows.after(now_ms)?;
    }

    if let Some(r) = remaining {
        if fires.len() as u64 >= r {
            fires.truncate(cap);
            next = None;
        }
    }
    Ok(FirePlan {
        fires,
        next_fire_ms: next,
    })
}

/// A spec's windows (see the module docs).
struct Windows<'a> {
    schedule: &'a Schedule,
    anchor: i64,
    start: i64,
    end: Option<i64>,
}

impl Windows<'_> {
    /// The first window strictly after `t`.
    fn after(&self, t: i64) -> Result<Option<i64>, RepeatError> {
        let t = t.max(self.start.saturating_sub(1));
        let at = self.schedule.window_after(self.anchor, t)?;
        Ok(at.filter(|at| self.end.is_none_or(|end| *at < end)))
    }

    /// The last window at or before `t`.
    fn at_or_before(&self, t: i64) -> Result<Option<i64>, RepeatError> {
        let t = self.end.map_or(t, |end| t.min(end.saturating_sub(1)));
        let at = self.schedule.window_at_or_before(self.anchor, t)?;
        Ok(at.filter(|at| *at >= self.start))
    }
}

#[cfg(test)]
#[path = "missed_tests.rs"]
mod tests;
