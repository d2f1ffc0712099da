//! `Producer`: type conversion over `chasquimq::Producer`.

use crate::bridge::{opt_u32, opt_u64, promise, promise_value, to_u64};
use crate::errors::{bad, to_napi};
use chasquimq::{Backoff, BackoffKind, NewJob, ProducerConfig, RetryOverride};
use napi::bindgen_prelude::{Buffer, Object, Uint8Array};
use napi::Env;
use napi_derive::napi;
use std::sync::Arc;

/// Producer settings; unset fields take the engine's defaults.
#[napi(object)]
pub struct ProducerOptions {
    pub pool_size: Option<u32>,
    pub max_stream_len: Option<f64>,
    pub max_delay_secs: Option<f64>,
    pub command_timeout_ms: Option<f64>,
}

/// A retry backoff as the engine takes it.
#[napi(object)]
pub struct BackoffOptions {
    /// "fixed" or "exponential".
    pub kind: String,
    pub delay_ms: f64,
    pub max_delay_ms: Option<f64>,
    pub multiplier: Option<f64>,
    pub jitter_ms: Option<f64>,
}

/// Per-job options of an add.
#[napi(object)]
pub struct AddOptions {
    pub delay_ms: Option<f64>,
    pub attempts: Option<f64>,
    pub backoff: Option<BackoffOptions>,
    pub job_id: Option<String>,
    /// Time limit of one run, in ms.
    pub timeout_ms: Option<f64>,
}

/// One entry of `addBulk`.
#[napi(object)]
pub struct BulkEntry {
    pub name: String,
    pub payload: Uint8Array,
    pub options: Option<AddOptions>,
}

/// One dead-letter entry.
#[napi(object)]
pub struct DlqEntry {
    pub dlq_id: String,
    pub source_id: String,
    pub reason: String,
    pub detail: Option<String>,
    pub name: String,
    /// The stored envelope bytes (`d`).
    pub payload: Buffer,
}

pub fn parse_backoff(b: BackoffOptions, field: &str) -> napi::Result<Backoff> {
    let kind = BackoffKind::parse(&b.kind).map_err(to_napi)?;
    if let Some(m) = b.multiplier {
        if !m.is_finite() || m < 1.0 {
            return Err(bad(
                &format!("{field}.multiplier"),
                "must be a finite number >= 1",
            ));
        }
    }
    Ok(Backoff {
        kind,
        delay_ms: to_u64(&format!("{field}.delayMs"), b.delay_ms)?,
        max_delay_ms: opt_u64(&format!("{field}.maxDelayMs"), b.max_delay_ms)?,
        multiplier: b.multiplier,
        jitter_ms: opt_u64(&format!("{field}.jitterMs"), b.jitter_ms)?,
    })
}

pub fn retry_override(
    attempts: Option<f64>,
    backoff: Option<BackoffOptions>,
    timeout_ms: Option<f64>,
) -> napi::Result<Option<RetryOverride>> {
    let attempts = opt_u32("attempts", attempts)?;
    if attempts == Some(0) {
        return Err(bad("attempts", "must be a positive integer"));
    }
    let backoff = backoff.map(|b| parse_backoff(b, "backoff")).transpose()?;
    let timeout_ms = opt_u64("timeoutMs", timeout_ms)?;
    if timeout_ms == Some(0) {
        return Err(bad("timeoutMs", "must be a positive integer"));
    }
    Ok(
        if attempts.is_some() || backoff.is_some() || timeout_ms.is_some() {
            Some(RetryOverride {
                max_attempts: attempts,
                backoff,
                timeout_ms,
            })
        } else {
            None
        },
    )
}

fn parse_options(o: Option<AddOptions>) -> napi::Result<chasquimq::AddOptions> {
    let Some(o) = o else {
        return Ok(chasquimq::AddOptions::default());
    };
    Ok(chasquimq::AddOptions {
        delay_ms: opt_u64("delayMs", o.delay_ms)?,
        retry: retry_override(o.attempts, o.backoff, o.timeout_ms)?,
        job_id: o.job_id,
    })
}

/// The engine's producer for one queue; connects lazily on first use.
#[napi]
pub struct Producer {
    inner: Arc<chasquimq::Producer>,
}

#[napi]
impl Producer {
    #[napi(constructor)]
    pub fn new(
        redis_url: String,
        queue_name: String,
        options: Option<ProducerOptions>,
    ) -> napi::Result<Self> {
        chasquimq::runtime::ensure_not_forked().map_err(to_napi)?;
        let mut cfg = ProducerConfig::new(queue_name);
        if let Some(o) = options {
            if let Some(n) = o.pool_size {
                cfg.pool_size = n as usize;
            }
            if let Some(n) = opt_u64("maxStreamLen", o.max_stream_len)? {
                cfg.max_stream_len = n;
            }
            if let Some(n) = opt_u64("maxDelaySecs", o.max_delay_secs)? {
                cfg.max_delay_secs = n;
            }
            if let Some(n) = opt_u64("commandTimeoutMs", o.command_timeout_ms)? {
                cfg.command_timeout_ms = n;
            }
        }
        let inner = chasquimq::Producer::new(&redis_url, cfg).map_err(to_napi)?;
        Ok(Producer {
            inner: Arc::new(inner),
        })
    }

    /// Adds one job; resolves to [job id, createdAtMs].
    #[napi(ts_return_type = "Promise<[string, number]>")]
    pub fn add<'env>(
        &self,
        env: &'env Env,
        name: String,
        payload: Uint8Array,
        options: Option<AddOptions>,
    ) -> napi::Result<Object<'env>> {
        chasquimq::runtime::ensure_not_forked().map_err(to_napi)?;
        let job = NewJob {
            name,
            payload: payload.to_vec(),
            options: parse_options(options)?,
        };
        let p = self.inner.clone();
        promise(env, async move { p.add(job).await }, |_, a| {
            Ok((a.id, a.created_at_ms as f64))
        })
    }

    /// Adds many jobs in one pipeline; resolves to [job id, createdAtMs] per entry.
    #[napi(ts_return_type = "Promise<Array<[string, number]>>")]
    pub fn add_bulk<'env>(
        &self,
        env: &'env Env,
        entries: Vec<BulkEntry>,
    ) -> napi::Result<Object<'env>> {
        chasquimq::runtime::ensure_not_forked().map_err(to_napi)?;
        let jobs = entries
            .into_iter()
            .map(|e| {
                Ok(NewJob {
                    name: e.name,
                    payload: e.payload.to_vec(),
                    options: parse_options(e.options)?,
                })
            })
            .collect::<napi::Result<Vec<_>>>()?;
        let p = self.inner.clone();
        promise(env, async move { p.add_bulk(jobs).await }, |_, added| {
            Ok(added
                .into_iter()
                .map(|a| (a.id, a.created_at_ms as f64))
                .collect::<Vec<_>>())
        })
    }

    /// True when the delayed job was still waiting and is now removed.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn cancel_delayed<'env>(
        &self,
        env: &'env Env,
        job_id: String,
    ) -> napi::Result<Object<'env>> {
        let p = self.inner.clone();
        promise_value(env, async move { p.cancel_delayed(&job_id).await })
    }

    /// Upserts a repeatable spec; resolves to the spec key.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn upsert_repeatable<'env>(
        &self,
        env: &'env Env,
        spec: crate::repeat::UpsertSpec,
    ) -> napi::Result<Object<'env>> {
        let req = crate::repeat::parse_upsert(spec)?;
        let p = self.inner.clone();
        promise_value(env, async move { p.upsert_repeatable(req).await })
    }

    /// Repeatable specs ordered by next fire.
    #[napi(ts_return_type = "Promise<Array<RepeatableMeta>>")]
    pub fn repeatables<'env>(&self, env: &'env Env, limit: f64) -> napi::Result<Object<'env>> {
        let limit = to_u64("limit", limit)?;
        let p = self.inner.clone();
        promise(
            env,
            async move { p.repeatables(limit).await },
            |_, metas| {
                Ok(metas
                    .into_iter()
                    .map(crate::repeat::meta_to_js)
                    .collect::<Vec<_>>())
            },
        )
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn remove_repeatable<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<Object<'env>> {
        let p = self.inner.clone();
        promise_value(env, async move { p.remove_repeatable(&key).await })
    }

    /// Stored results (msgpack bytes or null), aligned with `jobIds`.
    #[napi(ts_return_type = "Promise<Array<Buffer | null>>")]
    pub fn get_results<'env>(
        &self,
        env: &'env Env,
        job_ids: Vec<String>,
    ) -> napi::Result<Object<'env>> {
        let p = self.inner.clone();
        promise(
            env,
            async move { p.get_results(&job_ids).await },
            |_, values| {
                Ok(values
                    .into_iter()
                    .map(|v| v.map(|b| Buffer::from(b.to_vec())))
                    .collect::<Vec<_>>())
            },
        )
    }

    #[napi(ts_return_type = "Promise<Array<DlqEntry>>")]
    pub fn peek_dlq<'env>(&self, env: &'env Env, limit: f64) -> napi::Result<Object<'env>> {
        let limit = to_u64("limit", limit)?;
        let p = self.inner.clone();
        promise(env, async move { p.peek_dlq(limit).await }, |_, entries| {
            Ok(entries
                .into_iter()
                .map(|e| DlqEntry {
                    dlq_id: e.dlq_id,
                    source_id: e.source_id,
                    reason: e.reason,
                    detail: e.detail,
                    name: e.name,
                    payload: Buffer::from(e.payload),
                })
                .collect::<Vec<_>>())
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn replay_dlq<'env>(&self, env: &'env Env, limit: f64) -> napi::Result<Object<'env>> {
        let limit = to_u64("limit", limit)?;
        let p = self.inner.clone();
        promise(env, async move { p.replay_dlq(limit).await }, |_, n| {
            Ok(n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let p = self.inner.clone();
        promise(
            env,
            async move {
                p.close().await;
                Ok(())
            },
            |_, ()| Ok(()),
        )
    }
}
