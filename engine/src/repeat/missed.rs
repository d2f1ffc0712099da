//! What a due spec emits: the missed-fires policies and [`plan_fires`].
//!
//! # Semantics
//!
//! A spec's **windows** are its scheduled fire times from its stored next
//! fire on: the stored next fire itself, then each pattern fire after it (for
//! `Every`, the grid `stored_next + k * interval`). Windows before
//! `start_after_ms` or at/after `end_before_ms` do not exist.
//!
//! At a scheduler tick at `now_ms`, a window at or before `now_ms` is **due**.
//! A due window is **on time** when it is at most `grace_ms` old
//! (`now_ms - window <= grace_ms`) and **missed** otherwise: the scheduler
//! was down, or had no leader, when it should have fired.
//!
//! - Every on-time window fires, under every policy, once each and in order.
//!   So a pattern faster than the tick (every 100 ms, ticked each second)
//!   loses nothing, and a fire delayed by a short leader failover still goes
//!   out.
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
//! `grace_ms` is the scheduler's tolerance for lateness. It must cover one
//! tick plus a leader failover, or a healthy but briefly leaderless
//! scheduler would "miss" fires: the engine default of a 1 s tick and a 5 s
//! lock suggests `lock_ttl + 2 * tick` = 7 000 ms.

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

/// Plans a tick for one spec whose stored next fire is `stored_next_fire_ms`.
///
/// See the [module docs](self) for the rules. A spec that is not due yet
/// (`stored_next_fire_ms > now_ms`) gets no fires and keeps its next fire
/// (moved up to `start_after_ms` if it was before it).
pub fn plan_fires(
    schedule: &Schedule,
    missed: MissedFires,
    limits: &SpecLimits,
    stored_next_fire_ms: i64,
    now_ms: i64,
    grace_ms: u64,
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
    let on_time_from = now_ms.saturating_sub(i64::try_from(grace_ms).unwrap_or(i64::MAX));
    let mut fires = Vec::new();

    if first < on_time_from {
        let last_missed = windows.at_or_before(on_time_from - 1)?;
        match (missed, last_missed) {
            (MissedFires::Skip, _) | (_, None) => {}
            (MissedFires::FireOnce, Some(last)) => fires.push(last),
            (MissedFires::FireAll { max_catchup }, Some(last)) => {
                let want = usize::try_from(max_catchup)
                    .unwrap_or(usize::MAX)
                    .min(MAX_FIRES_PER_PLAN);
                let mut at = last;
                while fires.len() < want {
                    fires.push(at);
                    match windows.at_or_before(at - 1)? {
                        Some(prev) if prev >= first => at = prev,
                        _ => break,
                    }
                }
                fires.reverse();
            }
        }
    }

    let mut next = if first >= on_time_from {
        Some(first)
    } else {
        windows.after(on_time_from - 1)?
    };
    while let Some(at) = next {
        if at > now_ms {
            break;
        }
        if fires.len() >= cap {
            next = windows.after(now_ms)?;
            break;
        }
        fires.push(at);
        next = windows.after(at)?;
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
mod tests {
    use super::super::Pattern;
    use super::*;

    const SEC: i64 = 1_000;
    const MIN: i64 = 60 * SEC;
    const HOUR: i64 = 60 * MIN;
    const GRACE: u64 = 7_000;
    /// 2025-01-01T00:00:00Z, a whole hour.
    const T0: i64 = 1_735_689_600_000;

    fn hourly() -> Schedule {
        Pattern::cron("0 * * * *", None).unwrap().compile().unwrap()
    }

    fn every(ms: u64) -> Schedule {
        Pattern::every(ms).unwrap().compile().unwrap()
    }

    fn plan(
        s: &Schedule,
        policy: MissedFires,
        limits: SpecLimits,
        stored: i64,
        now: i64,
    ) -> FirePlan {
        plan_fires(s, policy, &limits, stored, now, GRACE).unwrap()
    }

    fn no_limits() -> SpecLimits {
        SpecLimits::default()
    }

    #[test]
    fn policy_constructors() {
        assert_eq!(MissedFires::default(), MissedFires::Skip);
        assert_eq!(
            MissedFires::fire_all(3),
            Ok(MissedFires::FireAll { max_catchup: 3 })
        );
        assert_eq!(
            MissedFires::fire_all(0),
            Err(RepeatError::InvalidMaxCatchup {
                field: "missed_fires.max_catchup"
            })
        );
        assert_eq!(MissedFires::FireOnce.validate(), Ok(()));
    }

    #[test]
    fn not_due_yet() {
        for policy in [
            MissedFires::Skip,
            MissedFires::FireOnce,
            MissedFires::FireAll { max_catchup: 5 },
        ] {
            let p = plan(&hourly(), policy, no_limits(), T0 + HOUR, T0 + 30 * MIN);
            assert_eq!(
                p,
                FirePlan {
                    fires: vec![],
                    next_fire_ms: Some(T0 + HOUR)
                }
            );
        }
    }

    #[test]
    fn an_on_time_fire_goes_out_under_every_policy() {
        for policy in [
            MissedFires::Skip,
            MissedFires::FireOnce,
            MissedFires::FireAll { max_catchup: 5 },
        ] {
            // Exactly due, slightly late, and as late as the grace allows.
            for late in [0, 450, GRACE as i64] {
                let p = plan(&hourly(), policy, no_limits(), T0, T0 + late);
                assert_eq!(
                    p,
                    FirePlan {
                        fires: vec![T0],
                        next_fire_ms: Some(T0 + HOUR)
                    },
                    "{policy:?} late by {late}"
                );
            }
        }
    }

    #[test]
    fn windows_faster_than_the_tick_all_fire() {
        // every 250 ms, ticked each second: four fires per tick, none missed.
        let s = every(250);
        let p = plan(&s, MissedFires::Skip, no_limits(), T0 + 250, T0 + 1_100);
        assert_eq!(p.fires, [T0 + 250, T0 + 500, T0 + 750, T0 + 1_000]);
        assert_eq!(p.next_fire_ms, Some(T0 + 1_250));
        let p = plan(&s, MissedFires::Skip, no_limits(), T0 + 1_250, T0 + 2_100);
        assert_eq!(p.fires, [T0 + 1_250, T0 + 1_500, T0 + 1_750, T0 + 2_000]);
    }

    /// Hourly spec, stored next 01:00, scheduler down until 05:00:03 (the
    /// 05:00 window is on time; 01:00-04:00 were missed).
    #[test]
    fn outage_with_an_on_time_window() {
        let now = T0 + 5 * HOUR + 3 * SEC;
        let stored = T0 + HOUR;
        let next = Some(T0 + 6 * HOUR);
        let run = |policy| plan(&hourly(), policy, no_limits(), stored, now);

        assert_eq!(
            run(MissedFires::Skip),
            FirePlan {
                fires: vec![T0 + 5 * HOUR],
                next_fire_ms: next
            }
        );
        assert_eq!(
            run(MissedFires::FireOnce),
            FirePlan {
                fires: vec![T0 + 4 * HOUR, T0 + 5 * HOUR],
                next_fire_ms: next
            }
        );
        assert_eq!(
            run(MissedFires::FireAll { max_catchup: 2 }),
            FirePlan {
                fires: vec![T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR],
                next_fire_ms: next
            }
        );
        assert_eq!(
            run(MissedFires::FireAll { max_catchup: 100 }).fires,
            [
                T0 + HOUR,
                T0 + 2 * HOUR,
                T0 + 3 * HOUR,
                T0 + 4 * HOUR,
                T0 + 5 * HOUR
            ]
        );
    }

    /// Same outage, but the scheduler comes back at 05:20: every window
    /// since 01:00 was missed.
    #[test]
    fn outage_with_every_window_missed() {
        let now = T0 + 5 * HOUR + 20 * MIN;
        let stored = T0 + HOUR;
        let next = Some(T0 + 6 * HOUR);
        let run = |policy| plan(&hourly(), policy, no_limits(), stored, now);

        assert_eq!(
            run(MissedFires::Skip),
            FirePlan {
                fires: vec![],
                next_fire_ms: next
            }
        );
        assert_eq!(
            run(MissedFires::FireOnce),
            FirePlan {
                fires: vec![T0 + 5 * HOUR],
                next_fire_ms: next
            }
        );
        assert_eq!(
            run(MissedFires::FireAll { max_catchup: 3 }),
            FirePlan {
                fires: vec![T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR],
                next_fire_ms: next
            }
        );
        assert_eq!(
            run(MissedFires::FireAll { max_catchup: 1 }).fires,
            [T0 + 5 * HOUR]
        );
        assert_eq!(run(MissedFires::FireAll { max_catchup: 5 }).fires.len(), 5);
        assert_eq!(
            run(MissedFires::FireAll {
                max_catchup: u32::MAX
            })
            .fires
            .len(),
            5
        );
    }

    #[test]
    fn a_single_late_window_is_missed_past_the_grace() {
        // Daily 02:00 job; the scheduler was down from 01:59 to 03:00.
        let s = Pattern::cron("0 2 * * *", None).unwrap().compile().unwrap();
        let stored = T0 + 2 * HOUR;
        let p = plan(&s, MissedFires::Skip, no_limits(), stored, T0 + 3 * HOUR);
        assert_eq!(
            p,
            FirePlan {
                fires: vec![],
                next_fire_ms: Some(stored + 24 * HOUR)
            }
        );
        let p = plan(
            &s,
            MissedFires::FireOnce,
            no_limits(),
            stored,
            T0 + 3 * HOUR,
        );
        assert_eq!(p.fires, [stored]);
        // A generous grace treats it as on time.
        let p = plan_fires(
            &s,
            MissedFires::Skip,
            &no_limits(),
            stored,
            T0 + 3 * HOUR,
            2 * HOUR as u64,
        )
        .unwrap();
        assert_eq!(p.fires, [stored]);
    }

    #[test]
    fn every_stays_on_its_grid_after_an_outage() {
        // Anchored at T0 + 7 (upsert at T0 + 7 - 10 s), interval 10 s; down
        // for ~95 s.
        let s = every(10_000);
        let stored = T0 + 7;
        let now = stored + 95_000;
        let p = plan(&s, MissedFires::Skip, no_limits(), stored, now);
        // 90 s (5 s old) is on time; 0..80 s are missed.
        assert_eq!(p.fires, [stored + 90_000]);
        assert_eq!(p.next_fire_ms, Some(stored + 100_000));
        let p = plan(&s, MissedFires::FireOnce, no_limits(), stored, now);
        assert_eq!(p.fires, [stored + 80_000, stored + 90_000]);
        let p = plan(
            &s,
            MissedFires::FireAll { max_catchup: 4 },
            no_limits(),
            stored,
            now,
        );
        assert_eq!(
            p.fires,
            [
                stored + 50_000,
                stored + 60_000,
                stored + 70_000,
                stored + 80_000,
                stored + 90_000
            ]
        );
        assert_eq!(p.next_fire_ms, Some(stored + 100_000));
        // A very long outage is arithmetic, not a walk.
        let p = plan(
            &s,
            MissedFires::FireAll { max_catchup: 2 },
            no_limits(),
            stored,
            stored + 10_000 * 1_000_000 + 8_000,
        );
        assert_eq!(
            p.fires,
            [stored + 10_000 * 999_999, stored + 10_000 * 1_000_000]
        );
        assert_eq!(p.next_fire_ms, Some(stored + 10_000 * 1_000_001));
    }

    #[test]
    fn catch_up_across_a_dst_change() {
        // Daily 02:30 in New York; down from 2025-03-07 to 2025-03-11 12:00 local.
        let s = Pattern::cron("30 2 * * *", Some("America/New_York".into()))
            .unwrap()
            .compile()
            .unwrap();
        let ms = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        let stored = ms("2025-03-08T02:30:00-05:00");
        let now = ms("2025-03-11T12:00:00-04:00");
        let p = plan(
            &s,
            MissedFires::FireAll { max_catchup: 10 },
            no_limits(),
            stored,
            now,
        );
        assert_eq!(
            p.fires,
            [
                ms("2025-03-08T02:30:00-05:00"),
                ms("2025-03-09T03:00:00-04:00"), // the gap day
                ms("2025-03-10T02:30:00-04:00"),
                ms("2025-03-11T02:30:00-04:00"),
            ]
        );
        assert_eq!(p.next_fire_ms, Some(ms("2025-03-12T02:30:00-04:00")));
    }

    #[test]
    fn limit_caps_and_ends_the_spec() {
        let s = hourly();
        let now = T0 + 5 * HOUR + 3 * SEC;
        let limits = |limit, fired| SpecLimits {
            limit: Some(limit),
            fired,
            ..SpecLimits::default()
        };
        let all = MissedFires::FireAll { max_catchup: 10 };
        // Room for everything: 5 fires, 10 allowed.
        let p = plan(&s, all, limits(10, 0), T0 + HOUR, now);
        assert_eq!(p.fires.len(), 5);
        assert_eq!(p.next_fire_ms, Some(T0 + 6 * HOUR));
        // Room for exactly the 5: the spec ends.
        let p = plan(&s, all, limits(10, 5), T0 + HOUR, now);
        assert_eq!(p.fires.len(), 5);
        assert_eq!(p.next_fire_ms, None);
        // Room for 2: the earliest two.
        let p = plan(&s, all, limits(10, 8), T0 + HOUR, now);
        assert_eq!(
            p,
            FirePlan {
                fires: vec![T0 + HOUR, T0 + 2 * HOUR],
                next_fire_ms: None
            }
        );
        // Already used up, or over (a 1.x writer raced us).
        assert_eq!(
            plan(&s, all, limits(3, 3), T0 + HOUR, now),
            FirePlan {
                fires: vec![],
                next_fire_ms: None
            }
        );
        assert_eq!(
            plan(&s, all, limits(3, 9), T0 + HOUR, now),
            FirePlan {
                fires: vec![],
                next_fire_ms: None
            }
        );
        // limit 1, a normal on-time fire.
        let p = plan(&s, MissedFires::Skip, limits(1, 0), T0, T0 + 10);
        assert_eq!(
            p,
            FirePlan {
                fires: vec![T0],
                next_fire_ms: None
            }
        );
        // Skip emitting nothing does not consume the limit.
        let p = plan(&s, MissedFires::Skip, limits(1, 0), T0, T0 + 30 * MIN);
        assert_eq!(
            p,
            FirePlan {
                fires: vec![],
                next_fire_ms: Some(T0 + HOUR)
            }
        );
    }

    #[test]
    fn start_after_holds_back_fires() {
        let s = hourly();
        let limits = SpecLimits {
            start_after_ms: Some((T0 + 3 * HOUR) as u64),
            ..SpecLimits::default()
        };
        // Due windows before start_after do not exist.
        let p = plan(
            &s,
            MissedFires::FireAll { max_catchup: 10 },
            limits,
            T0 + HOUR,
            T0 + 2 * HOUR + 10,
        );
        assert_eq!(
            p,
            FirePlan {
                fires: vec![],
                next_fire_ms: Some(T0 + 3 * HOUR)
            }
        );
        let p = plan(
            &s,
            MissedFires::FireAll { max_catchup: 10 },
            limits,
            T0 + HOUR,
            T0 + 4 * HOUR + 10,
        );
        assert_eq!(
            p,
            FirePlan {
                fires: vec![T0 + 3 * HOUR, T0 + 4 * HOUR],
                next_fire_ms: Some(T0 + 5 * HOUR)
            }
        );
        // start_after is inclusive and can fall between windows.
        let limits = SpecLimits {
            start_after_ms: Some((T0 + 3 * HOUR + 1) as u64),
            ..SpecLimits::default()
        };
        let p = plan(
            &s,
            MissedFires::FireOnce,
            limits,
            T0 + HOUR,
            T0 + 5 * HOUR + 10,
        );
        assert_eq!(
            p,
            FirePlan {
                fires: vec![T0 + 4 * HOUR, T0 + 5 * HOUR],
                next_fire_ms: Some(T0 + 6 * HOUR)
            }
        );
        // For Every, windows stay on the stored grid.
        let limits = SpecLimits {
            start_after_ms: Some((T0 + 2_500) as u64),
            ..SpecLimits::default()
        };
        let p = plan(&every(1_000), MissedFires::Skip, limits, T0, T0 + 1_000);
        assert_eq!(
            p,
            FirePlan {
                fires: vec![],
                next_fire_ms: Some(T0 + 3_000)
            }
        );
    }

    #[test]
    fn end_before_ends_the_spec() {
        let s = hourly();
        let limits = SpecLimits {
            end_before_ms: Some((T0 + 3 * HOUR) as u64),
            ..SpecLimits::default()
        };
        // The 02:00 window fires; 03:00 is not before end_before: the spec ends.
        let p = plan(
            &s,
            MissedFires::Skip,
            limits,
            T0 + 2 * HOUR,
            T0 + 2 * HOUR + 10,
        );
        assert_eq!(
            p,
            FirePlan {
                fires: vec![T0 + 2 * HOUR],
                next_fire_ms: None
            }
        );
        // One millisecond more and 03:00 is still a window.
        let limits = SpecLimits {
            end_before_ms: Some((T0 + 3 * HOUR + 1) as u64),
            ..SpecLimits::default()
        };
        let p = plan(
            &s,
            MissedFires::Skip,
            limits,
            T0 + 2 * HOUR,
            T0 + 2 * HOUR + 10,
        );
        assert_eq!(p.next_fire_ms, Some(T0 + 3 * HOUR));
        // Catch-up never reaches past end_before, even when now is past it.
        let limits = SpecLimits {
            end_before_ms: Some((T0 + 3 * HOUR) as u64),
            ..SpecLimits::default()
        };
        let p = plan(
            &s,
            MissedFires::FireAll { max_catchup: 10 },
            limits,
            T0,
            T0 + 10 * HOUR,
        );
        assert_eq!(
            p,
            FirePlan {
                fires: vec![T0, T0 + HOUR, T0 + 2 * HOUR],
                next_fire_ms: None
            }
        );
        let p = plan(&s, MissedFires::FireOnce, limits, T0, T0 + 10 * HOUR);
        assert_eq!(
            p,
            FirePlan {
                fires: vec![T0 + 2 * HOUR],
                next_fire_ms: None
            }
        );
        // A stored next fire already past end_before: ends without firing.
        let p = plan(
            &s,
            MissedFires::FireOnce,
            limits,
            T0 + 3 * HOUR,
            T0 + 10 * HOUR,
        );
        assert_eq!(
            p,
            FirePlan {
                fires: vec![],
                next_fire_ms: None
            }
        );
    }

    #[test]
    fn the_per_plan_cap_bounds_the_work() {
        let s = every(1);
        let p = plan_fires(&s, MissedFires::Skip, &no_limits(), T0, T0 + 60_000, 60_000).unwrap();
        assert_eq!(p.fires.len(), MAX_FIRES_PER_PLAN);
        assert_eq!(p.next_fire_ms, Some(T0 + 60_001));
        let p = plan(
            &s,
            MissedFires::FireAll {
                max_catchup: u32::MAX,
            },
            no_limits(),
            T0,
            T0 + 60_000,
        );
        assert_eq!(p.fires.len(), MAX_FIRES_PER_PLAN);
        assert!(p.fires.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(p.next_fire_ms, Some(T0 + 60_001));
    }

    #[test]
    fn huge_grace_and_clock_edges_do_not_overflow() {
        let p = plan_fires(
            &every(1_000),
            MissedFires::FireOnce,
            &no_limits(),
            0,
            2_500,
            u64::MAX,
        )
        .unwrap();
        assert_eq!(p.fires, [0, 1_000, 2_000]);
        let p = plan_fires(
            &every(1_000),
            MissedFires::FireOnce,
            &no_limits(),
            i64::MAX - 1_500,
            i64::MAX,
            0,
        )
        .unwrap();
        assert_eq!(p.fires, [i64::MAX - 500]);
        assert_eq!(p.next_fire_ms, None);
    }
}
