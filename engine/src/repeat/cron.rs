//! Cron evaluation in a time zone, with the wire contract's DST rules.
//!
//! croner matches the pattern against *wall-clock* (naive local) times only;
//! this module maps each matching wall-clock time to one instant:
//!
//! - a time that exists once maps to that instant;
//! - an ambiguous time (a fall-back overlap) maps to its **earlier** instant,
//!   so it fires once;
//! - a time in a spring-forward gap maps to the first valid local time after
//!   the gap (the transition instant), so a 02:30 job fires at 03:00 on that
//!   day. Several gap times collapse into that one instant and fire once.
//!
//! The rule holds for every pattern, fixed-time or not: croner's own DST
//! handling (used when it is given zoned times) would fire a wildcard pattern
//! such as `*/15 * * * *` on both instants of a repeated hour, and skip gap
//! times instead of moving them. Evaluating on naive local times keeps the
//! schedule a pure function of the wall clock, as `docs/wire-format.md` states.
//! The cost: a sub-hourly pattern has no fire during the second pass of a
//! repeated hour (its wall-clock times have already fired once).
//!
//! The mapping is monotone (a later wall-clock time never maps to an earlier
//! instant), which is what makes "first fire strictly after t" and "last fire
//! at or before t" simple searches.

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::RepeatError;

const FIELD_EXPRESSION: &str = "repeat.expression";
const FIELD_TZ: &str = "repeat.tz";
const FIELD_AFTER: &str = "after_ms";

/// The widest DST gap or overlap searched, in seconds. The largest real one is
/// Pacific/Apia skipping 2011-12-30 entirely (24 h).
const MAX_TRANSITION_SPAN_SECS: i64 = 3 * 86_400;

/// A time zone as the wire accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// No time zone, `"UTC"` or `"Z"`.
    Utc,
    /// `+HH:MM`, `+HHMM`, `-HH:MM` or `-HHMM`.
    Fixed(FixedOffset),
    /// An IANA name, DST-aware.
    Iana(Tz),
}

/// What a wall-clock time is in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolved {
    Single(i64),
    /// Both instants, earlier first (epoch ms).
    Ambiguous(i64, i64),
    Gap,
}

impl Zone {
    /// Parses a wire time zone. `None`, `"UTC"` and `"Z"` are all UTC.
    pub fn parse(tz: Option<&str>) -> Result<Zone, RepeatError> {
        let Some(tz) = tz else { return Ok(Zone::Utc) };
        match tz {
            "UTC" | "Z" => Ok(Zone::Utc),
            _ if tz.starts_with(['+', '-']) => parse_fixed_offset(tz)
                .map(Zone::Fixed)
                .ok_or_else(|| invalid_tz(tz)),
            _ => tz.parse::<Tz>().map(Zone::Iana).map_err(|_| invalid_tz(tz)),
        }
    }

    fn local_of(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Utc => t.naive_utc(),
            Zone::Fixed(off) => t.with_timezone(off).naive_local(),
            Zone::Iana(tz) => t.with_timezone(tz).naive_local(),
        }
    }

    fn resolve(&self, local: NaiveDateTime) -> Resolved {
        fn ms<T: TimeZone>(r: LocalResult<DateTime<T>>) -> Resolved {
            match r {
                LocalResult::Single(a) => Resolved::Single(a.timestamp_millis()),
                LocalResult::Ambiguous(a, b) => {
                    let (a, b) = (a.timestamp_millis(), b.timestamp_millis());
                    Resolved::Ambiguous(a.min(b), a.max(b))
                }
                LocalResult::None => Resolved::Gap,
            }
        }
        match self {
            Zone::Utc => ms(Utc.from_local_datetime(&local)),
            Zone::Fixed(off) => ms(off.from_local_datetime(&local)),
            Zone::Iana(tz) => ms(tz.from_local_datetime(&local)),
        }
    }
}

fn invalid_tz(tz: &str) -> RepeatError {
    RepeatError::InvalidTimezone {
        field: FIELD_TZ,
        tz: tz.to_owned(),
    }
}

/// `+HH:MM`, `+HHMM`, `-HH:MM`, `-HHMM`, with `HH <= 23` and `MM <= 59`.
fn parse_fixed_offset(s: &str) -> Option<FixedOffset> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: [u8; 4] = match &b[1..] {
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => [*h1, *h2, *m1, *m2],
        _ => return None,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let d = |i: usize| i32::from(digits[i] - b'0');
    let (hours, minutes) = (d(0) * 10 + d(1), d(2) * 10 + d(3));
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// A parsed cron expression bound to its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    cron: Cron,
    zone: Zone,
}

impl CronSchedule {
    /// Parses and checks a cron expression and time zone.
    ///
    /// Accepts 5 fields (`minute hour day-of-month month day-of-week`) or 6
    /// with leading seconds, in croner's syntax (ranges, steps, names, `L`,
    /// `W`, `#`, `?`, `+` for day-of-month AND day-of-week). Rejects nicknames
    /// such as `@daily` and a 7th (year) field, which the wire does not allow,
    /// and patterns that never match a real date (`0 0 30 2 *`).
    pub fn parse(expression: &str, tz: Option<&str>) -> Result<Self, RepeatError> {
        let invalid = |reason: String| RepeatError::InvalidCron {
            field: FIELD_EXPRESSION,
            expression: expression.to_owned(),
            reason,
        };
        let fields = expression.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(invalid(format!("it has {fields} fields")));
        }
        if expression.contains('@') {
            return Err(invalid("nicknames such as @daily are not supported".into()));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| invalid(e.to_string()))?;
        // A pattern that can never match (February 30th) would make every
        // later search scan to croner's year limit; reject it up front. The
        // answer does not depend on the zone, so a fixed naive origin is fine.
        let origin = DateTime::UNIX_EPOCH.naive_utc();
        if let Err(e) = cron.find_next_occurrence(&origin, true) {
            return Err(invalid(match e {
                CronError::TimeSearchLimitExceeded => "it never matches a real date".into(),
                e => e.to_string(),
            }));
        }
        Ok(CronSchedule {
            expression: expression.to_owned(),
            cron,
            zone: Zone::parse(tz)?,
        })
    }

    /// The zone the pattern is evaluated in.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// The first fire strictly after `after_ms` (epoch ms), or `None` when
    /// there is none before croner's year limit (5000).
    pub fn next_after(&self, after_ms: i64) -> Result<Option<i64>, RepeatError> {
        let t = match instant(after_ms) {
            Ok(t) => t,
            // Past the calendar's end there is nothing left to fire.
            Err(_) if after_ms > 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        let local = floor_second(self.zone.local_of(t));
        // When `t` is in the second pass of a repeated range, every wall-clock
        // time left in that range has already fired (at its earlier instant),
        // so the search resumes where the range ends. The loop below would
        // get there too, but one match at a time (3600 for a per-second
        // pattern in a one-hour overlap).
        let (mut from, mut inclusive) = match self.zone.resolve(local) {
            Resolved::Ambiguous(earlier, _) if !same_second(earlier, after_ms) => {
                match first_local_where(local, |l| {
                    !matches!(self.zone.resolve(l), Resolved::Ambiguous(..))
                }) {
                    Some(end) => (end, true),
                    None => return Ok(None),
                }
            }
            _ => (local, false),
        };
        // Skips candidates that map to `after_ms` or earlier; with the jump
        // above that never happens in a real zone, so this is one pass.
        loop {
            let Some(candidate) = self.next_match(from, inclusive)? else {
                return Ok(None);
            };
            match self.instant_of(candidate) {
                Some(at) if at > after_ms => return Ok(Some(at)),
                Some(_) => (from, inclusive) = (candidate, false),
                None => return Ok(None),
            }
        }
    }

    /// The last fire at or before `at_ms` (epoch ms), or `None` when there is
    /// none after year 1.
    pub fn prev_at_or_before(&self, at_ms: i64) -> Result<Option<i64>, RepeatError> {
        let t = match instant(at_ms) {
            Ok(t) => t,
            Err(_) if at_ms < 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        let local = floor_second(self.zone.local_of(t));
        // In the second pass of a repeated range, all of the range's
        // wall-clock times have fired already, at instants before `t`.
        let bound = match self.zone.resolve(local) {
            Resolved::Ambiguous(earlier, _) if !same_second(earlier, at_ms) => {
                match first_local_where(local, |l| {
                    !matches!(self.zone.resolve(l), Resolved::Ambiguous(..))
                }) {
                    Some(end) => end.checked_sub_signed(TimeDelta::seconds(1)).unwrap_or(end),
                    None => return Ok(None),
                }
            }
            _ => local,
        };
        let mut from = bound;
        let mut inclusive = true;
        loop {
            let Some(candidate) = self.prev_match(from, inclusive)? else {
                return Ok(None);
            };
            match self.instant_of(candidate) {
                Some(at) if at <= at_ms => return Ok(Some(at)),
                Some(_) => (from, inclusive) = (candidate, false),
                None => return Ok(None),
            }
        }
    }

    fn next_match(
        &self,
        from: NaiveDateTime,
        inclusive: bool,
    ) -> Result<Option<NaiveDateTime>, RepeatError> {
        match self.cron.find_next_occurrence(&from, inclusive) {
            Ok(t) => Ok(Some(t)),
            Err(e) => self.no_fire(e),
        }
    }

    fn prev_match(
        &self,
        from: NaiveDateTime,
        inclusive: bool,
    ) -> Result<Option<NaiveDateTime>, RepeatError> {
        match self.cron.find_previous_occurrence(&from, inclusive) {
            Ok(t) => Ok(Some(t)),
            Err(e) => self.no_fire(e),
        }
    }

    /// croner ends a search with an error past year 5000 or before year 1;
    /// both mean "no such fire".
    fn no_fire(&self, e: CronError) -> Result<Option<NaiveDateTime>, RepeatError> {
        match e {
            CronError::TimeSearchLimitExceeded
            | CronError::InvalidTime
            | CronError::InvalidDate => Ok(None),
            e => Err(RepeatError::InvalidCron {
                field: FIELD_EXPRESSION,
                expression: self.expression.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The instant a matching wall-clock time fires at (see the module docs).
    fn instant_of(&self, local: NaiveDateTime) -> Option<i64> {
        match self.zone.resolve(local) {
            Resolved::Single(at) | Resolved::Ambiguous(at, _) => Some(at),
            Resolved::Gap => {
                let end = first_local_where(local, |l| self.zone.resolve(l) != Resolved::Gap)?;
                match self.zone.resolve(end) {
                    Resolved::Single(at) | Resolved::Ambiguous(at, _) => Some(at),
                    Resolved::Gap => None,
                }
            }
        }
    }
}

fn instant(ms: i64) -> Result<DateTime<Utc>, RepeatError> {
    DateTime::from_timestamp_millis(ms).ok_or(RepeatError::TimeOutOfRange {
        field: FIELD_AFTER,
        ms,
    })
}

fn floor_second(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}

/// Whether `instant_ms` and `t_ms` fall in the same second, i.e. `t_ms` is on
/// the instant side the wall-clock second resolves to.
fn same_second(instant_ms: i64, t_ms: i64) -> bool {
    instant_ms.div_euclid(1000) == t_ms.div_euclid(1000)
}

/// The first whole second after `from` where `pred` holds, given that it does
/// not hold at `from` and, once it holds, keeps holding for the rest of a DST
/// transition. Doubling then bisection: ~2·log2(span) zone lookups.
fn first_local_where(
    from: NaiveDateTime,
    pred: impl Fn(NaiveDateTime) -> bool,
) -> Option<NaiveDateTime> {
    let at = |secs: i64| from.checked_add_signed(TimeDelta::seconds(secs));
    let (mut lo, mut hi) = (0_i64, 1_i64);
    while !pred(at(hi)?) {
        if hi >= MAX_TRANSITION_SPAN_SECS {
            return None;
        }
        lo = hi;
        hi = (hi * 2).min(MAX_TRANSITION_SPAN_SECS);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(at(mid)?) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, SecondsFormat};

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
            .timestamp_millis()
    }

    fn iso(ms: i64) -> String {
        DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn sched(expr: &str, tz: Option<&str>) -> CronSchedule {
        CronSchedule::parse(expr, tz).unwrap_or_else(|e| panic!("{expr} {tz:?}: {e}"))
    }

    /// The next `n` fires strictly after `from`, as UTC RFC 3339 strings.
    fn fires(s: &CronSchedule, from: &str, n: usize) -> Vec<String> {
        let mut t = ms(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).unwrap().expect("a next fire");
            out.push(iso(t));
        }
        out
    }

    /// The last `n` fires at or before `from`, newest first.
    fn fires_back(s: &CronSchedule, from: &str, n: usize) -> Vec<String> {
        let mut t = ms(from);
        let mut out = Vec::new();
        for _ in 0..n {
            let at = s.prev_at_or_before(t).unwrap().expect("a previous fire");
            out.push(iso(at));
            t = at - 1;
        }
        out
    }

    /// Forward and backward searches agree, from every second of a window,
    /// which catches off-by-one errors around transitions.
    fn assert_consistent(s: &CronSchedule, from: &str, to: &str) {
        let (from, to) = (ms(from), ms(to));
        let mut t = from;
        while t <= to {
            let next = s.next_after(t).unwrap().unwrap();
            assert!(next > t);
            let prev = s.prev_at_or_before(next).unwrap().unwrap();
            assert_eq!(prev, next, "prev_at_or_before(next_after({}))", iso(t));
            let prev_t = s.prev_at_or_before(t).unwrap().unwrap();
            assert!(prev_t <= t);
            assert_eq!(
                s.next_after(prev_t).unwrap().unwrap(),
                next,
                "at {}",
                iso(t)
            );
            t += 997; // not a divisor of 1000: lands on many sub-second offsets
        }
    }

    #[test]
    fn zones_parse() {
        assert_eq!(Zone::parse(None), Ok(Zone::Utc));
        assert_eq!(Zone::parse(Some("UTC")), Ok(Zone::Utc));
        assert_eq!(Zone::parse(Some("Z")), Ok(Zone::Utc));
        let east = |s| Zone::Fixed(FixedOffset::east_opt(s).unwrap());
        assert_eq!(Zone::parse(Some("+05:30")), Ok(east(5 * 3600 + 1800)));
        assert_eq!(Zone::parse(Some("+0530")), Ok(east(5 * 3600 + 1800)));
        assert_eq!(Zone::parse(Some("-08:00")), Ok(east(-8 * 3600)));
        assert_eq!(Zone::parse(Some("-0800")), Ok(east(-8 * 3600)));
        assert_eq!(Zone::parse(Some("+00:00")), Ok(east(0)));
        assert_eq!(
            Zone::parse(Some("America/New_York")),
            Ok(Zone::Iana(chrono_tz::America::New_York))
        );
        for bad in [
            "",
            "utc",
            "z",
            "+5:30",
            "+05",
            "+05:3",
            "+24:00",
            "+05:60",
            "05:30",
            "+05-30",
            "+0５30",
            "++0530",
            "-",
            "+",
            "Mars/Olympus",
            "america/new_york",
            " UTC",
            "America/New_York ",
        ] {
            assert_eq!(
                Zone::parse(Some(bad)),
                Err(RepeatError::InvalidTimezone {
                    field: "repeat.tz",
                    tz: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalid_expressions_are_rejected() {
        for bad in [
            "",
            "   ",
            "* * * *",
            "* * * * * * *",
            "0 0 1 1 * 2030",
            "60 * * * *",
            "* 24 * * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "0/5 * * * *",
            "5-1 * * * *",
            "a b c d e",
            "@daily",
            "@hourly * * * *",
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
        ] {
            match CronSchedule::parse(bad, None) {
                Err(RepeatError::InvalidCron {
                    field, expression, ..
                }) => {
                    assert_eq!(field, "repeat.expression");
                    assert_eq!(expression, bad);
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        // The time zone is checked too, after the expression.
        assert!(matches!(
            CronSchedule::parse("0 2 * * *", Some("Nowhere/City")),
            Err(RepeatError::InvalidTimezone { .. })
        ));
        // Rare but real dates are fine.
        sched("0 0 29 2 *", None);
        sched("0 0 29 2 +MON", None);
    }

    #[test]
    fn error_messages_say_how_to_fix() {
        let e = CronSchedule::parse("* * * *", None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("repeat.expression: invalid cron expression \"* * * *\""));
        assert!(msg.contains("it has 4 fields"), "{msg}");
        assert!(msg.contains("6 with leading seconds"), "{msg}");
        let e = Zone::parse(Some("Mars/Base")).unwrap_err();
        assert!(e.to_string().contains("America/New_York"), "{e}");
    }

    #[test]
    fn five_fields_in_utc() {
        let s = sched("0 2 * * *", None);
        assert_eq!(
            fires(&s, "2025-01-01T00:00:00Z", 3),
            [
                "2025-01-01T02:00:00.000Z",
                "2025-01-02T02:00:00.000Z",
                "2025-01-03T02:00:00.000Z"
            ]
        );
        // Strictly after: a fire time itself is not "after" itself.
        assert_eq!(
            s.next_after(ms("2025-01-01T02:00:00Z")).unwrap(),
            Some(ms("2025-01-02T02:00:00Z"))
        );
        assert_eq!(
            s.next_after(ms("2025-01-01T01:59:59.999Z")).unwrap(),
            Some(ms("2025-01-01T02:00:00Z"))
        );
        assert_eq!(
            s.prev_at_or_before(ms("2025-01-01T02:00:00Z")).unwrap(),
            Some(ms("2025-01-01T02:00:00Z"))
        );
        assert_eq!(
            s.prev_at_or_before(ms("2025-01-01T01:59:59.999Z")).unwrap(),
            Some(ms("2024-12-31T02:00:00Z"))
        );
    }

    #[test]
    fn six_fields_with_seconds() {
        let s = sched("*/5 * * * * *", None);
        assert_eq!(
            fires(&s, "2025-01-01T00:00:00Z", 3),
            [
                "2025-01-01T00:00:05.000Z",
                "2025-01-01T00:00:10.000Z",
                "2025-01-01T00:00:15.000Z"
            ]
        );
        assert_eq!(
            fires(&s, "2025-01-01T00:00:03.250Z", 1),
            ["2025-01-01T00:00:05.000Z"]
        );
        assert_eq!(
            fires(&s, "2025-01-01T00:00:59.999Z", 1),
            ["2025-01-01T00:01:00.000Z"]
        );
        assert_eq!(
            fires_back(&s, "2025-01-01T00:00:04.999Z", 2),
            ["2025-01-01T00:00:00.000Z", "2024-12-31T23:59:55.000Z"]
        );
        // A 5-field pattern fires at second 0; a 6-field one where it says.
        let s = sched("30 15 10 * * *", None);
        assert_eq!(
            fires(&s, "2025-01-01T00:00:00Z", 1),
            ["2025-01-01T10:15:30.000Z"]
        );
    }

    #[test]
    fn utc_z_and_none_are_equivalent() {
        let none = sched("7 */3 * * 1-5", None);
        let utc = sched("7 */3 * * 1-5", Some("UTC"));
        let z = sched("7 */3 * * 1-5", Some("Z"));
        let zero = sched("7 */3 * * 1-5", Some("+00:00"));
        let mut t = ms("2025-03-01T00:00:00Z");
        for _ in 0..50 {
            let n = none.next_after(t).unwrap();
            assert_eq!(n, utc.next_after(t).unwrap());
            assert_eq!(n, z.next_after(t).unwrap());
            assert_eq!(n, zero.next_after(t).unwrap());
            t = n.unwrap();
        }
    }

    #[test]
    fn fixed_offsets() {
        let s = sched("0 9 * * *", Some("+05:30"));
        assert_eq!(
            fires(&s, "2025-01-01T00:00:00Z", 2),
            ["2025-01-01T03:30:00.000Z", "2025-01-02T03:30:00.000Z"]
        );
        assert_eq!(
            fires(&s, "2025-01-01T03:30:00Z", 1),
            ["2025-01-02T03:30:00.000Z"]
        );
        let s = sched("0 9 * * *", Some("-0800"));
        assert_eq!(
            fires(&s, "2025-01-01T00:00:00Z", 2),
            ["2025-01-01T17:00:00.000Z", "2025-01-02T17:00:00.000Z"]
        );
        // Day-of-week is judged on the local date: Monday 00:30 at -08:00 is
        // Monday 08:30 UTC, and Sunday 23:30 local is already Monday in UTC.
        let s = sched("30 0 * * MON", Some("-08:00"));
        assert_eq!(
            fires(&s, "2025-06-01T00:00:00Z", 1),
            ["2025-06-02T08:30:00.000Z"]
        );
        // A fixed offset ignores DST: same UTC time across New York's switch.
        let s = sched("0 2 * * *", Some("-05:00"));
        assert_eq!(
            fires(&s, "2025-03-08T00:00:00Z", 3),
            [
                "2025-03-08T07:00:00.000Z",
                "2025-03-09T07:00:00.000Z",
                "2025-03-10T07:00:00.000Z"
            ]
        );
    }

    #[test]
    fn new_york_spring_forward_moves_to_next_valid_time() {
        // 2025-03-09: 02:00 EST jumps to 03:00 EDT; 02:xx does not exist.
        let s = sched("0 2 * * *", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2025-03-07T12:00:00Z", 4),
            [
                "2025-03-08T07:00:00.000Z", // 02:00 EST
                "2025-03-09T07:00:00.000Z", // 03:00 EDT: the first valid time
                "2025-03-10T06:00:00.000Z", // 02:00 EDT
                "2025-03-11T06:00:00.000Z",
            ]
        );
        let tz = chrono_tz::America::New_York;
        let local = DateTime::from_timestamp_millis(ms("2025-03-09T07:00:00Z"))
            .unwrap()
            .with_timezone(&tz);
        assert_eq!(local.to_rfc3339(), "2025-03-09T03:00:00-04:00");

        // 02:30 also moves to 03:00 (the first valid local time after it),
        // not 03:30.
        let s = sched("30 2 * * *", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2025-03-08T12:00:00Z", 2),
            ["2025-03-09T07:00:00.000Z", "2025-03-10T06:30:00.000Z"]
        );

        // Gap times of a sub-hourly pattern collapse into one fire at 03:00.
        let s = sched("*/20 * * * *", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2025-03-09T06:30:00Z", 4),
            [
                "2025-03-09T06:40:00.000Z", // 01:40 EST
                "2025-03-09T07:00:00.000Z", // 02:00, 02:20, 02:40, 03:00 -> 03:00 EDT
                "2025-03-09T07:20:00.000Z", // 03:20 EDT
                "2025-03-09T07:40:00.000Z",
            ]
        );
        assert_eq!(
            fires_back(&s, "2025-03-09T07:20:00Z", 3),
            [
                "2025-03-09T07:20:00.000Z",
                "2025-03-09T07:00:00.000Z",
                "2025-03-09T06:40:00.000Z"
            ]
        );
        assert_consistent(&s, "2025-03-09T06:00:00Z", "2025-03-09T08:10:00Z");
    }

    #[test]
    fn new_york_fall_back_fires_once_at_the_earlier_instant() {
        // 2025-11-02: 02:00 EDT falls back to 01:00 EST; 01:xx happens twice.
        let s = sched("30 1 * * *", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2025-11-01T12:00:00Z", 3),
            [
                "2025-11-02T05:30:00.000Z", // 01:30 EDT, the earlier instant
                "2025-11-03T06:30:00.000Z", // 01:30 EST next day; nothing at 06:30Z on the 2nd
                "2025-11-04T06:30:00.000Z",
            ]
        );
        // Asking from inside the second pass (01:10 EST) skips to tomorrow.
        assert_eq!(
            fires(&s, "2025-11-02T06:10:00Z", 1),
            ["2025-11-03T06:30:00.000Z"]
        );
        // And from the second pass's 01:30 EST itself.
        assert_eq!(
            fires(&s, "2025-11-02T06:30:00Z", 1),
            ["2025-11-03T06:30:00.000Z"]
        );
        assert_eq!(
            fires_back(&s, "2025-11-02T06:45:00Z", 2),
            ["2025-11-02T05:30:00.000Z", "2025-11-01T05:30:00.000Z"]
        );

        // A daily 02:00 job is unaffected: 02:00 exists once (EST).
        let s = sched("0 2 * * *", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2025-11-01T12:00:00Z", 2),
            ["2025-11-02T07:00:00.000Z", "2025-11-03T07:00:00.000Z"]
        );

        // A sub-hourly pattern fires each wall-clock time once: the repeated
        // hour's second pass is silent.
        let s = sched("*/30 * * * *", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2025-11-02T04:45:00Z", 5),
            [
                "2025-11-02T05:00:00.000Z", // 01:00 EDT
                "2025-11-02T05:30:00.000Z", // 01:30 EDT
                "2025-11-02T07:00:00.000Z", // 02:00 EST (01:00/01:30 EST skipped)
                "2025-11-02T07:30:00.000Z",
                "2025-11-02T08:00:00.000Z",
            ]
        );
        assert_consistent(&s, "2025-11-02T04:50:00Z", "2025-11-02T07:10:00Z");
    }

    #[test]
    fn berlin_both_transitions() {
        // 2025-03-30: 02:00 CET -> 03:00 CEST.
        let s = sched("30 2 * * *", Some("Europe/Berlin"));
        assert_eq!(
            fires(&s, "2025-03-29T00:00:00Z", 3),
            [
                "2025-03-29T01:30:00.000Z", // 02:30 CET
                "2025-03-30T01:00:00.000Z", // 02:30 missing -> 03:00 CEST
                "2025-03-31T00:30:00.000Z", // 02:30 CEST
            ]
        );
        // 2025-10-26: 03:00 CEST -> 02:00 CET; 02:xx happens twice.
        assert_eq!(
            fires(&s, "2025-10-25T00:00:00Z", 3),
            [
                "2025-10-25T00:30:00.000Z", // 02:30 CEST
                "2025-10-26T00:30:00.000Z", // 02:30 CEST, the earlier of the two
                "2025-10-27T01:30:00.000Z", // 02:30 CET
            ]
        );
        let every_minute = sched("* * * * *", Some("Europe/Berlin"));
        assert_consistent(
            &every_minute,
            "2025-10-26T00:58:00Z",
            "2025-10-26T01:02:00Z",
        );
        // After 02:59 CEST the next wall-clock minute not yet fired is 03:00 CET.
        assert_eq!(
            fires(&every_minute, "2025-10-26T00:59:00Z", 1),
            ["2025-10-26T02:00:00.000Z"]
        );
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        // Australia/Lord_Howe: +10:30 standard, +11:00 summer.
        // 2025-04-06 02:00 (+11) falls back to 01:30 (+10:30): 01:30-01:59 twice.
        let s = sched("45 1 * * *", Some("Australia/Lord_Howe"));
        assert_eq!(
            fires(&s, "2025-04-04T12:00:00Z", 3),
            [
                "2025-04-04T14:45:00.000Z", // 01:45 +11:00
                "2025-04-05T14:45:00.000Z", // 01:45 +11:00, the earlier instant
                "2025-04-06T15:15:00.000Z", // 01:45 +10:30
            ]
        );
        // 2025-10-05 02:00 (+10:30) springs to 02:30 (+11): 02:00-02:29 missing.
        let s = sched("15 2 * * *", Some("Australia/Lord_Howe"));
        assert_eq!(
            fires(&s, "2025-10-03T12:00:00Z", 3),
            [
                "2025-10-03T15:45:00.000Z", // 02:15 +10:30
                "2025-10-04T15:30:00.000Z", // 02:15 missing -> 02:30 +11:00
                "2025-10-05T15:15:00.000Z", // 02:15 +11:00
            ]
        );
        let s = sched("*/10 * * * *", Some("Australia/Lord_Howe"));
        assert_consistent(&s, "2025-04-05T14:20:00Z", "2025-04-05T15:40:00Z");
        assert_consistent(&s, "2025-10-04T15:00:00Z", "2025-10-04T15:50:00Z");
    }

    #[test]
    fn a_skipped_day_moves_to_the_next_valid_time() {
        // Pacific/Apia skipped 2011-12-30 entirely (UTC-10 -> UTC+14).
        let s = sched("0 12 * * *", Some("Pacific/Apia"));
        assert_eq!(
            fires(&s, "2011-12-29T00:00:00Z", 3),
            [
                "2011-12-29T22:00:00.000Z", // 29th 12:00 -10:00
                "2011-12-30T10:00:00.000Z", // 30th 12:00 missing -> 31st 00:00 +14:00
                "2011-12-30T22:00:00.000Z", // 31st 12:00 +14:00
            ]
        );
    }

    #[test]
    fn gap_resolution_is_exact_to_the_second() {
        let s = sched("0 2 * * *", Some("America/New_York"));
        let spring = NaiveDate::from_ymd_opt(2025, 3, 9)
            .unwrap()
            .and_hms_opt(2, 0, 0)
            .unwrap();
        assert_eq!(s.instant_of(spring), Some(ms("2025-03-09T07:00:00Z")));
        let late = spring + TimeDelta::seconds(3599);
        assert_eq!(s.instant_of(late), Some(ms("2025-03-09T07:00:00Z")));
    }

    #[test]
    fn out_of_range_and_far_future() {
        let s = sched("0 0 * * *", None);
        assert_eq!(s.next_after(i64::MAX), Ok(None));
        assert_eq!(s.prev_at_or_before(i64::MIN), Ok(None));
        assert!(matches!(
            s.next_after(i64::MIN),
            Err(RepeatError::TimeOutOfRange { .. })
        ));
        // Past croner's year limit there is simply no next fire.
        assert_eq!(s.next_after(ms("5000-12-31T12:00:00Z")).unwrap(), None);
        // Before 1970 works.
        assert_eq!(
            fires(&s, "1969-12-31T12:00:00Z", 1),
            ["1970-01-01T00:00:00.000Z"]
        );
        assert_eq!(
            s.prev_at_or_before(ms("0001-01-01T12:00:00Z")).unwrap(),
            Some(ms("0001-01-01T00:00:00Z"))
        );
    }

    /// An independent oracle: scan every local minute, apply the rule
    /// (single -> it, ambiguous -> earlier, gap -> first valid local minute
    /// after it), and compare with walking `next_after` / `prev_at_or_before`.
    #[test]
    fn matches_a_brute_force_oracle_around_transitions() {
        let windows = [
            (
                "America/New_York",
                "2025-03-08T00:00:00Z",
                "2025-03-10T12:00:00Z",
            ),
            (
                "America/New_York",
                "2025-11-01T00:00:00Z",
                "2025-11-03T12:00:00Z",
            ),
            (
                "Europe/Berlin",
                "2025-03-29T00:00:00Z",
                "2025-03-31T00:00:00Z",
            ),
            (
                "Europe/Berlin",
                "2025-10-25T00:00:00Z",
                "2025-10-27T00:00:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "2025-04-05T00:00:00Z",
                "2025-04-07T00:00:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "2025-10-04T00:00:00Z",
                "2025-10-06T00:00:00Z",
            ),
            // A two-hour shift: +00:00 <-> +02:00.
            (
                "Antarctica/Troll",
                "2025-03-29T12:00:00Z",
                "2025-03-31T00:00:00Z",
            ),
            (
                "Antarctica/Troll",
                "2025-10-25T12:00:00Z",
                "2025-10-27T00:00:00Z",
            ),
            (
                "Pacific/Apia",
                "2011-12-29T00:00:00Z",
                "2011-12-31T12:00:00Z",
            ),
        ];
        let patterns = [
            "* * * * *",
            "*/7 * * * *",
            "0 * * * *",
            "30 1,2 * * *",
            "15,45 0-3 * * *",
            "0 2 * * *",
            "59 1 * * *",
            "0 0 * * *",
            "0 12 * * *",
        ];
        for (tz_name, from, to) in windows {
            let tz: Tz = tz_name.parse().unwrap();
            let zone = Zone::Iana(tz);
            let (from, to) = (ms(from), ms(to));
            let first_local = zone.local_of(DateTime::from_timestamp_millis(from).unwrap());
            let last_local = zone.local_of(DateTime::from_timestamp_millis(to).unwrap());
            for expr in patterns {
                let s = sched(expr, Some(tz_name));
                // Start the scan a day early so nothing near `from` is missed.
                let mut local = floor_second(first_local) - TimeDelta::days(1);
                let mut expected = Vec::new();
                while local <= last_local + TimeDelta::days(1) {
                    if s.cron.is_time_matching(&local).unwrap() {
                        let at = match zone.resolve(local) {
                            Resolved::Single(at) | Resolved::Ambiguous(at, _) => at,
                            Resolved::Gap => {
                                let mut valid = local;
                                loop {
                                    valid += TimeDelta::minutes(1);
                                    match zone.resolve(valid) {
                                        Resolved::Single(at) | Resolved::Ambiguous(at, _) => {
                                            break at
                                        }
                                        Resolved::Gap => {}
                                    }
                                }
                            }
                        };
                        expected.push(at);
                    }
                    local += TimeDelta::minutes(1);
                }
                expected.sort_unstable();
                expected.dedup();
                let expected: Vec<i64> = expected
                    .into_iter()
                    .filter(|at| *at > from && *at <= to)
                    .collect();
                assert!(!expected.is_empty(), "{expr} in {tz_name}");

                let mut got = Vec::new();
                let mut t = from;
                while let Some(at) = s.next_after(t).unwrap().filter(|at| *at <= to) {
                    got.push(at);
                    t = at;
                }
                let show = |v: &[i64]| v.iter().map(|at| iso(*at)).collect::<Vec<_>>();
                assert_eq!(show(&got), show(&expected), "{expr} in {tz_name}");

                let mut back = Vec::new();
                let mut t = to;
                while let Some(at) = s.prev_at_or_before(t).unwrap().filter(|at| *at > from) {
                    back.push(at);
                    t = at - 1;
                }
                back.reverse();
                assert_eq!(
                    show(&back),
                    show(&expected),
                    "backwards: {expr} in {tz_name}"
                );

                // From arbitrary instants too, including inside repeated hours.
                let mut t = from;
                while t <= to {
                    if let Some(want) = expected.iter().find(|at| **at > t) {
                        assert_eq!(
                            s.next_after(t).unwrap(),
                            Some(*want),
                            "{expr} in {tz_name} after {}",
                            iso(t)
                        );
                    }
                    if let Some(want) = expected.iter().rev().find(|at| **at <= t) {
                        assert_eq!(
                            s.prev_at_or_before(t).unwrap(),
                            Some(*want),
                            "{expr} in {tz_name} at {}",
                            iso(t)
                        );
                    }
                    t += 7 * 60_000 + 13_001;
                }
            }
        }
    }
}
