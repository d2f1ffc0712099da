//! Conversions for repeatable specs and the native `Scheduler`.

use crate::aio::future_into_py;
use crate::errors::to_py;
use crate::producer::{bad, opt, parse_backoff};
use chasquimq::repeat::{MissedFires, Pattern};
use chasquimq::scheduler::{RepeatableMeta, SchedulerConfig, StandaloneScheduler, UpsertRequest};
use chasquimq::RetryOverride;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::sync::Arc;
use std::time::Duration;

fn pattern_from(d: &Bound<'_, PyDict>) -> PyResult<Pattern> {
    let kind: String = opt(d, "kind", "repeat.kind")?
        .ok_or_else(|| bad("repeat", "needs a kind (\"cron\" or \"every\")"))?;
    let p = match kind.as_str() {
        "cron" => {
            let expr: String = opt(d, "expression", "repeat.expression")?
                .ok_or_else(|| bad("repeat.expression", "is required for a cron pattern"))?;
            Pattern::cron(expr, opt(d, "tz", "repeat.tz")?)
        }
        "every" => {
            let ms: u64 = opt(d, "interval_ms", "repeat.interval_ms")?
                .ok_or_else(|| bad("repeat.interval_ms", "is required for an every pattern"))?;
            Pattern::every(ms)
        }
        other => {
            return Err(bad(
                "repeat.kind",
                &format!("unknown kind {other:?}; use \"cron\" or \"every\""),
            ))
        }
    };
    p.map_err(|e| to_py(e.into()))
}

fn missed_from(d: Option<Bound<'_, PyAny>>) -> PyResult<MissedFires> {
    let Some(d) = d.filter(|d| !d.is_none()) else {
        return Ok(MissedFires::Skip);
    };
    let d = d
        .cast::<PyDict>()
        .map_err(|_| bad("missed_fires", "must be a MissedFiresPolicy or a dict"))?;
    let kind: String = opt(d, "kind", "missed_fires.kind")?.unwrap_or_else(|| "skip".into());
    match kind.as_str() {
        "skip" => Ok(MissedFires::Skip),
        "fire-once" => Ok(MissedFires::FireOnce),
        "fire-all" => {
            let n: u32 = opt(d, "max_catchup", "missed_fires.max_catchup")?
                .ok_or_else(|| bad("missed_fires.max_catchup", "is required for fire-all"))?;
            MissedFires::fire_all(n).map_err(|e| to_py(e.into()))
        }
        other => Err(bad(
            "missed_fires.kind",
            &format!("unknown kind {other:?}; use \"skip\", \"fire-once\" or \"fire-all\""),
        )),
    }
}

pub fn parse_upsert(d: &Bound<'_, PyDict>) -> PyResult<UpsertRequest> {
    let pattern = d
        .get_item("pattern")?
        .ok_or_else(|| bad("repeat", "is required"))?;
    let pattern = pattern_from(
        pattern
            .cast::<PyDict>()
            .map_err(|_| bad("repeat", "must be a RepeatPattern or a dict"))?,
    )?;
    let payload = d
        .get_item("payload")?
        .ok_or_else(|| bad("data", "is required"))?;
    let payload = payload
        .cast::<PyBytes>()
        .map_err(|_| bad("data", "payload must be bytes"))?
        .as_bytes()
        .to_vec();
    let attempts: Option<u32> = opt(d, "attempts", "attempts")?;
    let backoff = match d.get_item("backoff")? {
        Some(b) if !b.is_none() => Some(parse_backoff(
            b.cast::<PyDict>()
                .map_err(|_| bad("backoff", "must be a dict"))?,
            "backoff",
        )?),
        _ => None,
    };
    Ok(UpsertRequest {
        key: opt(d, "key", "job_id")?,
        job_name: opt(d, "name", "name")?.unwrap_or_default(),
        pattern,
        payload,
        limit: opt(d, "limit", "limit")?,
        start_after_ms: opt(d, "start_after_ms", "start_after_ms")?,
        end_before_ms: opt(d, "end_before_ms", "end_before_ms")?,
        missed_fires: missed_from(d.get_item("missed_fires")?)?,
        retry: if attempts.is_some() || backoff.is_some() {
            Some(RetryOverride {
                max_attempts: attempts,
                backoff,
                timeout_ms: None,
            })
        } else {
            None
        },
    })
}

pub struct MetaList(pub Vec<RepeatableMeta>);

impl<'py> IntoPyObject<'py> for MetaList {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for m in self.0 {
            let d = PyDict::new(py);
            d.set_item("key", m.key)?;
            d.set_item("job_name", m.job_name)?;
            let p = PyDict::new(py);
            match m.pattern {
                Pattern::Cron { expression, tz } => {
                    p.set_item("kind", "cron")?;
                    p.set_item("expression", expression)?;
                    p.set_item("tz", tz)?;
                }
                Pattern::Every { interval_ms } => {
                    p.set_item("kind", "every")?;
                    p.set_item("interval_ms", interval_ms)?;
                }
            }
            d.set_item("pattern", p)?;
            d.set_item("next_fire_ms", m.next_fire_ms)?;
            d.set_item("limit", m.limit)?;
            d.set_item("start_after_ms", m.start_after_ms)?;
            d.set_item("end_before_ms", m.end_before_ms)?;
            let mf = PyDict::new(py);
            match m.missed_fires {
                MissedFires::Skip => mf.set_item("kind", "skip")?,
                MissedFires::FireOnce => mf.set_item("kind", "fire-once")?,
                MissedFires::FireAll { max_catchup } => {
                    mf.set_item("kind", "fire-all")?;
                    mf.set_item("max_catchup", max_catchup)?;
                }
            }
            d.set_item("missed_fires", mf)?;
            list.append(d)?;
        }
        Ok(list)
    }
}

/// A repeatable-job scheduler without a worker.
#[pyclass(frozen, module = "chasquimq._native")]
pub struct Scheduler {
    url: String,
    queue: String,
    cfg: SchedulerConfig,
    inner: Arc<tokio::sync::OnceCell<Arc<StandaloneScheduler>>>,
}

impl Scheduler {
    async fn get(
        url: String,
        queue: String,
        cfg: SchedulerConfig,
        cell: Arc<tokio::sync::OnceCell<Arc<StandaloneScheduler>>>,
    ) -> PyResult<Arc<StandaloneScheduler>> {
        cell.get_or_try_init(|| async {
            StandaloneScheduler::connect(&url, &queue, cfg)
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
        .map_err(to_py)
    }
}

#[pymethods]
impl Scheduler {
    #[new]
    #[pyo3(signature = (redis_url, queue_name, *, tick_interval_ms = 1_000, batch = 100, max_stream_len = 1_000_000, lock_ttl_secs = 5, holder_id = None))]
    fn new(
        redis_url: &str,
        queue_name: &str,
        tick_interval_ms: u64,
        batch: u64,
        max_stream_len: u64,
        lock_ttl_secs: u64,
        holder_id: Option<String>,
    ) -> PyResult<Self> {
        chasquimq::runtime::ensure_not_forked().map_err(to_py)?;
        chasquimq::conn::parse_url(redis_url).map_err(to_py)?;
        chasquimq::keys::validate_queue_name("queue_name", queue_name).map_err(to_py)?;
        if tick_interval_ms == 0 || batch == 0 || lock_ttl_secs == 0 {
            return Err(bad(
                "tick_interval_ms",
                "tick_interval_ms, batch and lock_ttl_secs must be positive",
            ));
        }
        let holder = holder_id
            .unwrap_or_else(|| format!("sched-{}-{}", std::process::id(), ulid::Ulid::new()));
        Ok(Scheduler {
            url: redis_url.to_string(),
            queue: queue_name.to_string(),
            cfg: SchedulerConfig {
                holder,
                tick: Duration::from_millis(tick_interval_ms),
                batch,
                max_stream_len,
                lock_ttl_secs,
            },
            inner: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// One tick: returns (is_leader, jobs fired).
    fn tick<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (u, q, c, cell) = (
            self.url.clone(),
            self.queue.clone(),
            self.cfg.clone(),
            self.inner.clone(),
        );
        future_into_py(py, async move {
            let s = Scheduler::get(u, q, c, cell).await?;
            let r = s.tick().await.map_err(to_py)?;
            Ok((r.leader, r.fired))
        })
    }

    /// Runs until close() (or stop()).
    fn run<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (u, q, c, cell) = (
            self.url.clone(),
            self.queue.clone(),
            self.cfg.clone(),
            self.inner.clone(),
        );
        future_into_py(py, async move {
            let s = Scheduler::get(u, q, c, cell).await?;
            s.run().await;
            Ok(())
        })
    }

    fn stop(&self) {
        if let Some(s) = self.inner.get() {
            s.stop();
        }
    }

    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cell = self.inner.clone();
        future_into_py(py, async move {
            if let Some(s) = cell.get() {
                s.close().await;
            }
            Ok(())
        })
    }
}
