//! `Consumer`: type conversion over `chasquimq::Consumer`. Jobs cross to
//! JavaScript one batch per promise (`nextBatch`); outcomes come back in one
//! synchronous `settle` call per event-loop turn.

use crate::bridge::{opt_u32, opt_u64, promise, to_u64};
use crate::errors::{bad, to_napi};
use chasquimq::{ConsumerConfig, Error, FailKind, Outcome};
use napi::bindgen_prelude::{Buffer, Object, Uint8Array};
use napi::Env;
use napi_derive::napi;
use std::sync::{Arc, OnceLock};

/// Consumer settings; unset fields take the engine's defaults.
#[napi(object)]
pub struct ConsumerOptions {
    pub concurrency: Option<f64>,
    pub max_attempts: Option<f64>,
    pub group: Option<String>,
    pub consumer_id: Option<String>,
    pub read_block_ms: Option<f64>,
    pub read_count: Option<f64>,
    pub claim_min_idle_ms: Option<f64>,
    pub max_payload_bytes: Option<f64>,
    pub max_stream_len: Option<f64>,
    pub dlq_max_stream_len: Option<f64>,
    pub events_enabled: Option<bool>,
    pub delayed_enabled: Option<bool>,
    pub run_scheduler: Option<bool>,
    pub scheduler_tick_ms: Option<f64>,
    pub store_results: Option<bool>,
    pub result_ttl_ms: Option<f64>,
    pub promoter_tick_ms: Option<f64>,
    pub job_timeout_ms: Option<f64>,
    pub start_timeout_ms: Option<f64>,
}

/// One job handed to JavaScript.
#[napi(object)]
pub struct Delivery {
    pub token: f64,
    pub job_id: String,
    pub name: String,
    /// msgpack of the job's data.
    pub payload: Buffer,
    /// 1-indexed run number.
    pub attempt: u32,
    pub created_at_ms: f64,
    /// Time limit of this run in ms (the job's, else the worker's), or null.
    pub timeout_ms: Option<f64>,
}

/// What happened to one delivered job. kind: 0 completed (result: msgpack
/// or null), 1 failed, 2 unrecoverable, 3 abandoned (stays pending for
/// recovery), 4 payload not decodable, 5 past its time limit (the engine
/// writes the reason).
#[napi(object)]
pub struct SettleOutcome {
    pub token: f64,
    pub kind: u32,
    pub result: Option<Uint8Array>,
    pub reason: Option<String>,
    pub duration_us: Option<f64>,
}

const OK: u32 = 0;
const FAILED: u32 = 1;
const UNRECOVERABLE: u32 = 2;
const ABANDONED: u32 = 3;
const DECODE_FAILED: u32 = 4;
const TIMEOUT: u32 = 5;

fn config(queue_name: String, o: Option<ConsumerOptions>) -> napi::Result<ConsumerConfig> {
    let mut cfg = ConsumerConfig::new(queue_name);
    let Some(o) = o else { return Ok(cfg) };
    macro_rules! set {
        ($field:ident, $conv:ident, $js:literal) => {
            if let Some(v) = $conv($js, o.$field)? {
                cfg.$field = v.try_into().map_err(|_| bad($js, "is out of range"))?;
            }
        };
    }
    set!(concurrency, opt_u64, "concurrency");
    set!(max_attempts, opt_u32, "maxAttempts");
    set!(read_block_ms, opt_u64, "readBlockMs");
    if let Some(v) = opt_u64("readCount", o.read_count)? {
        cfg.read_count = Some(
            v.try_into()
                .map_err(|_| bad("readCount", "is out of range"))?,
        );
    }
    set!(claim_min_idle_ms, opt_u64, "claimMinIdleMs");
    set!(max_payload_bytes, opt_u64, "maxPayloadBytes");
    set!(max_stream_len, opt_u64, "maxStreamLen");
    set!(dlq_max_stream_len, opt_u64, "dlqMaxStreamLen");
    set!(scheduler_tick_ms, opt_u64, "schedulerTickMs");
    set!(result_ttl_ms, opt_u64, "resultTtlMs");
    set!(promoter_tick_ms, opt_u64, "promoterTickMs");
    set!(start_timeout_ms, opt_u64, "startTimeoutMs");
    cfg.job_timeout_ms = opt_u64("jobTimeoutMs", o.job_timeout_ms)?;
    if let Some(g) = o.group {
        cfg.group = g;
    }
    cfg.consumer_id = o.consumer_id;
    if let Some(b) = o.events_enabled {
        cfg.events_enabled = b;
    }
    if let Some(b) = o.delayed_enabled {
        cfg.delayed_enabled = b;
    }
    if let Some(b) = o.run_scheduler {
        cfg.run_scheduler = b;
    }
    if let Some(b) = o.store_results {
        cfg.store_results = b;
    }
    Ok(cfg)
}

fn outcome(o: SettleOutcome) -> napi::Result<Outcome> {
    let token = to_u64("outcomes.token", o.token)?;
    let duration_us = o
        .duration_us
        .map(|d| to_u64("outcomes.durationUs", d))
        .transpose()?
        .unwrap_or(0);
    Ok(match o.kind {
        OK => Outcome::Completed {
            token,
            result: o.result.map(|r| bytes::Bytes::copy_from_slice(&r)),
            duration_us,
        },
        FAILED | UNRECOVERABLE | DECODE_FAILED | TIMEOUT => Outcome::Failed {
            token,
            reason: o.reason.unwrap_or_default(),
            kind: match o.kind {
                FAILED => FailKind::Retryable,
                UNRECOVERABLE => FailKind::Unrecoverable,
                TIMEOUT => FailKind::Timeout,
                _ => FailKind::DecodeFailed,
            },
            duration_us,
        },
        ABANDONED => Outcome::Abandoned { token },
        other => {
            return Err(bad(
                "outcomes.kind",
                format!("unknown outcome kind {other}"),
            ))
        }
    })
}

/// The engine's consumer for one queue: hands jobs over in batches and
/// settles outcomes in batches.
#[napi]
pub struct Consumer {
    url: String,
    cfg: ConsumerConfig,
    inner: Arc<OnceLock<Arc<chasquimq::Consumer>>>,
    /// Cancelled by stop(): ends a start that waits for Redis.
    start_cancel: chasquimq::CancellationToken,
}

impl Consumer {
    fn running(&self) -> napi::Result<Arc<chasquimq::Consumer>> {
        self.inner.get().cloned().ok_or_else(|| {
            to_napi(Error::Closed(
                "the consumer was not started; await start() first".into(),
            ))
        })
    }
}

#[napi]
impl Consumer {
    #[napi(constructor)]
    pub fn new(
        redis_url: String,
        queue_name: String,
        options: Option<ConsumerOptions>,
    ) -> napi::Result<Self> {
        chasquimq::runtime::ensure_not_forked().map_err(to_napi)?;
        chasquimq::conn::parse_url(&redis_url).map_err(to_napi)?;
        Ok(Consumer {
            url: redis_url,
            cfg: config(queue_name, options)?,
            inner: Arc::new(OnceLock::new()),
            start_cancel: chasquimq::CancellationToken::new(),
        })
    }

    /// Connects and starts the engine tasks.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn start<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        chasquimq::runtime::ensure_not_forked().map_err(to_napi)?;
        if self.inner.get().is_some() {
            return Err(to_napi(Error::Closed("start() was already called".into())));
        }
        let (url, cfg, slot) = (self.url.clone(), self.cfg.clone(), self.inner.clone());
        let cancel = self.start_cancel.clone();
        promise(
            env,
            async move {
                let c = chasquimq::Consumer::start_until(&url, cfg, cancel).await?;
                slot.set(Arc::new(c))
                    .map_err(|_| Error::Closed("start() was already called".into()))
            },
            |_, ()| Ok(()),
        )
    }

    /// The next batch of jobs (every batch already waiting, merged); null
    /// once stopped and drained.
    #[napi(ts_return_type = "Promise<Array<Delivery> | null>")]
    pub fn next_batch<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let c = self.running()?;
        promise(env, async move { Ok(c.next_batch().await) }, |_, batch| {
            Ok(batch.map(|b| {
                b.into_iter()
                    .map(|d| Delivery {
                        token: d.token as f64,
                        job_id: d.job_id,
                        name: d.name,
                        payload: Buffer::from(d.payload.to_vec()),
                        attempt: d.attempt,
                        created_at_ms: d.created_at_ms as f64,
                        timeout_ms: d.timeout_ms.map(|t| t as f64),
                    })
                    .collect::<Vec<_>>()
            }))
        })
    }

    /// Records outcomes; the engine settles them in its next flush.
    #[napi]
    pub fn settle(&self, outcomes: Vec<SettleOutcome>) -> napi::Result<()> {
        let c = self.running()?;
        let out = outcomes
            .into_iter()
            .map(outcome)
            .collect::<napi::Result<Vec<_>>>()?;
        c.settle(out);
        Ok(())
    }

    /// Stops reading; nextBatch drains what was read, then resolves to null.
    #[napi]
    pub fn stop(&self) {
        self.start_cancel.cancel();
        if let Some(c) = self.inner.get() {
            c.stop();
        }
    }

    /// Flushes settled outcomes, stops the engine tasks, closes connections.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let c = self.inner.get().cloned();
        promise(
            env,
            async move {
                if let Some(c) = c {
                    c.close().await;
                }
                Ok(())
            },
            |_, ()| Ok(()),
        )
    }

    /// Jobs handed out and not yet settled.
    #[napi]
    pub fn in_flight(&self) -> u32 {
        self.inner.get().map(|c| c.in_flight()).unwrap_or(0) as u32
    }

    /// The XREADGROUP consumer name (null before start).
    #[napi]
    pub fn consumer_name(&self) -> Option<String> {
        self.inner.get().map(|c| c.consumer_name().to_string())
    }
}
