//! Repeatable jobs in Redis: upsert, list, remove, and the scheduler loop.
//!
//! One scheduler per queue leads at a time (`scheduler:lock`); every fire is
//! applied with a compare-and-set on the spec's score in `repeat`, so even
//! two leaders during a lock handover cannot fire one window twice. Due
//! decisions use the Redis server clock (`TIME`).

use crate::conn::Script;
use crate::envelope::{Envelope, RetryOverride};
use crate::errors::{Error, Result};
use crate::keys::Keys;
use crate::repeat::{
    self, first_fire, plan_fires_in, spec_key, MissedFires, Outage, Pattern, RepeatError,
    SpecLimits, StoredSpec,
};
use fred::prelude::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl From<RepeatError> for Error {
    fn from(e: RepeatError) -> Self {
        let field = e.field();
        let full = e.to_string();
        let message = full
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(&full)
            .to_string();
        Error::InvalidArgument {
            field: field.to_string(),
            message,
        }
    }
}

/// What an upsert stores.
#[derive(Debug, Clone)]
pub struct UpsertRequest {
    /// Caller-supplied spec key; derived from name and pattern when `None`.
    pub key: Option<String>,
    pub job_name: String,
    pub pattern: Pattern,
    /// msgpack of the user's data.
    pub payload: Vec<u8>,
    pub limit: Option<u64>,
    pub start_after_ms: Option<u64>,
    pub end_before_ms: Option<u64>,
    pub missed_fires: MissedFires,
    /// Applied to every fired job (a ChasquiMQ 2 extension, hash field `opts`).
    pub retry: Option<RetryOverride>,
}

/// A listed spec (no payload).
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatableMeta {
    pub key: String,
    pub job_name: String,
    pub pattern: Pattern,
    pub next_fire_ms: i64,
    pub limit: Option<u64>,
    pub start_after_ms: Option<u64>,
    pub end_before_ms: Option<u64>,
    pub missed_fires: MissedFires,
}

/// Server time in epoch ms.
pub async fn server_now_ms(client: &Client) -> Result<i64> {
    let t: Vec<i64> = client
        .custom(
            fred::cmd!("TIME", hash: fred::types::ClusterHash::Random),
            Vec::<Value>::new(),
        )
        .await?;
    match t.as_slice() {
        [s, us, ..] => Ok(s * 1000 + us / 1000),
        _ => Err(Error::Decode("TIME returned an unexpected reply".into())),
    }
}

const UPSERT: &str = concat!(
    crate::scripts::lua_expect!(),
    r#"
expect('zset', KEYS[1]); expect('hash', KEYS[2])
redis.call('HSET', KEYS[2], 'spec', ARGV[2])
redis.call('HSETNX', KEYS[2], 'fired', 0)
if ARGV[4] == '' then redis.call('HDEL', KEYS[2], 'opts') else redis.call('HSET', KEYS[2], 'opts', ARGV[4]) end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"#
);

const REMOVE: &str = r#"
local n = redis.call('ZREM', KEYS[1], ARGV[1])
local d = redis.call('DEL', KEYS[2])
if n + d > 0 then return 1 end
return 0
"#;

/// Upserts a spec; returns its key. Re-upserting a spec whose schedule
/// (pattern, start, end) did not change keeps its next fire and its fire
/// counter, so an application that upserts at every boot neither delays
/// nor repeats fires.
pub async fn upsert(client: &Client, keys: &Keys, req: UpsertRequest) -> Result<String> {
    let schedule = req.pattern.compile()?;
    repeat::validate_limits(req.limit, req.start_after_ms, req.end_before_ms)?;
    req.missed_fires.validate()?;
    crate::producer::validate_payload("data", &req.payload)?;
    let key = spec_key(req.key.as_deref(), &req.job_name, &req.pattern)?;
    let hash = keys.repeat_spec(&key);
    let now = server_now_ms(client).await?;
    let fresh_first = first_fire(&schedule, now, req.start_after_ms, req.end_before_ms)?
        .ok_or_else(|| {
            Error::invalid_argument(
                "end_before_ms",
                "the pattern has no fire before end_before_ms; widen the window",
            )
        })?;
    let old: Option<Vec<u8>> = client
        .hget(hash.as_str(), "spec")
        .await
        .map_err(|e| Error::from(e).on_key(&hash, "hash"))?;
    let score: Option<f64> = client
        .zscore(keys.repeat.as_str(), key.as_str())
        .await
        .map_err(|e| Error::from(e).on_key(&keys.repeat, "zset"))?;
    let same_schedule = old
        .and_then(|b| StoredSpec::decode(&b).ok())
        .map(|o| {
            o.pattern == req.pattern
                && o.start_after_ms == req.start_after_ms
                && o.end_before_ms == req.end_before_ms
        })
        .unwrap_or(false);
    let next = match score {
        Some(s) if same_schedule => s as i64,
        _ => fresh_first,
    };
    let spec = StoredSpec {
        key: key.clone(),
        job_name: req.job_name,
        pattern: req.pattern,
        payload: req.payload,
        limit: req.limit,
        start_after_ms: req.start_after_ms,
        end_before_ms: req.end_before_ms,
        missed_fires: req.missed_fires,
    };
    let opts = match &req.retry {
        Some(r) if r.max_attempts.is_some() || r.backoff.is_some() => r.encode(),
        _ => Vec::new(),
    };
    let _: i64 = Script::new(UPSERT)
        .run(
            client,
            vec![keys.repeat.as_str().into(), hash.as_str().into()],
            vec![
                Value::from(key.as_str()),
                Value::Bytes(spec.encode()?.into()),
                Value::from(next),
                Value::Bytes(opts.into()),
            ],
        )
        .await?;
    Ok(key)
}

/// Specs ordered by next fire, ascending.
pub async fn list(client: &Client, keys: &Keys, limit: u64) -> Result<Vec<RepeatableMeta>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, f64)> = client
        .zrange(
            keys.repeat.as_str(),
            0,
            limit as i64 - 1,
            None,
            false,
            None,
            true,
        )
        .await
        .map_err(|e| Error::from(e).on_key(&keys.repeat, "zset"))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let pipe = client.pipeline();
    for (k, _) in &rows {
        let _: () = pipe.hget(keys.repeat_spec(k), "spec").await?;
    }
    let specs: Vec<Option<Vec<u8>>> = pipe.all().await?;
    let mut out = Vec::with_capacity(rows.len());
    for ((key, score), bytes) in rows.into_iter().zip(specs) {
        let Some(spec) = bytes.and_then(|b| StoredSpec::decode(&b).ok()) else {
            continue;
        };
        out.push(RepeatableMeta {
            key,
            job_name: spec.job_name,
            pattern: spec.pattern,
            next_fire_ms: score as i64,
            limit: spec.limit,
            start_after_ms: spec.start_after_ms,
            end_before_ms: spec.end_before_ms,
            missed_fires: spec.missed_fires,
        });
    }
    Ok(out)
}

/// Removes a spec; true when something was removed.
pub async fn remove(client: &Client, keys: &Keys, key: &str) -> Result<bool> {
    let n: i64 = Script::new(REMOVE)
        .run(
            client,
            vec![keys.repeat.as_str().into(), keys.repeat_spec(key).into()],
            vec![Value::from(key)],
        )
        .await?;
    Ok(n == 1)
}

/// Lock, clock and due specs in one call; the leader also records the
/// time of this tick (`scheduler:tick`, only while the queue has specs, so
/// a queue without repeatable jobs holds no extra key) and returns the
/// previous one, from which the missed-fire outage is measured.
/// KEYS: lock, repeat, tick. ARGV: holder, ttl, batch, tick_key_ttl_ms.
/// Returns {leader, now, ms_to_next|-1, previous_tick|-1, key1, score1, ...}.
const TICK: &str = concat!(
    crate::scripts::lua_expect!(),
    "expect('string', KEYS[1]); expect('zset', KEYS[2]); expect('string', KEYS[3])\n",
    crate::scripts::lua_leader_lock!(),
    crate::scripts::lua_server_now!(),
    r#"
local prev = tonumber(redis.call('GET', KEYS[3]) or '') or -1
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local out = {1, now, -1, prev}
if nxt[2] then
  out[3] = math.max(0, tonumber(nxt[2]) - now)
  redis.call('SET', KEYS[3], string.format('%.0f', now), 'PX', ARGV[4])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due do out[#out + 1] = due[i] end
return out
"#
);

/// Applies one spec's fires if its score is still the one planned from.
/// A stream at its cap takes none: the spec keeps its score (-2), so the
/// fires come on a later tick, once workers made room (one plan's fires
/// may pass the cap by fewer than their count, so a plan always fits).
/// KEYS: repeat, spec hash, stream. ARGV: key, expected_score, new_next|'',
/// stream cap, name, envelopes...
const FIRE: &str = concat!(
    crate::scripts::lua_expect!(),
    r#"
expect('zset', KEYS[1]); expect('hash', KEYS[2]); expect('stream', KEYS[3])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return -1 end
if #ARGV > 5 and redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[4]) then return -2 end
local n = 0
for i = 6, #ARGV do
  local a = {'XADD', KEYS[3], '*', 'd', ARGV[i]}
  if ARGV[5] ~= '' then a[#a + 1] = 'n'; a[#a + 1] = ARGV[5] end
  redis.call(unpack(a))
  n = n + 1
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'fired', n) end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return n
"#
);

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub holder: String,
    pub tick: Duration,
    pub batch: u64,
    pub max_stream_len: u64,
    pub lock_ttl_secs: u64,
}

/// How long the `scheduler:tick` record lives: past it, the previous tick
/// is unknown and the outage is taken to reach back to the first due window.
pub const TICK_RECORD_TTL_MS: u64 = 86_400_000;

impl SchedulerConfig {
    fn tick_ms(&self) -> i64 {
        i64::try_from(self.tick.as_millis()).unwrap_or(i64::MAX)
    }

    /// The longest gap between two ticks of the queue that is still a
    /// healthy cadence (a slow tick, a graceful leader change):
    /// `2 * tick + 500 ms`. A longer gap is an outage.
    pub fn healthy_gap_ms(&self) -> i64 {
        self.tick_ms().saturating_mul(2).saturating_add(500)
    }

    /// The outage seen by a tick at `now_ms` whose previous tick was at
    /// `previous_tick_ms`: none after a healthy gap; otherwise the windows
    /// after the previous tick (or all, when there is none) and more than
    /// one tick before now. A window within one tick of now is on time
    /// even after an outage: a healthy scheduler would fire it now too.
    pub fn outage(&self, now_ms: i64, previous_tick_ms: Option<i64>) -> Outage {
        let until_ms = now_ms.saturating_sub(self.tick_ms());
        match previous_tick_ms {
            Some(p) if now_ms.saturating_sub(p) <= self.healthy_gap_ms() => Outage::NONE,
            Some(p) => Outage {
                from_ms: p.saturating_add(1),
                until_ms,
            },
            None => Outage {
                from_ms: i64::MIN,
                until_ms,
            },
        }
    }
}

pub struct Scheduler {
    tick: Script,
    fire: Script,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            tick: Script::new(TICK),
            fire: Script::new(FIRE),
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    pub leader: bool,
    pub fired: u64,
    /// ms until the next due spec, or -1 when none.
    pub next_due_ms: i64,
    /// Specs whose fires were held back: the stream is at `max_stream_len`.
    pub held: u64,
}

impl Scheduler {
    /// One scheduling step: take or keep the lock, fire due specs.
    pub async fn tick(
        &self,
        client: &Client,
        keys: &Keys,
        cfg: &SchedulerConfig,
    ) -> Result<TickReport> {
        let r: Vec<Value> = self
            .tick
            .run(
                client,
                vec![
                    keys.scheduler_lock.as_str().into(),
                    keys.repeat.as_str().into(),
                    keys.scheduler_tick.as_str().into(),
                ],
                vec![
                    Value::from(cfg.holder.as_str()),
                    Value::from(cfg.lock_ttl_secs as i64),
                    Value::from(cfg.batch as i64),
                    Value::from(TICK_RECORD_TTL_MS as i64),
                ],
            )
            .await?;
        let int = |v: Option<&Value>| v.and_then(|v| v.as_i64()).unwrap_or(0);
        let mut report = TickReport {
            leader: int(r.first()) == 1,
            fired: 0,
            next_due_ms: int(r.get(2)),
            held: 0,
        };
        if !report.leader {
            return Ok(report);
        }
        let now = int(r.get(1));
        let previous = Some(int(r.get(3))).filter(|p| *p >= 0);
        let outage = cfg.outage(now, previous);
        let due: Vec<(String, i64)> = r[4.min(r.len())..]
            .chunks(2)
            .filter_map(|c| match c {
                [k, s] => Some((
                    k.as_str()?.to_string(),
                    s.as_str()?.parse::<f64>().ok()? as i64,
                )),
                _ => None,
            })
            .collect();
        if due.is_empty() {
            return Ok(report);
        }
        let pipe = client.pipeline();
        for (k, _) in &due {
            let _: () = pipe
                .hmget(keys.repeat_spec(k), vec!["spec", "fired", "opts"])
                .await?;
        }
        let rows: Vec<Vec<Value>> = pipe.all().await?;
        for ((key, score), row) in due.into_iter().zip(rows) {
            match self
                .fire_one(client, keys, cfg, &key, score, now, &outage, row)
                .await
            {
                Ok(Fired::Jobs(n)) => report.fired += n,
                Ok(Fired::Held) => report.held += 1,
                Err(e) => {
                    tracing::warn!(spec = %key, error = %e, "repeatable spec skipped this tick")
                }
            }
        }
        report.next_due_ms = 0;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn fire_one(
        &self,
        client: &Client,
        keys: &Keys,
        cfg: &SchedulerConfig,
        key: &str,
        score: i64,
        now: i64,
        outage: &Outage,
        row: Vec<Value>,
    ) -> Result<Fired> {
        let mut it = row.into_iter();
        let spec_bytes = it.next().and_then(|v| v.into_bytes());
        let fired = it.next().and_then(|v| v.as_u64()).unwrap_or(0);
        let opts = it
            .next()
            .and_then(|v| v.into_bytes())
            .filter(|b| !b.is_empty());
        let hash = keys.repeat_spec(key);
        let Some(spec) = spec_bytes.and_then(|b| StoredSpec::decode(&b).ok()) else {
            // A spec without a readable body cannot fire; park it a minute
            // ahead instead of spinning on it every tick.
            let _: Value = client
                .zadd(
                    keys.repeat.as_str(),
                    None,
                    None,
                    false,
                    false,
                    ((now + 60_000) as f64, key),
                )
                .await?;
            return Err(Error::Decode(format!("spec {key} has no decodable body")));
        };
        let retry = match opts {
            Some(b) => Some(RetryOverride::decode(&b).map_err(|e| Error::Decode(e.to_string()))?),
            None => None,
        };
        let schedule = spec.pattern.compile()?;
        let limits = SpecLimits {
            limit: spec.limit,
            fired,
            start_after_ms: spec.start_after_ms,
            end_before_ms: spec.end_before_ms,
        };
        let plan = plan_fires_in(&schedule, spec.missed_fires, &limits, score, now, outage)?;
        let mut args: Vec<Value> = vec![
            Value::from(key),
            Value::from(score),
            match plan.next_fire_ms {
                Some(n) => Value::from(n),
                None => Value::from(""),
            },
            Value::from(cfg.max_stream_len as i64),
            Value::from(spec.job_name.as_str()),
        ];
        for at in &plan.fires {
            let env = Envelope {
                id: crate::clock::new_id(),
                payload: spec.payload.clone(),
                created_at_ms: (*at).max(0) as u64,
                attempt: 0,
                retry: retry.clone(),
            };
            args.push(Value::Bytes(env.encode().into()));
        }
        let n: i64 = self
            .fire
            .run(
                client,
                vec![
                    keys.repeat.as_str().into(),
                    hash.as_str().into(),
                    keys.stream.as_str().into(),
                ],
                args,
            )
            .await?;
        Ok(if n == -2 {
            Fired::Held
        } else {
            Fired::Jobs(n.max(0) as u64)
        })
    }
}

/// What `fire_one` did with a due spec.
enum Fired {
    Jobs(u64),
    /// The stream was at its cap: the spec keeps its score for later.
    Held,
}

/// Runs the scheduler until `stop`, then releases the lock if held.
pub async fn run(client: Client, keys: Keys, cfg: SchedulerConfig, stop: CancellationToken) {
    let sched = Scheduler::default();
    let release = Script::new(crate::scripts::RELEASE_LOCK);
    let mut leader = false;
    let mut holding = false;
    while !stop.is_cancelled() {
        let wait = match sched.tick(&client, &keys, &cfg).await {
            Ok(r) => {
                leader = r.leader;
                if r.held > 0 && !holding {
                    tracing::warn!(
                        queue = %keys.prefix(),
                        max_stream_len = cfg.max_stream_len,
                        "the stream is at max_stream_len: repeatable fires wait until workers make room"
                    );
                }
                holding = r.held > 0;
                if r.held > 0 {
                    cfg.tick
                } else if r.leader && r.next_due_ms >= 0 {
                    Duration::from_millis(r.next_due_ms as u64).min(cfg.tick)
                } else {
                    cfg.tick
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler tick failed; retrying");
                cfg.tick
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {},
            _ = stop.cancelled() => break,
        }
    }
    if leader {
        let _: Result<i64> = release
            .run(
                &client,
                vec![keys.scheduler_lock.as_str().into()],
                vec![Value::from(cfg.holder.as_str())],
            )
            .await;
    }
}

/// A scheduler without a worker (the native `Scheduler`): its own
/// connection, the same leader election as the worker-embedded one.
pub struct StandaloneScheduler {
    client: Client,
    keys: Keys,
    cfg: SchedulerConfig,
    stop: CancellationToken,
    sched: Scheduler,
}

impl StandaloneScheduler {
    pub async fn connect(
        url: &str,
        queue: &str,
        cfg: SchedulerConfig,
    ) -> Result<StandaloneScheduler> {
        crate::keys::validate_queue_name("queue_name", queue)?;
        if cfg.tick.is_zero() {
            return Err(Error::invalid_argument(
                "tick_interval_ms",
                "must be a positive integer",
            ));
        }
        let client = crate::conn::connect(url, Some(crate::conn::COMMAND_TIMEOUT)).await?;
        Ok(StandaloneScheduler {
            client,
            keys: Keys::new(queue),
            cfg,
            stop: CancellationToken::new(),
            sched: Scheduler::default(),
        })
    }

    /// One tick (tests and cron-style callers).
    pub async fn tick(&self) -> Result<TickReport> {
        self.sched.tick(&self.client, &self.keys, &self.cfg).await
    }

    /// Runs until `stop()`.
    pub async fn run(&self) {
        run(
            self.client.clone(),
            self.keys.clone(),
            self.cfg.clone(),
            self.stop.clone(),
        )
        .await
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub async fn close(&self) {
        self.stop.cancel();
        let _ = self.client.quit().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(tick_ms: u64) -> SchedulerConfig {
        SchedulerConfig {
            holder: "h".into(),
            tick: Duration::from_millis(tick_ms),
            batch: 100,
            max_stream_len: 1_000,
            lock_ttl_secs: 5,
        }
    }

    #[test]
    fn the_outage_is_measured_from_the_previous_tick() {
        let c = cfg(1_000);
        assert_eq!(c.healthy_gap_ms(), 2_500);
        // Healthy: a tick on time, a slow one, a graceful leader change.
        for gap in [1_000, 1_900, 2_500] {
            assert_eq!(c.outage(100_000, Some(100_000 - gap)), Outage::NONE);
        }
        // A gap past the cadence: the windows after the previous tick and
        // more than a tick before now were missed.
        assert_eq!(
            c.outage(100_000, Some(96_000)),
            Outage {
                from_ms: 96_001,
                until_ms: 99_000
            }
        );
        // No previous tick (first start, or a record expired): everything
        // more than a tick old was missed.
        assert_eq!(
            c.outage(100_000, None),
            Outage {
                from_ms: i64::MIN,
                until_ms: 99_000
            }
        );
        // A server clock that stepped back is not an outage.
        assert_eq!(c.outage(100_000, Some(150_000)), Outage::NONE);
    }
}
