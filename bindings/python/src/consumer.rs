//! `chasquimq._native.Consumer`: type conversion over `chasquimq::Consumer`.
//! Jobs cross to Python one batch per awaitable; outcomes come back one
//! list per event-loop turn.

use crate::aio::future_into_py;
use crate::errors::to_py;
use chasquimq::{ConsumerConfig, Delivery, Error, FailKind, Outcome};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::sync::{Arc, OnceLock};

#[pyclass(frozen, module = "chasquimq._native")]
pub struct Consumer {
    url: String,
    cfg: ConsumerConfig,
    inner: Arc<OnceLock<Arc<chasquimq::Consumer>>>,
    /// Cancelled by stop(): ends a start that waits for Redis.
    start_cancel: chasquimq::CancellationToken,
}

impl Consumer {
    fn running(&self) -> PyResult<Arc<chasquimq::Consumer>> {
        self.inner.get().cloned().ok_or_else(|| {
            to_py(Error::Closed(
                "the consumer was not started; await start() first".into(),
            ))
        })
    }
}

/// Outcome kinds in `settle` tuples.
const OK: u8 = 0;
const FAILED: u8 = 1;
const UNRECOVERABLE: u8 = 2;
const ABANDONED: u8 = 3;
const DECODE_FAILED: u8 = 4;
const TIMEOUT: u8 = 5;

#[pymethods]
impl Consumer {
    #[new]
    #[pyo3(signature = (
        redis_url, queue_name, *, concurrency = 100, max_attempts = 25, group = "default",
        consumer_id = None, read_block_ms = 5_000, read_count = None, claim_min_idle_ms = 30_000,
        max_payload_bytes = 1_048_576, max_stream_len = 1_000_000, dlq_max_stream_len = 100_000,
        events_enabled = true, delayed_enabled = true, run_scheduler = true, scheduler_tick_ms = 1_000,
        store_results = false, result_ttl_ms = 3_600_000, promoter_tick_ms = 100,
        job_timeout_ms = None, start_timeout_ms = 30_000
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        redis_url: &str,
        queue_name: &str,
        concurrency: usize,
        max_attempts: u32,
        group: &str,
        consumer_id: Option<String>,
        read_block_ms: u64,
        read_count: Option<usize>,
        claim_min_idle_ms: u64,
        max_payload_bytes: usize,
        max_stream_len: u64,
        dlq_max_stream_len: u64,
        events_enabled: bool,
        delayed_enabled: bool,
        run_scheduler: bool,
        scheduler_tick_ms: u64,
        store_results: bool,
        result_ttl_ms: u64,
        promoter_tick_ms: u64,
        job_timeout_ms: Option<u64>,
        start_timeout_ms: u64,
    ) -> PyResult<Self> {
        chasquimq::runtime::ensure_not_forked().map_err(to_py)?;
        chasquimq::conn::parse_url(redis_url).map_err(to_py)?;
        let mut cfg = ConsumerConfig::new(queue_name);
        cfg.concurrency = concurrency;
        cfg.max_attempts = max_attempts;
        cfg.group = group.to_string();
        cfg.consumer_id = consumer_id;
        cfg.read_block_ms = read_block_ms;
        cfg.read_count = read_count;
        cfg.claim_min_idle_ms = claim_min_idle_ms;
        cfg.max_payload_bytes = max_payload_bytes;
        cfg.max_stream_len = max_stream_len;
        cfg.dlq_max_stream_len = dlq_max_stream_len;
        cfg.events_enabled = events_enabled;
        cfg.delayed_enabled = delayed_enabled;
        cfg.run_scheduler = run_scheduler;
        cfg.scheduler_tick_ms = scheduler_tick_ms;
        cfg.store_results = store_results;
        cfg.result_ttl_ms = result_ttl_ms;
        cfg.promoter_tick_ms = promoter_tick_ms;
        cfg.job_timeout_ms = job_timeout_ms;
        cfg.start_timeout_ms = start_timeout_ms;
        Ok(Consumer {
            url: redis_url.to_string(),
            cfg,
            inner: Arc::new(OnceLock::new()),
            start_cancel: chasquimq::CancellationToken::new(),
        })
    }

    /// Connects and starts the engine tasks.
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        chasquimq::runtime::ensure_not_forked().map_err(to_py)?;
        if self.inner.get().is_some() {
            return Err(to_py(Error::Closed("start() was already called".into())));
        }
        let (url, cfg, slot) = (self.url.clone(), self.cfg.clone(), self.inner.clone());
        let cancel = self.start_cancel.clone();
        future_into_py(py, async move {
            let c = chasquimq::Consumer::start_until(&url, cfg, cancel)
                .await
                .map_err(to_py)?;
            if slot.set(Arc::new(c)).is_err() {
                return Err(to_py(Error::Closed("start() was already called".into())));
            }
            Ok(())
        })
    }

    /// The next batch of (token, job_id, name, payload, attempt, created_at_ms,
    /// timeout_ms|None); None once stopped and drained.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.running()?;
        future_into_py(py, async move { Ok(Batch(c.next_batch().await)) })
    }

    /// Every job waiting now, without waiting: a list (empty = nothing now,
    /// and the wakeup socket will be written when something arrives), or
    /// None once stopped and drained.
    fn poll_batch(&self) -> PyResult<Batch> {
        Ok(Batch(self.running()?.poll_batch()))
    }

    /// A socket file descriptor (the caller owns it) that becomes readable
    /// when poll_batch returned an empty list and jobs (or the end) arrived
    /// since. Lets the event loop sleep in its own selector: no engine
    /// thread ever waits for the GIL.
    fn wakeup_fd(&self) -> PyResult<i32> {
        let c = self.running()?;
        let (engine_end, python_fd) = crate::completions::wake_pair()?;
        c.set_waker(Arc::new(move || crate::completions::poke(&engine_end)));
        Ok(python_fd)
    }

    /// outcomes: list of (token, kind, result_bytes|None, reason|None, duration_us);
    /// kind 0 = completed, 1 = failed, 2 = unrecoverable, 3 = abandoned, 4 = payload not
    /// decodable, 5 = past its time limit (the engine writes the reason).
    fn settle(&self, outcomes: &Bound<'_, PyList>) -> PyResult<()> {
        let c = self.running()?;
        let mut out = Vec::with_capacity(outcomes.len());
        for item in outcomes.iter() {
            let t = item.cast::<PyTuple>()?;
            let token: u64 = t.get_item(0)?.extract()?;
            let kind: u8 = t.get_item(1)?.extract()?;
            let duration_us: u64 = t.get_item(4)?.extract()?;
            out.push(match kind {
                OK => {
                    let r = t.get_item(2)?;
                    let result = if r.is_none() {
                        None
                    } else {
                        Some(bytes::Bytes::copy_from_slice(
                            r.cast::<PyBytes>()?.as_bytes(),
                        ))
                    };
                    Outcome::Completed {
                        token,
                        result,
                        duration_us,
                    }
                }
                FAILED | UNRECOVERABLE | DECODE_FAILED | TIMEOUT => {
                    let reason: String = t
                        .get_item(3)?
                        .extract::<Option<String>>()?
                        .unwrap_or_default();
                    let kind = match kind {
                        FAILED => FailKind::Retryable,
                        UNRECOVERABLE => FailKind::Unrecoverable,
                        TIMEOUT => FailKind::Timeout,
                        _ => FailKind::DecodeFailed,
                    };
                    Outcome::Failed {
                        token,
                        reason,
                        kind,
                        duration_us,
                    }
                }
                ABANDONED => Outcome::Abandoned { token },
                other => {
                    return Err(to_py(Error::invalid_argument(
                        "outcomes",
                        format!("unknown outcome kind {other}"),
                    )))
                }
            });
        }
        c.settle(out);
        Ok(())
    }

    /// Stops reading; next_batch drains what was read, then returns None.
    fn stop(&self) {
        self.start_cancel.cancel();
        if let Some(c) = self.inner.get() {
            c.stop();
        }
    }

    /// Flushes settled outcomes, stops the engine tasks, closes connections.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.get().cloned();
        future_into_py(py, async move {
            if let Some(c) = c {
                c.close().await;
            }
            Ok(())
        })
    }

    /// Jobs handed out and not yet settled.
    fn in_flight(&self) -> usize {
        self.inner.get().map(|c| c.in_flight()).unwrap_or(0)
    }

    /// The XREADGROUP consumer name (None before start).
    fn consumer_name(&self) -> Option<String> {
        self.inner.get().map(|c| c.consumer_name().to_string())
    }
}

struct Batch(Option<Vec<Delivery>>);

impl<'py> IntoPyObject<'py> for Batch {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let Some(v) = self.0 else {
            return Ok(py.None().into_bound(py));
        };
        let list = PyList::empty(py);
        for d in v {
            let t = (
                d.token,
                d.job_id,
                d.name,
                PyBytes::new(py, &d.payload),
                d.attempt,
                d.created_at_ms,
                d.timeout_ms,
            )
                .into_pyobject(py)?;
            list.append(t)?;
        }
        Ok(list.into_any())
    }
}
