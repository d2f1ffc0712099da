//! `chasquimq._native.Producer`: type conversion over `chasquimq::Producer`.

use crate::aio::future_into_py;
use crate::errors::to_py;
use chasquimq::{AddOptions, Backoff, BackoffKind, Error, NewJob, ProducerConfig, RetryOverride};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::sync::Arc;

#[pyclass(frozen, module = "chasquimq._native")]
pub struct Producer {
    inner: Arc<chasquimq::Producer>,
}

pub fn bad(field: &str, msg: &str) -> PyErr {
    to_py(Error::invalid_argument(field, msg))
}

pub fn opt<'py, T: FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
    field: &str,
) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => v.extract::<T>().map(Some).map_err(|e| {
            let e: PyErr = e.into();
            // An int that does not fit (e.g. delay_ms=10**30) is a bad value, not a bad type.
            if v.is_instance_of::<pyo3::types::PyInt>()
                && e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py())
            {
                return bad(field, "is out of range");
            }
            to_py(Error::InvalidType {
                field: field.to_string(),
                message: format!("has the wrong type for {key}"),
            })
        }),
    }
}

use pyo3::conversion::FromPyObjectOwned;

/// Parses the native backoff dict `{kind, delay_ms, max_delay_ms?, multiplier?, jitter_ms?}`.
pub fn parse_backoff(d: &Bound<'_, PyDict>, field: &str) -> PyResult<Backoff> {
    let kind: String = opt(d, "kind", &format!("{field}.kind"))?
        .ok_or_else(|| bad(field, "needs a kind (\"fixed\" or \"exponential\")"))?;
    let kind = BackoffKind::parse(&kind).map_err(to_py)?;
    let delay_ms: u64 = opt(d, "delay_ms", &format!("{field}.delay_ms"))?
        .ok_or_else(|| bad(field, "needs delay_ms"))?;
    let multiplier: Option<f64> = opt(d, "multiplier", &format!("{field}.multiplier"))?;
    if let Some(m) = multiplier {
        if !m.is_finite() || m < 1.0 {
            return Err(bad(
                &format!("{field}.multiplier"),
                "must be a finite number >= 1",
            ));
        }
    }
    Ok(Backoff {
        kind,
        delay_ms,
        max_delay_ms: opt(d, "max_delay_ms", &format!("{field}.max_delay_ms"))?,
        multiplier,
        jitter_ms: opt(d, "jitter_ms", &format!("{field}.jitter_ms"))?,
    })
}

/// Parses `{delay_ms?, attempts?, backoff?, job_id?, timeout_ms?}` into engine options.
pub fn parse_options(options: Option<&Bound<'_, PyDict>>) -> PyResult<AddOptions> {
    let Some(d) = options else {
        return Ok(AddOptions::default());
    };
    let delay_ms: Option<u64> = opt(d, "delay_ms", "delay_ms")?;
    let attempts: Option<u32> = opt(d, "attempts", "attempts")?;
    if attempts == Some(0) {
        return Err(bad("attempts", "must be a positive integer"));
    }
    let backoff = match d.get_item("backoff")? {
        Some(b) if !b.is_none() => Some(parse_backoff(
            b.cast::<PyDict>()
                .map_err(|_| bad("backoff", "must be a dict"))?,
            "backoff",
        )?),
        _ => None,
    };
    let timeout_ms: Option<u64> = opt(d, "timeout_ms", "timeout_ms")?;
    if timeout_ms == Some(0) {
        return Err(bad("timeout_ms", "must be a positive integer"));
    }
    let retry = if attempts.is_some() || backoff.is_some() || timeout_ms.is_some() {
        Some(RetryOverride {
            max_attempts: attempts,
            backoff,
            timeout_ms,
        })
    } else {
        None
    };
    Ok(AddOptions {
        delay_ms,
        retry,
        job_id: opt(d, "job_id", "job_id")?,
    })
}

/// Parses add_bulk entries: (name, payload) or (name, payload, options).
fn parse_bulk(entries: &Bound<'_, PyList>) -> PyResult<Vec<NewJob>> {
    let mut jobs = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let t = e.cast::<PyTuple>().map_err(|_| {
            bad(
                &format!("jobs[{i}]"),
                "must be a (name, payload[, options]) tuple",
            )
        })?;
        let name: String = t.get_item(0)?.extract()?;
        let payload = t.get_item(1)?;
        let payload = payload
            .cast::<PyBytes>()
            .map_err(|_| bad(&format!("jobs[{i}].payload"), "must be bytes"))?;
        let options = if t.len() > 2 {
            let o = t.get_item(2)?;
            if o.is_none() {
                AddOptions::default()
            } else {
                parse_options(Some(
                    o.cast::<PyDict>()
                        .map_err(|_| bad(&format!("jobs[{i}].options"), "must be a dict"))?,
                ))?
            }
        } else {
            AddOptions::default()
        };
        jobs.push(NewJob {
            name,
            payload: payload.as_bytes().to_vec(),
            options,
        });
    }
    Ok(jobs)
}

#[pymethods]
impl Producer {
    #[new]
    #[pyo3(signature = (redis_url, queue_name, *, pool_size = 2, max_stream_len = 1_000_000, max_delay_secs = 2_592_000, command_timeout_ms = 10_000))]
    fn new(
        redis_url: &str,
        queue_name: &str,
        pool_size: usize,
        max_stream_len: u64,
        max_delay_secs: u64,
        command_timeout_ms: u64,
    ) -> PyResult<Self> {
        chasquimq::runtime::ensure_not_forked().map_err(to_py)?;
        let cfg = ProducerConfig {
            queue: queue_name.to_string(),
            pool_size,
            max_stream_len,
            max_delay_secs,
            command_timeout_ms,
        };
        let inner = chasquimq::Producer::new(redis_url, cfg).map_err(to_py)?;
        Ok(Producer {
            inner: Arc::new(inner),
        })
    }

    #[pyo3(signature = (name, payload, options = None))]
    fn add<'py>(
        &self,
        py: Python<'py>,
        name: String,
        payload: &Bound<'py, PyBytes>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        chasquimq::runtime::ensure_not_forked().map_err(to_py)?;
        let job = NewJob {
            name,
            payload: payload.as_bytes().to_vec(),
            options: parse_options(options)?,
        };
        let p = self.inner.clone();
        future_into_py(py, async move {
            let a = p.add(job).await.map_err(to_py)?;
            Ok((a.id, a.created_at_ms))
        })
    }

    /// `add`, resolved through `completions` under request id `rid` (see
    /// `completions.rs`): no engine thread takes the GIL.
    #[pyo3(signature = (completions, rid, name, payload, options = None))]
    fn add_submit(
        &self,
        completions: &Bound<'_, crate::completions::Completions>,
        rid: u64,
        name: String,
        payload: &Bound<'_, PyBytes>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let rt = chasquimq::runtime::runtime().map_err(to_py)?;
        let job = NewJob {
            name,
            payload: payload.as_bytes().to_vec(),
            options: parse_options(options)?,
        };
        let (p, tx) = (self.inner.clone(), completions.get().sender());
        rt.spawn(async move {
            let outcome = match p.add(job).await {
                Ok(a) => crate::completions::Outcome::Added(a.id, a.created_at_ms),
                Err(e) => crate::completions::Outcome::Failed(e),
            };
            tx.send(rid, outcome);
        });
        Ok(())
    }

    /// entries: list of (name, payload) or (name, payload, options).
    fn add_bulk<'py>(
        &self,
        py: Python<'py>,
        entries: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyAny>> {
        chasquimq::runtime::ensure_not_forked().map_err(to_py)?;
        let jobs = parse_bulk(entries)?;
        let p = self.inner.clone();
        future_into_py(py, async move {
            let added = p.add_bulk(jobs).await.map_err(to_py)?;
            Ok(added
                .into_iter()
                .map(|a| (a.id, a.created_at_ms))
                .collect::<Vec<_>>())
        })
    }

    /// `add_bulk`, resolved through `completions` (see `add_submit`).
    fn add_bulk_submit(
        &self,
        completions: &Bound<'_, crate::completions::Completions>,
        rid: u64,
        entries: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let rt = chasquimq::runtime::runtime().map_err(to_py)?;
        let jobs = parse_bulk(entries)?;
        let (p, tx) = (self.inner.clone(), completions.get().sender());
        rt.spawn(async move {
            let outcome = match p.add_bulk(jobs).await {
                Ok(v) => crate::completions::Outcome::AddedMany(
                    v.into_iter().map(|a| (a.id, a.created_at_ms)).collect(),
                ),
                Err(e) => crate::completions::Outcome::Failed(e),
            };
            tx.send(rid, outcome);
        });
        Ok(())
    }

    fn peek_dlq<'py>(&self, py: Python<'py>, limit: u64) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        future_into_py(py, async move {
            let entries = p.peek_dlq(limit).await.map_err(to_py)?;
            Ok(DlqList(entries))
        })
    }

    fn replay_dlq<'py>(&self, py: Python<'py>, limit: u64) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        future_into_py(py, async move { p.replay_dlq(limit).await.map_err(to_py) })
    }

    /// Stored results (msgpack bytes or None), aligned with `job_ids`.
    fn get_results<'py>(
        &self,
        py: Python<'py>,
        job_ids: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        future_into_py(py, async move {
            let values = p.get_results(&job_ids).await.map_err(to_py)?;
            Ok(MaybeBytesList(values))
        })
    }

    /// True when the delayed job was still waiting and is now removed.
    fn cancel_delayed<'py>(&self, py: Python<'py>, job_id: String) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        future_into_py(
            py,
            async move { p.cancel_delayed(&job_id).await.map_err(to_py) },
        )
    }

    /// spec: {key?, name, payload, pattern, limit?, start_after_ms?, end_before_ms?,
    /// missed_fires?, attempts?, backoff?}; returns the spec key.
    fn upsert_repeatable<'py>(
        &self,
        py: Python<'py>,
        spec: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = crate::repeat::parse_upsert(spec)?;
        let p = self.inner.clone();
        future_into_py(
            py,
            async move { p.upsert_repeatable(req).await.map_err(to_py) },
        )
    }

    /// Specs ordered by next fire: dicts {key, job_name, pattern, next_fire_ms, limit,
    /// start_after_ms, end_before_ms, missed_fires}.
    fn repeatables<'py>(&self, py: Python<'py>, limit: u64) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        future_into_py(py, async move {
            let metas = p.repeatables(limit).await.map_err(to_py)?;
            Ok(crate::repeat::MetaList(metas))
        })
    }

    fn remove_repeatable<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        future_into_py(
            py,
            async move { p.remove_repeatable(&key).await.map_err(to_py) },
        )
    }

    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let p = self.inner.clone();
        future_into_py(py, async move {
            p.close().await;
            Ok(())
        })
    }
}

struct MaybeBytesList(Vec<Option<bytes::Bytes>>);

impl<'py> IntoPyObject<'py> for MaybeBytesList {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for v in self.0 {
            match v {
                Some(b) => list.append(PyBytes::new(py, &b))?,
                None => list.append(py.None())?,
            }
        }
        Ok(list)
    }
}

struct DlqList(Vec<chasquimq::DlqEntry>);

impl<'py> IntoPyObject<'py> for DlqList {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for e in self.0 {
            let d = PyDict::new(py);
            d.set_item("dlq_id", e.dlq_id)?;
            d.set_item("source_id", e.source_id)?;
            d.set_item("reason", e.reason)?;
            d.set_item("detail", e.detail)?;
            d.set_item("name", e.name)?;
            d.set_item("payload", PyBytes::new(py, &e.payload))?;
            list.append(d)?;
        }
        Ok(list)
    }
}
