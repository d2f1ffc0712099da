//! Unit tests of the missed-fires planner ([`super`]).
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

fn plan(s: &Schedule, policy: MissedFires, limits: SpecLimits, stored: i64, now: i64) -> FirePlan {
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

// ---------------------------------------------------------------------------
// plan_fires_in: a measured outage, every pattern kind, every policy
// ---------------------------------------------------------------------------

/// The pattern kinds: `every`, 5-field cron, 6-field cron (seconds), and a
/// cron in an IANA zone; each with its window spacing.
fn kinds() -> Vec<(&'static str, Schedule, i64)> {
    let cron = |e: &str, tz: Option<&str>| {
        Pattern::cron(e, tz.map(str::to_string))
            .unwrap()
            .compile()
            .unwrap()
    };
    vec![
        ("every 1 s", every(1_000), SEC),
        ("cron 5-field", cron("* * * * *", None), MIN),
        ("cron 6-field", cron("* * * * * *", None), SEC),
        (
            "cron in a zone",
            cron("*/5 * * * *", Some("America/New_York")),
            5 * MIN,
        ),
    ]
}

/// The scheduler ticked last at `T0 + 2.5 steps` (windows up to T0 + 2
/// steps fired), then nothing ran until `T0 + 7.5 steps`; a tick of a tenth
/// of a step. Missed: T0 + 3..=7 steps (five windows); nothing is on time
/// at the restart (the latest window is half a step old).
#[test]
fn a_measured_outage_under_every_policy_and_pattern_kind() {
    for (kind, s, step) in kinds() {
        let tick = step / 10;
        let prev = T0 + 2 * step + step / 2;
        let now = T0 + 7 * step + step / 2;
        let outage = Outage {
            from_ms: prev + 1,
            until_ms: now - tick,
        };
        let stored = T0 + 3 * step;
        let next = Some(T0 + 8 * step);
        let run = |policy| plan_fires_in(&s, policy, &no_limits(), stored, now, &outage).unwrap();
        assert_eq!(
            run(MissedFires::Skip),
            FirePlan {
                fires: vec![],
                next_fire_ms: next
            },
            "{kind}: skip fires nothing"
        );
        assert_eq!(
            run(MissedFires::FireOnce).fires,
            [T0 + 7 * step],
            "{kind}: fire_once fires the latest missed window"
        );
        assert_eq!(
            run(MissedFires::FireAll { max_catchup: 2 }).fires,
            [T0 + 6 * step, T0 + 7 * step],
            "{kind}: fire_all(2) fires the two latest"
        );
        assert_eq!(
            run(MissedFires::FireAll { max_catchup: 50 }).fires,
            (3..=7).map(|k| T0 + k * step).collect::<Vec<_>>(),
            "{kind}: fire_all(50) fires all five"
        );
        for policy in [
            MissedFires::FireOnce,
            MissedFires::FireAll { max_catchup: 2 },
        ] {
            assert_eq!(run(policy).next_fire_ms, next, "{kind}");
        }
    }
}

/// A window within one tick of the restart is on time under every policy;
/// windows a busy tick left behind (due before the previous tick) are on
/// time too, while the outage's windows follow the policy.
#[test]
fn windows_before_and_after_the_outage_are_on_time() {
    for (kind, s, step) in kinds() {
        let tick = step / 10;
        let prev = T0 + 2 * step + step / 2;
        let now = T0 + 7 * step + tick / 2;
        let outage = Outage {
            from_ms: prev + 1,
            until_ms: now - tick,
        };
        // Stored next T0 + 1 step: the windows at 1 and 2 steps were due at
        // the previous tick but not fired then (past that tick's batch).
        let stored = T0 + step;
        let run = |policy| plan_fires_in(&s, policy, &no_limits(), stored, now, &outage).unwrap();
        let before = [T0 + step, T0 + 2 * step];
        let on_time = T0 + 7 * step;
        assert_eq!(
            run(MissedFires::Skip).fires,
            [before[0], before[1], on_time],
            "{kind}"
        );
        assert_eq!(
            run(MissedFires::FireOnce).fires,
            [before[0], before[1], T0 + 6 * step, on_time],
            "{kind}"
        );
        assert_eq!(
            run(MissedFires::FireAll { max_catchup: 2 }).fires,
            [before[0], before[1], T0 + 5 * step, T0 + 6 * step, on_time],
            "{kind}"
        );
        assert_eq!(run(MissedFires::Skip).next_fire_ms, Some(T0 + 8 * step));
    }
}

/// No outage (a healthy cadence): everything due fires, however late.
#[test]
fn no_outage_fires_everything_due() {
    for (kind, s, step) in kinds() {
        let now = T0 + 4 * step + 1;
        for policy in [
            MissedFires::Skip,
            MissedFires::FireOnce,
            MissedFires::FireAll { max_catchup: 1 },
        ] {
            let p = plan_fires_in(&s, policy, &no_limits(), T0, now, &Outage::NONE).unwrap();
            assert_eq!(
                p.fires,
                (0..=4).map(|k| T0 + k * step).collect::<Vec<_>>(),
                "{kind} {policy:?}"
            );
            assert_eq!(p.next_fire_ms, Some(T0 + 5 * step));
        }
    }
}

/// The limit counts every phase together, earliest first.
#[test]
fn the_limit_spans_the_phases() {
    let s = every(1_000);
    let outage = Outage {
        from_ms: T0 + 2_500,
        until_ms: T0 + 6_900,
    };
    let limits = SpecLimits {
        limit: Some(4),
        fired: 1,
        ..SpecLimits::default()
    };
    let p = plan_fires_in(
        &s,
        MissedFires::FireAll { max_catchup: 5 },
        &limits,
        T0 + 1_000,
        T0 + 7_000,
        &outage,
    )
    .unwrap();
    assert_eq!(p.fires, [T0 + 1_000, T0 + 2_000, T0 + 3_000]);
    assert_eq!(p.next_fire_ms, None);
}
