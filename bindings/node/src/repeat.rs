//! Conversions for repeatable specs, and the native `Scheduler`.

use crate::bridge::{opt_u64, promise, to_u64};
use crate::errors::{bad, to_napi};
use crate::producer::{retry_override, BackoffOptions};
use chasquimq::repeat::{MissedFires, Pattern};
use chasquimq::scheduler::{
    RepeatableMeta as Meta, SchedulerConfig, StandaloneScheduler, UpsertRequest,
};
use napi::bindgen_prelude::{Object, Uint8Array};
use napi::Env;
use napi_derive::napi;
use std::sync::Arc;
use std::time::Duration;

/// A repeat pattern: {kind: "cron", expression, tz?} or {kind: "every", intervalMs}.
#[napi(object)]
pub struct PatternObject {
    pub kind: String,
    pub expression: Option<String>,
    pub tz: Option<String>,
    pub interval_ms: Option<f64>,
}

/// A missed-fires policy: {kind: "skip" | "fire-once" | "fire-all", maxCatchup?}.
#[napi(object)]
pub struct MissedFiresObject {
    pub kind: String,
    pub max_catchup: Option<f64>,
}

/// What `upsertRepeatable` stores.
#[napi(object)]
pub struct UpsertSpec {
    /// The spec key; derived from name and pattern when unset.
    pub key: Option<String>,
    pub name: Option<String>,
    /// msgpack of the job's data.
    pub payload: Uint8Array,
    pub pattern: PatternObject,
    pub limit: Option<f64>,
    pub start_after_ms: Option<f64>,
    pub end_before_ms: Option<f64>,
    pub missed_fires: Option<MissedFiresObject>,
    pub attempts: Option<f64>,
    pub backoff: Option<BackoffOptions>,
}

/// A listed spec (no payload).
#[napi(object)]
pub struct RepeatableMeta {
    pub key: String,
    pub job_name: String,
    pub pattern: PatternObject,
    pub next_fire_ms: f64,
    pub limit: Option<f64>,
    pub start_after_ms: Option<f64>,
    pub end_before_ms: Option<f64>,
    pub missed_fires: MissedFiresObject,
}

fn pattern_from(p: PatternObject) -> napi::Result<Pattern> {
    let pattern = match p.kind.as_str() {
        "cron" => {
            let expr = p
                .expression
                .ok_or_else(|| bad("repeat.expression", "is required for a cron pattern"))?;
            Pattern::cron(expr, p.tz)
        }
        "every" => {
            let ms = p
                .interval_ms
                .ok_or_else(|| bad("repeat.intervalMs", "is required for an every pattern"))?;
            Pattern::every(to_u64("repeat.intervalMs", ms)?)
        }
        other => {
            return Err(bad(
                "repeat.kind",
                format!("unknown kind {other:?}; use \"cron\" or \"every\""),
            ))
        }
    };
    pattern.map_err(|e| to_napi(e.into()))
}

fn missed_from(m: Option<MissedFiresObject>) -> napi::Result<MissedFires> {
    let Some(m) = m else {
        return Ok(MissedFires::Skip);
    };
    match m.kind.as_str() {
        "skip" => Ok(MissedFires::Skip),
        "fire-once" => Ok(MissedFires::FireOnce),
        "fire-all" => {
            let n = m
                .max_catchup
                .ok_or_else(|| bad("missedFires.maxCatchup", "is required for fire-all"))?;
            let n = u32::try_from(to_u64("missedFires.maxCatchup", n)?)
                .map_err(|_| bad("missedFires.maxCatchup", "is out of range"))?;
            MissedFires::fire_all(n).map_err(|e| to_napi(e.into()))
        }
        other => Err(bad(
            "missedFires.kind",
            format!("unknown kind {other:?}; use \"skip\", \"fire-once\" or \"fire-all\""),
        )),
    }
}

pub fn parse_upsert(s: UpsertSpec) -> napi::Result<UpsertRequest> {
    Ok(UpsertRequest {
        key: s.key,
        job_name: s.name.unwrap_or_default(),
        pattern: pattern_from(s.pattern)?,
        payload: s.payload.to_vec(),
        limit: opt_u64("limit", s.limit)?,
        start_after_ms: opt_u64("startAfterMs", s.start_after_ms)?,
        end_before_ms: opt_u64("endBeforeMs", s.end_before_ms)?,
        missed_fires: missed_from(s.missed_fires)?,
        retry: retry_override(s.attempts, s.backoff, None)?,
    })
}

pub fn meta_to_js(m: Meta) -> RepeatableMeta {
    let pattern = match m.pattern {
        Pattern::Cron { expression, tz } => PatternObject {
            kind: "cron".into(),
            expression: Some(expression),
            tz,
            interval_ms: None,
        },
        Pattern::Every { interval_ms } => PatternObject {
            kind: "every".into(),
            expression: None,
            tz: None,
            interval_ms: Some(interval_ms as f64),
        },
    };
    let missed_fires = match m.missed_fires {
        MissedFires::Skip => ("skip", None),
        MissedFires::FireOnce => ("fire-once", None),
        MissedFires::FireAll { max_catchup } => ("fire-all", Some(max_catchup as f64)),
    };
    RepeatableMeta {
        key: m.key,
        job_name: m.job_name,
        pattern,
        next_fire_ms: m.next_fire_ms as f64,
        limit: m.limit.map(|v| v as f64),
        start_after_ms: m.start_after_ms.map(|v| v as f64),
        end_before_ms: m.end_before_ms.map(|v| v as f64),
        missed_fires: MissedFiresObject {
            kind: missed_fires.0.into(),
            max_catchup: missed_fires.1,
        },
    }
}

/// Scheduler settings; unset fields take the engine's defaults.
#[napi(object)]
pub struct SchedulerOptions {
    pub tick_interval_ms: Option<f64>,
    pub batch: Option<f64>,
    pub max_stream_len: Option<f64>,
    pub lock_ttl_secs: Option<f64>,
    pub holder_id: Option<String>,
}

/// A repeatable-job scheduler without a worker (leader-elected per queue).
#[napi]
pub struct Scheduler {
    url: String,
    queue: String,
    cfg: SchedulerConfig,
    inner: Arc<tokio::sync::OnceCell<Arc<StandaloneScheduler>>>,
}

type Cell = Arc<tokio::sync::OnceCell<Arc<StandaloneScheduler>>>;

async fn connected(
    url: String,
    queue: String,
    cfg: SchedulerConfig,
    cell: Cell,
) -> chasquimq::Result<Arc<StandaloneScheduler>> {
    cell.get_or_try_init(|| async {
        StandaloneScheduler::connect(&url, &queue, cfg)
            .await
            .map(Arc::new)
    })
    .await
    .cloned()
}

#[napi]
impl Scheduler {
    #[napi(constructor)]
    pub fn new(
        redis_url: String,
        queue_name: String,
        options: Option<SchedulerOptions>,
    ) -> napi::Result<Self> {
        chasquimq::runtime::ensure_not_forked().map_err(to_napi)?;
        chasquimq::conn::parse_url(&redis_url).map_err(to_napi)?;
        chasquimq::keys::validate_queue_name("queueName", &queue_name).map_err(to_napi)?;
        let o = options.unwrap_or(SchedulerOptions {
            tick_interval_ms: None,
            batch: None,
            max_stream_len: None,
            lock_ttl_secs: None,
            holder_id: None,
        });
        let tick = opt_u64("tickIntervalMs", o.tick_interval_ms)?.unwrap_or(1_000);
        let batch = opt_u64("batch", o.batch)?.unwrap_or(100);
        let lock_ttl_secs = opt_u64("lockTtlSecs", o.lock_ttl_secs)?.unwrap_or(5);
        if tick == 0 || batch == 0 || lock_ttl_secs == 0 {
            return Err(bad(
                "tickIntervalMs",
                "tickIntervalMs, batch and lockTtlSecs must be positive",
            ));
        }
        let holder = o
            .holder_id
            .unwrap_or_else(|| format!("sched-{}-{}", std::process::id(), ulid::Ulid::new()));
        Ok(Scheduler {
            url: redis_url,
            queue: queue_name,
            cfg: SchedulerConfig {
                holder,
                tick: Duration::from_millis(tick),
                batch,
                max_stream_len: opt_u64("maxStreamLen", o.max_stream_len)?.unwrap_or(1_000_000),
                lock_ttl_secs,
            },
            inner: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// One scheduling step; resolves to [isLeader, jobs fired].
    #[napi(ts_return_type = "Promise<[boolean, number]>")]
    pub fn tick<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let args = (
            self.url.clone(),
            self.queue.clone(),
            self.cfg.clone(),
            self.inner.clone(),
        );
        promise(
            env,
            async move {
                let s = connected(args.0, args.1, args.2, args.3).await?;
                s.tick().await
            },
            |_, r| Ok((r.leader, r.fired as f64)),
        )
    }

    /// Runs until stop() or close().
    #[napi(ts_return_type = "Promise<void>")]
    pub fn run<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let args = (
            self.url.clone(),
            self.queue.clone(),
            self.cfg.clone(),
            self.inner.clone(),
        );
        promise(
            env,
            async move {
                let s = connected(args.0, args.1, args.2, args.3).await?;
                s.run().await;
                Ok(())
            },
            |_, ()| Ok(()),
        )
    }

    #[napi]
    pub fn stop(&self) {
        if let Some(s) = self.inner.get() {
            s.stop();
        }
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let cell = self.inner.clone();
        promise(
            env,
            async move {
                if let Some(s) = cell.get() {
                    s.close().await;
                }
                Ok(())
            },
            |_, ()| Ok(()),
        )
    }
}
