//! Repeat patterns, spec keys and the compiled [`Schedule`].

use super::cron::CronSchedule;
use super::RepeatError;

/// When a repeatable spec fires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// A cron expression (5 fields, or 6 with leading seconds) evaluated in
    /// `tz`: `None`, `"UTC"` or `"Z"` for UTC, a fixed offset (`+05:30`,
    /// `-0800`) or an IANA name (DST-aware, see [`super::cron`]).
    Cron {
        expression: String,
        tz: Option<String>,
    },
    /// Every `interval_ms` milliseconds, anchored at the upsert time: fires at
    /// `upsert + k * interval_ms` for `k >= 1` (never immediately).
    Every { interval_ms: u64 },
}

impl Pattern {
    /// A checked cron pattern.
    pub fn cron(expression: impl Into<String>, tz: Option<String>) -> Result<Self, RepeatError> {
        let pattern = Pattern::Cron {
            expression: expression.into(),
            tz,
        };
        pattern.validate()?;
        Ok(pattern)
    }

    /// A checked fixed-interval pattern; `interval_ms` must be at least 1.
    pub fn every(interval_ms: u64) -> Result<Self, RepeatError> {
        let pattern = Pattern::Every { interval_ms };
        pattern.validate()?;
        Ok(pattern)
    }

    /// Checks the pattern; the error names the field and how to fix it.
    pub fn validate(&self) -> Result<(), RepeatError> {
        self.compile().map(|_| ())
    }

    /// Parses the pattern once, for repeated next-fire queries.
    pub fn compile(&self) -> Result<Schedule, RepeatError> {
        match self {
            Pattern::Cron { expression, tz } => {
                CronSchedule::parse(expression, tz.as_deref()).map(|c| Schedule::Cron(Box::new(c)))
            }
            Pattern::Every { interval_ms } => {
                if *interval_ms == 0 || i64::try_from(*interval_ms).is_err() {
                    return Err(RepeatError::InvalidInterval {
                        field: "repeat.interval_ms",
                        interval_ms: *interval_ms,
                    });
                }
                Ok(Schedule::Every {
                    interval_ms: *interval_ms,
                })
            }
        }
    }

    /// The first fire strictly after `after_ms` (epoch ms); see
    /// [`Schedule::next_fire_after`]. Parses the pattern on every call: use
    /// [`Pattern::compile`] to query one pattern many times.
    pub fn next_fire_after(&self, after_ms: i64) -> Result<Option<i64>, RepeatError> {
        self.compile()?.next_fire_after(after_ms)
    }

    /// The key 1.x derives when the caller gives none:
    /// `<job_name>::cron:<expression>:<tz or UTC>` or
    /// `<job_name>::every:<interval_ms>`. The expression and time zone are
    /// kept verbatim (spaces included, `"Z"` stays `"Z"`), so two spellings
    /// of one schedule are two specs, as in 1.x.
    pub fn derived_key(&self, job_name: &str) -> String {
        match self {
            Pattern::Cron { expression, tz } => {
                format!(
                    "{job_name}::cron:{expression}:{}",
                    tz.as_deref().unwrap_or("UTC")
                )
            }
            Pattern::Every { interval_ms } => format!("{job_name}::every:{interval_ms}"),
        }
    }
}

/// The spec key: the caller's `key` when given (verbatim; it must not be
/// empty or whitespace), else [`Pattern::derived_key`].
pub fn spec_key(
    key: Option<&str>,
    job_name: &str,
    pattern: &Pattern,
) -> Result<String, RepeatError> {
    match key {
        Some(key) if key.trim().is_empty() => Err(RepeatError::InvalidKey { field: "key" }),
        Some(key) => Ok(key.to_owned()),
        None => Ok(pattern.derived_key(job_name)),
    }
}

/// Checks a spec's `limit` and `start_after_ms` / `end_before_ms` window.
pub fn validate_limits(
    limit: Option<u64>,
    start_after_ms: Option<u64>,
    end_before_ms: Option<u64>,
) -> Result<(), RepeatError> {
    if limit == Some(0) {
        return Err(RepeatError::InvalidLimit { field: "limit" });
    }
    if let (Some(start_after_ms), Some(end_before_ms)) = (start_after_ms, end_before_ms) {
        if start_after_ms >= end_before_ms {
            return Err(RepeatError::EmptyWindow {
                field: "end_before_ms",
                start_after_ms,
                end_before_ms,
            });
        }
    }
    Ok(())
}

/// A compiled [`Pattern`].
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<CronSchedule>),
    Every { interval_ms: u64 },
}

impl Schedule {
    /// The first fire strictly after `after_ms` (epoch ms).
    ///
    /// - `Cron`: the first matching time after `after_ms`, with the DST rules
    ///   of [`super::cron`]; `None` past year 5000.
    /// - `Every`: `after_ms + interval_ms`. `after_ms` is the anchor: the
    ///   upsert time for the first fire, the previous fire after that (so
    ///   fires stay on the `anchor + k * interval` grid). `None` on overflow.
    pub fn next_fire_after(&self, after_ms: i64) -> Result<Option<i64>, RepeatError> {
        match self {
            Schedule::Cron(cron) => cron.next_after(after_ms),
            Schedule::Every { interval_ms } => {
                Ok(interval(*interval_ms).and_then(|step| after_ms.checked_add(step)))
            }
        }
    }

    /// The smallest window strictly after `t` among `{anchor}` and the
    /// pattern's fires after `anchor`. For `Every` that is the grid
    /// `anchor + k * interval_ms` (`k >= 0`).
    pub(crate) fn window_after(&self, anchor: i64, t: i64) -> Result<Option<i64>, RepeatError> {
        if t < anchor {
            return Ok(Some(anchor));
        }
        match self {
            Schedule::Cron(cron) => cron.next_after(t),
            Schedule::Every { interval_ms } => {
                let Some(step) = interval(*interval_ms) else {
                    return Ok(None);
                };
                let k = (i128::from(t) - i128::from(anchor)) / i128::from(step) + 1;
                Ok(i64::try_from(i128::from(anchor) + k * i128::from(step)).ok())
            }
        }
    }

    /// The largest window at or before `t` (see [`Schedule::window_after`]);
    /// `None` when `t < anchor`.
    pub(crate) fn window_at_or_before(
        &self,
        anchor: i64,
        t: i64,
    ) -> Result<Option<i64>, RepeatError> {
        if t < anchor {
            return Ok(None);
        }
        match self {
            Schedule::Cron(cron) => Ok(Some(
                cron.prev_at_or_before(t)?.map_or(anchor, |w| w.max(anchor)),
            )),
            Schedule::Every { interval_ms } => {
                let Some(step) = interval(*interval_ms) else {
                    return Ok(Some(anchor));
                };
                let k = (i128::from(t) - i128::from(anchor)) / i128::from(step);
                Ok(i64::try_from(i128::from(anchor) + k * i128::from(step)).ok())
            }
        }
    }
}

fn interval(interval_ms: u64) -> Option<i64> {
    i64::try_from(interval_ms).ok().filter(|step| *step > 0)
}

/// An epoch-ms bound from the wire (`uint`), saturated into `i64`.
pub(crate) fn wire_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// The first fire of a spec upserted at `now_ms`: the first pattern fire after
/// `now_ms` that is at or after `start_after_ms` (for `Every`, the first point
/// of the grid `now_ms + k * interval_ms`, `k >= 1`, at or after it). `None`
/// when that fire is not before `end_before_ms`, i.e. the spec would never
/// fire.
pub fn first_fire(
    schedule: &Schedule,
    now_ms: i64,
    start_after_ms: Option<u64>,
    end_before_ms: Option<u64>,
) -> Result<Option<i64>, RepeatError> {
    let start = start_after_ms.map_or(i64::MIN, wire_ms);
    let first = match schedule {
        Schedule::Cron(cron) => cron.next_after(now_ms.max(start.saturating_sub(1)))?,
        Schedule::Every { .. } => {
            // The grid point after `now_ms` that is at or after `start`.
            let base = schedule.next_fire_after(now_ms)?;
            match base {
                Some(base) if base < start => schedule.window_after(base, start - 1)?,
                base => base,
            }
        }
    };
    Ok(first.filter(|at| end_before_ms.is_none_or(|end| *at < wire_ms(end))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_validate() {
        assert!(Pattern::cron("0 2 * * *", None).is_ok());
        assert!(Pattern::cron("0 2 * * *", Some("Europe/Berlin".into())).is_ok());
        assert!(matches!(
            Pattern::cron("0 2 * *", None),
            Err(RepeatError::InvalidCron { .. })
        ));
        assert!(matches!(
            Pattern::cron("0 2 * * *", Some("Berlin".into())),
            Err(RepeatError::InvalidTimezone { .. })
        ));
        assert_eq!(Pattern::every(1), Ok(Pattern::Every { interval_ms: 1 }));
        assert_eq!(
            Pattern::every(0),
            Err(RepeatError::InvalidInterval {
                field: "repeat.interval_ms",
                interval_ms: 0
            })
        );
        assert!(Pattern::every(i64::MAX as u64).is_ok());
        assert!(Pattern::every(i64::MAX as u64 + 1).is_err());
        // A hand-built invalid pattern is caught where it is used.
        let bad = Pattern::Every { interval_ms: 0 };
        assert!(bad.next_fire_after(0).is_err());
        assert_eq!(bad.validate().unwrap_err().field(), "repeat.interval_ms");
    }

    #[test]
    fn derived_keys() {
        let cron = Pattern::Cron {
            expression: "*/5 * * * *".into(),
            tz: None,
        };
        assert_eq!(cron.derived_key("report"), "report::cron:*/5 * * * *:UTC");
        let cron = Pattern::Cron {
            expression: "0 2 * * *".into(),
            tz: Some("America/New_York".into()),
        };
        assert_eq!(
            cron.derived_key("report"),
            "report::cron:0 2 * * *:America/New_York"
        );
        let cron = Pattern::Cron {
            expression: "0  2 * * *".into(),
            tz: Some("Z".into()),
        };
        assert_eq!(cron.derived_key("r"), "r::cron:0  2 * * *:Z");
        let every = Pattern::Every {
            interval_ms: 60_000,
        };
        assert_eq!(every.derived_key("tick"), "tick::every:60000");
        assert_eq!(every.derived_key(""), "::every:60000");

        assert_eq!(spec_key(Some("mine"), "tick", &every), Ok("mine".into()));
        assert_eq!(
            spec_key(None, "tick", &every),
            Ok("tick::every:60000".into())
        );
        assert_eq!(
            spec_key(Some(" \t"), "tick", &every),
            Err(RepeatError::InvalidKey { field: "key" })
        );
        assert!(spec_key(Some(""), "tick", &every).is_err());
    }

    #[test]
    fn limits_validate() {
        assert_eq!(validate_limits(None, None, None), Ok(()));
        assert_eq!(validate_limits(Some(1), Some(5), Some(6)), Ok(()));
        assert_eq!(
            validate_limits(Some(0), None, None),
            Err(RepeatError::InvalidLimit { field: "limit" })
        );
        assert!(matches!(
            validate_limits(None, Some(6), Some(6)),
            Err(RepeatError::EmptyWindow { .. })
        ));
        assert!(validate_limits(None, Some(7), Some(6)).is_err());
    }

    #[test]
    fn every_is_anchored_at_the_upsert() {
        let s = Pattern::every(1_000).unwrap().compile().unwrap();
        // First fire one interval after the upsert, never immediately.
        assert_eq!(first_fire(&s, 10_500, None, None), Ok(Some(11_500)));
        assert_eq!(s.next_fire_after(11_500), Ok(Some(12_500)));
        // start_after: the first grid point at or after it.
        assert_eq!(first_fire(&s, 10_500, Some(11_500), None), Ok(Some(11_500)));
        assert_eq!(first_fire(&s, 10_500, Some(11_501), None), Ok(Some(12_500)));
        assert_eq!(first_fire(&s, 10_500, Some(15_000), None), Ok(Some(15_500)));
        assert_eq!(first_fire(&s, 10_500, Some(0), None), Ok(Some(11_500)));
        // end_before is exclusive.
        assert_eq!(first_fire(&s, 10_500, None, Some(11_500)), Ok(None));
        assert_eq!(first_fire(&s, 10_500, None, Some(11_501)), Ok(Some(11_500)));
        // Overflow ends the schedule instead of wrapping.
        assert_eq!(s.next_fire_after(i64::MAX - 10), Ok(None));

        // The grid helpers.
        assert_eq!(s.window_after(5_000, 4_999), Ok(Some(5_000)));
        assert_eq!(s.window_after(5_000, 5_000), Ok(Some(6_000)));
        assert_eq!(s.window_after(5_000, 7_345), Ok(Some(8_000)));
        assert_eq!(s.window_at_or_before(5_000, 4_999), Ok(None));
        assert_eq!(s.window_at_or_before(5_000, 5_000), Ok(Some(5_000)));
        assert_eq!(s.window_at_or_before(5_000, 7_999), Ok(Some(7_000)));
        assert_eq!(s.window_at_or_before(5_000, 8_000), Ok(Some(8_000)));
        assert_eq!(s.window_after(i64::MAX - 500, i64::MAX - 400), Ok(None));
    }

    #[test]
    fn cron_first_fire_respects_the_window() {
        let s = Pattern::cron("0 * * * *", None).unwrap().compile().unwrap();
        let hour = 3_600_000;
        assert_eq!(first_fire(&s, 10 * hour, None, None), Ok(Some(11 * hour)));
        assert_eq!(
            first_fire(&s, 10 * hour + 1, None, None),
            Ok(Some(11 * hour))
        );
        // start_after is inclusive: a fire exactly at it counts.
        assert_eq!(
            first_fire(&s, 10 * hour, Some(13 * hour as u64), None),
            Ok(Some(13 * hour))
        );
        assert_eq!(
            first_fire(&s, 10 * hour, Some(13 * hour as u64 + 1), None),
            Ok(Some(14 * hour))
        );
        // A start_after in the past changes nothing.
        assert_eq!(
            first_fire(&s, 10 * hour, Some(1), None),
            Ok(Some(11 * hour))
        );
        assert_eq!(
            first_fire(&s, 10 * hour, None, Some(11 * hour as u64)),
            Ok(None)
        );
        assert_eq!(
            first_fire(&s, 10 * hour, None, Some(u64::MAX)),
            Ok(Some(11 * hour))
        );
        assert_eq!(first_fire(&s, 10 * hour, Some(u64::MAX), None), Ok(None));
    }
}
