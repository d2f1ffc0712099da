//! The consumer: reads the stream in batches, hands jobs to the language
//! layer in batches, and settles outcomes (acks, retries, DLQ routing,
//! events, results) in one script call per flush.
//!
//! Tasks per consumer: a reader (XREADGROUP), a writer (the settle
//! pipeline), a claimer (crash recovery + lease extension) and, when
//! enabled, the delayed-job promoter. Concurrency is a semaphore: the
//! reader takes one permit per entry it reads, a settle gives it back.

use crate::conn::{self, Features, Script};
use crate::envelope::{encode_member, Backoff, Envelope};
use crate::errors::{Error, Result};
use crate::keys::{validate_queue_name, Keys};
use crate::outbox::{DlqRec, OkRec, Outbox, RetryRec};
use crate::producer::{EVENTS_MAXLEN, MAX_NAME_BYTES};
use crate::promoter;
use crate::scripts;
use crate::streams::{self, Entry};
use bytes::Bytes;
use fred::prelude::*;
use fred::types::ClientUnblockFlag;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Cap of the default read count: one read of every free slot fills the
/// worker in one round trip (a fixed 64 under concurrency 100 split each
/// refill in two reads, each waiting behind the settle scripts), but a
/// read of many thousands would hold Redis for milliseconds.
pub const AUTO_READ_COUNT_MAX: usize = 1000;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub queue: String,
    pub group: String,
    pub consumer_id: Option<String>,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub read_block_ms: u64,
    /// Most entries one XREADGROUP takes; None: the concurrency, at most
    /// `AUTO_READ_COUNT_MAX`. A read never takes more than the free slots.
    pub read_count: Option<usize>,
    pub claim_min_idle_ms: u64,
    pub max_payload_bytes: usize,
    pub max_stream_len: u64,
    pub dlq_max_stream_len: u64,
    pub events_enabled: bool,
    pub delayed_enabled: bool,
    pub run_scheduler: bool,
    pub scheduler_tick_ms: u64,
    pub promoter_tick_ms: u64,
    pub store_results: bool,
    pub result_ttl_ms: u64,
    pub backoff: Backoff,
    /// Time limit of one run when the job sets none (None: no limit).
    pub job_timeout_ms: Option<u64>,
    /// How long `start` keeps retrying an unreachable Redis (backoff from
    /// `START_RETRY_FIRST` doubling to `START_RETRY_MAX`) before it fails;
    /// 0 tries once.
    pub start_timeout_ms: u64,
}

/// Whether a failed start is worth another attempt: Redis down,
/// restarting or slow. A rejected TLS certificate or handshake is a setup
/// problem that waiting does not fix, so it fails at once.
fn retry_at_start(e: &Error) -> bool {
    match e {
        Error::Connection(m) => !m.contains("TLS: "),
        other => other.is_transient(),
    }
}

/// First wait between two start attempts.
pub const START_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two start attempts.
pub const START_RETRY_MAX: Duration = Duration::from_secs(5);

impl ConsumerConfig {
    pub fn new(queue: impl Into<String>) -> Self {
        ConsumerConfig {
            queue: queue.into(),
            group: "default".into(),
            consumer_id: None,
            concurrency: 100,
            max_attempts: 25,
            read_block_ms: 5_000,
            read_count: None,
            claim_min_idle_ms: 30_000,
            max_payload_bytes: 1_048_576,
            max_stream_len: 1_000_000,
            dlq_max_stream_len: 100_000,
            events_enabled: true,
            delayed_enabled: true,
            run_scheduler: true,
            scheduler_tick_ms: 1_000,
            promoter_tick_ms: 100,
            store_results: false,
            result_ttl_ms: 3_600_000,
            backoff: Backoff::queue_default(),
            job_timeout_ms: None,
            start_timeout_ms: 30_000,
        }
    }

    /// The XREADGROUP COUNT in effect.
    pub fn effective_read_count(&self) -> usize {
        self.read_count
            .unwrap_or_else(|| self.concurrency.min(AUTO_READ_COUNT_MAX))
    }

    fn validate(&self) -> Result<()> {
        validate_queue_name("queue_name", &self.queue)?;
        let pos = |field: &str, v: u64| {
            if v == 0 {
                Err(Error::invalid_argument(field, "must be a positive integer"))
            } else {
                Ok(())
            }
        };
        pos("concurrency", self.concurrency as u64)?;
        pos("max_attempts", self.max_attempts as u64)?;
        if let Some(n) = self.read_count {
            pos("read_count", n as u64)?;
        }
        pos("claim_min_idle_ms", self.claim_min_idle_ms)?;
        pos("max_payload_bytes", self.max_payload_bytes as u64)?;
        pos("max_stream_len", self.max_stream_len)?;
        pos("dlq_max_stream_len", self.dlq_max_stream_len)?;
        pos("scheduler_tick_ms", self.scheduler_tick_ms)?;
        pos("promoter_tick_ms", self.promoter_tick_ms)?;
        pos("result_ttl_ms", self.result_ttl_ms)?;
        if let Some(t) = self.job_timeout_ms {
            pos("job_timeout_ms", t)?;
        }
        if self.concurrency > 100_000 {
            return Err(Error::invalid_argument(
                "concurrency",
                "must be at most 100000",
            ));
        }
        if self.group.trim().is_empty() {
            return Err(Error::invalid_argument("group", "must not be empty"));
        }
        Ok(())
    }
}

/// A job handed to the language layer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub token: u64,
    pub job_id: String,
    pub name: String,
    pub payload: Bytes,
    /// 1-indexed run number.
    pub attempt: u32,
    pub created_at_ms: u64,
    /// Time limit of this run: the job's own, else the worker's.
    pub timeout_ms: Option<u64>,
}

/// Why a job failed, which decides retry or DLQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// An ordinary error: retried until max_attempts.
    Retryable,
    /// The handler raised UnrecoverableError: DLQ `unrecoverable` now.
    Unrecoverable,
    /// The user payload is not msgpack: DLQ `decode_failed`, no handler ran.
    DecodeFailed,
    /// The run passed its time limit (`Delivery::timeout_ms`): retried like
    /// `Retryable`; the engine writes the reason.
    Timeout,
}

/// What the language layer reports for a delivered job.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler returned; `result` is msgpack (None stores nothing).
    Completed {
        token: u64,
        result: Option<Bytes>,
        duration_us: u64,
    },
    /// The handler raised, or the job could not be run.
    Failed {
        token: u64,
        reason: String,
        kind: FailKind,
        duration_us: u64,
    },
    /// The handler did not finish (shutdown deadline): leave the entry
    /// pending so crash recovery runs it again.
    Abandoned { token: u64 },
}

struct InFlight {
    stream_id: String,
    d: Bytes,
    job_id: String,
    name: String,
    /// Previous failed runs, counting crash redeliveries.
    prior: u32,
    max_attempts: u32,
    timeout_ms: Option<u64>,
    leased_at: Instant,
}

/// Settled outcomes that may wait for the writer, per unit of concurrency
/// (with a floor of `OUTBOX_MIN`): past that the reader stops reading, so a
/// stalled writer never lets jobs run unacked without bound.
const OUTBOX_PER_SLOT: usize = 16;
const OUTBOX_MIN: usize = 256;

/// Most outcomes in one settle script call; a bigger backlog (after the
/// writer was stalled) goes in several calls, so no call blocks Redis long.
const MAX_FLUSH: usize = 1_000;

/// How long `active`/`drained` events wait for outcomes to share a flush.
const EVENT_COALESCE: Duration = Duration::from_millis(2);

/// Longest failure reason kept in events and the DLQ.
const MAX_REASON_BYTES: usize = 1024;

/// The failure reason of a run past its time limit (events and DLQ detail).
pub fn timeout_reason(limit_ms: u64) -> String {
    format!("timeout: the handler ran longer than its {limit_ms} ms limit (timeout_ms)")
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

pub(crate) struct Inner {
    pub(crate) cfg: ConsumerConfig,
    pub(crate) keys: Keys,
    consumer_name: String,
    reader: Client,
    pub(crate) writer: Client,
    features: Features,
    slots: Arc<Semaphore>,
    inflight: Mutex<HashMap<u64, InFlight>>,
    /// Stream ids whose outcome is settled but not yet flushed (stream id ->
    /// last lease extension). Their leases are still extended and the
    /// claimer never takes them back: the writer's flush acks them.
    settling: Mutex<HashMap<String, Instant>>,
    next_token: AtomicU64,
    outbox: Mutex<Outbox>,
    outbox_notify: Notify,
    /// Woken after each flush that wrote outcomes (the reader may be
    /// waiting for room, see `wait_for_writer`).
    written: Notify,
    /// Stops reading and claiming.
    pub(crate) stop_reading: CancellationToken,
    /// Stops the writer after a final flush, and the background tasks.
    pub(crate) stop_all: CancellationToken,
    settle: Script,
    pub(crate) handoff: crate::handoff::Handoff,
    closed: AtomicBool,
    reader_exited: AtomicBool,
}

/// A running consumer. Cheap to share (`Arc`).
pub struct Consumer {
    inner: Arc<Inner>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    reader_tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    writer_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Consumer {
    /// Connects, creates the consumer group (at `0`, MKSTREAM) and starts
    /// the background tasks.
    pub async fn start(url: &str, cfg: ConsumerConfig) -> Result<Consumer> {
        Self::start_until(url, cfg, CancellationToken::new()).await
    }

    /// `start`, retrying an unreachable Redis for `cfg.start_timeout_ms`
    /// with backoff; `cancel` (a close during the wait) ends the retries
    /// with `Error::Closed`. Errors that waiting cannot fix (a bad
    /// password, a wrong-type key) fail at once.
    pub async fn start_until(
        url: &str,
        cfg: ConsumerConfig,
        cancel: CancellationToken,
    ) -> Result<Consumer> {
        cfg.validate()?;
        let keys = Keys::new(&cfg.queue);
        let began = tokio::time::Instant::now();
        let budget = Duration::from_millis(cfg.start_timeout_ms);
        let mut delay = START_RETRY_FIRST;
        let mut attempts = 1_u32;
        let (reader, writer, features) = loop {
            match Self::connect_parts(url, &cfg, &keys).await {
                Ok(parts) => break parts,
                Err(e) if retry_at_start(&e) && began.elapsed() < budget => {
                    // The last wait ends at the budget, so the worker keeps
                    // trying for all of start_timeout_ms.
                    let wait = delay.min(budget.saturating_sub(began.elapsed()));
                    tracing::warn!(
                        target: "chasquimq",
                        queue = %cfg.queue,
                        attempt = attempts,
                        "worker start: {e}; retrying in {} ms (start_timeout_ms {})",
                        wait.as_millis(),
                        cfg.start_timeout_ms
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => {
                            return Err(Error::Closed(
                                "the worker was closed while it waited for Redis to start".into(),
                            ));
                        }
                    }
                    delay = (delay * 2).min(START_RETRY_MAX);
                    attempts += 1;
                }
                Err(e) if retry_at_start(&e) && attempts > 1 => {
                    return Err(e.context(format!(
                        "the worker gave up starting after {attempts} attempts in {:.1} s \
                         (start_timeout_ms {}); start Redis or raise start_timeout_ms",
                        began.elapsed().as_secs_f64(),
                        cfg.start_timeout_ms
                    )));
                }
                Err(e) => return Err(e),
            }
        };
        let consumer_name = cfg
            .consumer_id
            .clone()
            .unwrap_or_else(|| format!("chasqui-{}-{}", std::process::id(), ulid::Ulid::new()));
        let inner = Arc::new(Inner {
            slots: Arc::new(Semaphore::new(cfg.concurrency)),
            keys,
            consumer_name,
            reader,
            writer,
            features,
            inflight: Mutex::new(HashMap::new()),
            settling: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            outbox: Mutex::new(Outbox::default()),
            outbox_notify: Notify::new(),
            written: Notify::new(),
            stop_reading: CancellationToken::new(),
            stop_all: CancellationToken::new(),
            settle: Script::new(scripts::SETTLE),
            handoff: crate::handoff::Handoff::new(2),
            closed: AtomicBool::new(false),
            reader_exited: AtomicBool::new(false),
            cfg,
        });
        let reader_tasks = vec![
            tokio::spawn(reader_loop(inner.clone())),
            tokio::spawn(claimer_loop(inner.clone())),
        ];
        let writer_task = tokio::spawn(writer_loop(inner.clone()));
        let mut tasks = vec![tokio::spawn(lease_loop(inner.clone()))];
        if inner.cfg.delayed_enabled {
            tasks.push(tokio::spawn(promoter::run(
                inner.writer.clone(),
                inner.keys.clone(),
                promoter::PromoterConfig {
                    holder: inner.consumer_name.clone(),
                    tick: Duration::from_millis(inner.cfg.promoter_tick_ms),
                    max_stream_len: inner.cfg.max_stream_len,
                    events_enabled: inner.cfg.events_enabled,
                },
                inner.stop_all.clone(),
            )));
        }
        if inner.cfg.run_scheduler {
            tasks.push(tokio::spawn(crate::scheduler::run(
                inner.writer.clone(),
                inner.keys.clone(),
                crate::scheduler::SchedulerConfig {
                    holder: inner.consumer_name.clone(),
                    tick: Duration::from_millis(inner.cfg.scheduler_tick_ms),
                    batch: 100,
                    max_stream_len: inner.cfg.max_stream_len,
                    lock_ttl_secs: promoter::LOCK_TTL_SECS as u64,
                },
                inner.stop_all.clone(),
            )));
        }
        Ok(Consumer {
            inner,
            tasks: tokio::sync::Mutex::new(tasks),
            reader_tasks: tokio::sync::Mutex::new(reader_tasks),
            writer_task: tokio::sync::Mutex::new(Some(writer_task)),
        })
    }

    /// The two connections, the server's features and the consumer group:
    /// everything start needs from Redis. On failure nothing stays open.
    async fn connect_parts(
        url: &str,
        cfg: &ConsumerConfig,
        keys: &Keys,
    ) -> Result<(Client, Client, Features)> {
        let reader = conn::connect(url, None).await?;
        let rest = async {
            let writer = conn::connect(url, Some(conn::COMMAND_TIMEOUT)).await?;
            let prepared = async {
                let features = conn::detect_features(&writer).await?;
                let created: std::result::Result<Value, _> = writer
                    .xgroup_create(keys.stream.as_str(), cfg.group.as_str(), "0", true)
                    .await;
                if let Err(e) = created {
                    if !e.details().starts_with("BUSYGROUP") {
                        return Err(Error::from(e));
                    }
                }
                Ok(features)
            }
            .await;
            match prepared {
                Ok(features) => Ok((writer, features)),
                Err(e) => {
                    let _ = writer.quit().await;
                    Err(e)
                }
            }
        }
        .await;
        match rest {
            Ok((writer, features)) => Ok((reader, writer, features)),
            Err(e) => {
                let _ = reader.quit().await;
                Err(e)
            }
        }
    }

    pub fn consumer_name(&self) -> &str {
        &self.inner.consumer_name
    }

    /// The next batch of jobs, merging every batch already waiting. `None`
    /// once reading stopped and everything read was handed out.
    pub async fn next_batch(&self) -> Option<Vec<Delivery>> {
        self.inner.handoff.next().await
    }

    /// Every job waiting now without waiting: `Some(empty)` arms the waker
    /// (see `set_waker`), `None` once stopped and drained.
    pub fn poll_batch(&self) -> Option<Vec<Delivery>> {
        self.inner.handoff.poll()
    }

    /// Called (from an engine thread) when `poll_batch` found nothing and a
    /// batch, or the end, arrived since.
    pub fn set_waker(&self, waker: std::sync::Arc<dyn Fn() + Send + Sync>) {
        self.inner.handoff.set_waker(waker);
    }

    /// Records outcomes; the writer settles them in its next flush.
    pub fn settle(&self, outcomes: Vec<Outcome>) {
        self.inner.settle_outcomes(outcomes);
    }

    /// Stops reading new jobs; `next_batch` drains what was read, then
    /// returns `None`.
    pub fn stop(&self) {
        if self.inner.stop_reading.is_cancelled() {
            return;
        }
        self.inner.stop_reading.cancel();
        // A blocked XREADGROUP returns as if it timed out (no entry lost);
        // keep nudging until the reader is out of its read.
        let inner = self.inner.clone();
        crate::runtime::spawn_detached(async move {
            for _ in 0..200 {
                let _ = inner
                    .reader
                    .unblock_self(Some(ClientUnblockFlag::Timeout))
                    .await;
                if inner.reader_done() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
    }

    /// Stops reading, abandons jobs still unsettled (they stay pending for
    /// recovery), flushes every settled outcome, stops the background tasks
    /// and closes the connections. Idempotent.
    pub async fn close(&self) {
        self.stop();
        for t in self.reader_tasks.lock().await.drain(..) {
            let _ = t.await;
        }
        // Anything handed out but never settled stays pending in Redis.
        let abandoned: Vec<u64> = self
            .inner
            .inflight
            .lock()
            .unwrap()
            .keys()
            .copied()
            .collect();
        if !abandoned.is_empty() {
            tracing::warn!(
                count = abandoned.len(),
                "closing with unsettled jobs; they stay pending for recovery"
            );
            self.inner.settle_outcomes(
                abandoned
                    .into_iter()
                    .map(|token| Outcome::Abandoned { token })
                    .collect(),
            );
        }
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.stop_all.cancel();
        self.inner.outbox_notify.notify_one();
        if let Some(w) = self.writer_task.lock().await.take() {
            if tokio::time::timeout(Duration::from_secs(15), w)
                .await
                .is_err()
            {
                tracing::error!(
                    "settle flush did not finish in 15 s; unsettled jobs will be redelivered"
                );
            }
        }
        for t in self.tasks.lock().await.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.inner.forget_consumer_if_idle().await;
        let _ = self.inner.reader.quit().await;
        let _ = self.inner.writer.quit().await;
    }

    pub fn in_flight(&self) -> usize {
        self.inner.inflight.lock().unwrap().len()
    }
}

impl Inner {
    /// How many settled outcomes may wait for the writer before reading stops.
    fn outbox_cap(&self) -> usize {
        (self.cfg.concurrency.saturating_mul(OUTBOX_PER_SLOT)).max(OUTBOX_MIN)
    }

    fn reader_done(&self) -> bool {
        self.reader_exited.load(Ordering::Acquire)
    }

    /// The batch's entries are acked (or its flush was given up): they are
    /// no longer this worker's to extend or to keep from the claimer.
    fn unmark_settling(&self, batch: &Outbox) {
        let mut settling = self.settling.lock().unwrap();
        for id in batch
            .ok
            .iter()
            .map(|r| &r.stream_id)
            .chain(batch.retry.iter().map(|r| &r.stream_id))
            .chain(batch.dlq.iter().map(|r| &r.stream_id))
        {
            settling.remove(id);
        }
    }

    fn mark_settling<'a>(&self, ids: impl Iterator<Item = &'a String>) {
        let now = Instant::now();
        let mut settling = self.settling.lock().unwrap();
        for id in ids {
            settling.insert(id.clone(), now);
        }
    }

    fn push<F: FnOnce(&mut Outbox)>(&self, f: F) {
        {
            let mut ob = self.outbox.lock().unwrap();
            f(&mut ob);
        }
        self.outbox_notify.notify_one();
    }

    fn settle_outcomes(&self, outcomes: Vec<Outcome>) {
        let mut released = 0usize;
        let mut ok = Vec::new();
        let mut retry = Vec::new();
        let mut dlq = Vec::new();
        {
            let mut inflight = self.inflight.lock().unwrap();
            for o in outcomes {
                let token = match &o {
                    Outcome::Completed { token, .. }
                    | Outcome::Failed { token, .. }
                    | Outcome::Abandoned { token } => *token,
                };
                let Some(job) = inflight.remove(&token) else {
                    continue;
                };
                released += 1;
                match o {
                    Outcome::Abandoned { .. } => {}
                    Outcome::Completed {
                        result,
                        duration_us,
                        ..
                    } => ok.push(OkRec {
                        stream_id: job.stream_id,
                        job_id: job.job_id,
                        name: job.name,
                        attempt: job.prior + 1,
                        duration_us,
                        result: if self.cfg.store_results { result } else { None },
                    }),
                    Outcome::Failed {
                        reason,
                        kind,
                        duration_us,
                        ..
                    } => {
                        let reason = match (kind, job.timeout_ms) {
                            (FailKind::Timeout, Some(ms)) => timeout_reason(ms),
                            _ => clip(reason),
                        };
                        let next = job.prior + 1;
                        if kind == FailKind::DecodeFailed {
                            dlq.push(DlqRec {
                                stream_id: job.stream_id,
                                job_id: job.job_id,
                                name: job.name,
                                attempt: 0,
                                duration_us: None,
                                reason: "decode_failed",
                                detail: reason,
                                d: job.d,
                                failed_reason: String::new(),
                            });
                        } else if kind == FailKind::Unrecoverable || next >= job.max_attempts {
                            dlq.push(DlqRec {
                                stream_id: job.stream_id,
                                job_id: job.job_id,
                                name: job.name,
                                attempt: job.prior + 1,
                                duration_us: Some(duration_us),
                                reason: if kind == FailKind::Unrecoverable {
                                    "unrecoverable"
                                } else {
                                    "retries_exhausted"
                                },
                                detail: reason.clone(),
                                d: job.d,
                                failed_reason: reason,
                            });
                        } else {
                            match self.retry_member(&job, next) {
                                Ok((member, backoff_ms)) => retry.push(RetryRec {
                                    stream_id: job.stream_id,
                                    job_id: job.job_id,
                                    name: job.name,
                                    attempt: next,
                                    duration_us,
                                    reason,
                                    member,
                                    backoff_ms,
                                }),
                                Err(e) => dlq.push(DlqRec {
                                    stream_id: job.stream_id,
                                    job_id: job.job_id,
                                    name: job.name,
                                    attempt: job.prior + 1,
                                    duration_us: Some(duration_us),
                                    reason: "decode_failed",
                                    detail: e.to_string(),
                                    d: job.d,
                                    failed_reason: reason,
                                }),
                            }
                        }
                    }
                }
            }
            // Still under the inflight lock, so the claimer always sees each
            // entry in one of the two maps (see `recover`).
            self.mark_settling(
                ok.iter()
                    .map(|r| &r.stream_id)
                    .chain(retry.iter().map(|r| &r.stream_id))
                    .chain(dlq.iter().map(|r| &r.stream_id)),
            );
        }
        if released > 0 {
            self.slots.add_permits(released);
        }
        if !(ok.is_empty() && retry.is_empty() && dlq.is_empty()) {
            self.push(|ob| {
                ob.ok.extend(ok);
                ob.retry.extend(retry);
                ob.dlq.extend(dlq);
            });
        }
    }

    /// The delayed member for the next run: same id, name, override;
    /// `attempt = next`; plus the backoff before it.
    fn retry_member(&self, job: &InFlight, next: u32) -> Result<(Vec<u8>, u64)> {
        let mut env = Envelope::decode(&job.d)?;
        env.attempt = next;
        let backoff = env
            .retry
            .as_ref()
            .and_then(|r| r.backoff.clone())
            .unwrap_or_else(|| self.cfg.backoff.clone());
        Ok((
            encode_member(&job.name, &env.encode()),
            backoff.delay_random(next),
        ))
    }

    /// Turns stream entries into deliveries; routes bad ones to the DLQ.
    /// `delivery_counts` carries XCLAIM counts for recovered entries.
    fn admit(
        &self,
        entries: Vec<Entry>,
        delivery_counts: Option<&HashMap<String, u64>>,
    ) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(entries.len());
        let mut dlq = Vec::new();
        let mut active = Vec::new();
        let now = Instant::now();
        let mut inflight = self.inflight.lock().unwrap();
        for (stream_id, fields) in entries {
            let mut d: Option<Bytes> = None;
            let mut name: Option<Bytes> = None;
            for (k, v) in fields {
                match k.as_str() {
                    "d" => d = Some(v),
                    "n" => name = Some(v),
                    _ => {}
                }
            }
            let route =
                |reason: &'static str, detail: String, d: Bytes, name: String, job_id: String| {
                    DlqRec {
                        stream_id: stream_id.clone(),
                        job_id,
                        name,
                        attempt: 0,
                        duration_us: None,
                        reason,
                        detail,
                        d,
                        failed_reason: String::new(),
                    }
                };
            let name_str = match name.as_ref().map(|n| std::str::from_utf8(n)) {
                None => String::new(),
                Some(Ok(s)) if s.len() <= MAX_NAME_BYTES => s.to_string(),
                Some(Ok(_)) => {
                    dlq.push(route(
                        "malformed",
                        format!("job name longer than {MAX_NAME_BYTES} bytes"),
                        d.unwrap_or_default(),
                        String::new(),
                        String::new(),
                    ));
                    continue;
                }
                Some(Err(_)) => {
                    dlq.push(route(
                        "malformed",
                        "job name is not UTF-8".into(),
                        d.unwrap_or_default(),
                        String::new(),
                        String::new(),
                    ));
                    continue;
                }
            };
            let Some(d) = d else {
                dlq.push(route(
                    "malformed",
                    "stream entry has no d field".into(),
                    Bytes::new(),
                    name_str,
                    String::new(),
                ));
                continue;
            };
            let env = match Envelope::decode(&d) {
                Ok(e) => e,
                Err(e) => {
                    dlq.push(route(
                        "decode_failed",
                        e.to_string(),
                        d,
                        name_str,
                        String::new(),
                    ));
                    continue;
                }
            };
            if env.payload.len() > self.cfg.max_payload_bytes {
                let detail = format!(
                    "payload is {} bytes, above max_payload_bytes {}",
                    env.payload.len(),
                    self.cfg.max_payload_bytes
                );
                dlq.push(route("oversize_payload", detail, d, name_str, env.id));
                continue;
            }
            let max_attempts = env
                .retry
                .as_ref()
                .and_then(|r| r.max_attempts)
                .unwrap_or(self.cfg.max_attempts);
            let delivered = delivery_counts
                .and_then(|m| m.get(&stream_id))
                .copied()
                .unwrap_or(1);
            let prior = (env.attempt as u64)
                .max(delivered.saturating_sub(1))
                .min(u32::MAX as u64) as u32;
            if prior >= max_attempts {
                let detail = format!(
                    "delivered {delivered} times without completing (max_attempts {max_attempts})"
                );
                dlq.push(route("stalled", detail, d, name_str, env.id));
                continue;
            }
            let timeout_ms = env
                .retry
                .as_ref()
                .and_then(|r| r.timeout_ms)
                .or(self.cfg.job_timeout_ms)
                .filter(|&ms| ms > 0);
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            if self.cfg.events_enabled {
                active.push((env.id.clone(), name_str.clone(), prior + 1));
            }
            let payload = Bytes::from(env.payload);
            inflight.insert(
                token,
                InFlight {
                    stream_id,
                    d,
                    job_id: env.id.clone(),
                    name: name_str.clone(),
                    prior,
                    max_attempts,
                    timeout_ms,
                    leased_at: now,
                },
            );
            out.push(Delivery {
                token,
                job_id: env.id,
                name: name_str,
                payload,
                attempt: prior + 1,
                created_at_ms: env.created_at_ms,
                timeout_ms,
            });
        }
        self.mark_settling(dlq.iter().map(|r| &r.stream_id));
        drop(inflight);
        if !dlq.is_empty() || !active.is_empty() {
            self.push(|ob| {
                ob.active.extend(active);
                ob.dlq.extend(dlq);
            });
        }
        out
    }

    async fn flush(&self, batch: &Outbox) -> Result<()> {
        let mut keys: Vec<Key> = vec![
            self.keys.stream.as_str().into(),
            self.keys.delayed.as_str().into(),
            self.keys.dlq.as_str().into(),
            self.keys.events.as_str().into(),
        ];
        let ttl_secs = self.cfg.result_ttl_ms.div_ceil(1000).max(1);
        let mut a: Vec<Value> = Vec::with_capacity(16 + batch.len() * 8);
        let flag = |b: bool| Value::from(if b { "1" } else { "0" });
        a.push(Value::from(self.cfg.group.as_str()));
        a.push(flag(self.cfg.events_enabled));
        a.push(flag(self.features.xackdel));
        a.push(Value::from(self.cfg.dlq_max_stream_len as i64));
        a.push(Value::from(EVENTS_MAXLEN as i64));
        a.push(Value::from(ttl_secs as i64));
        // A run that starts and ends within one flush has its `active`
        // event written with its `completed` one: its id, name and attempt
        // travel once.
        let mut unsent: HashMap<(&str, u32), usize> = HashMap::with_capacity(batch.active.len());
        for (k, (id, _, att)) in batch.active.iter().enumerate() {
            unsent.entry((id.as_str(), *att)).or_insert(k);
        }
        let mut ok: Vec<(&OkRec, bool)> = batch
            .ok
            .iter()
            .map(|r| (r, unsent.remove(&(r.job_id.as_str(), r.attempt)).is_some()))
            .collect();
        // The script deletes acked entries by stream id order (see SETTLE).
        ok.sort_by_cached_key(|(r, _)| streams::id_order(&r.stream_id));
        let mut active: Vec<usize> = unsent.into_values().collect();
        active.sort_unstable();
        a.push(Value::from(active.len() as i64));
        for k in active {
            let (id, name, att) = &batch.active[k];
            a.push(Value::from(id.as_str()));
            a.push(Value::from(name.as_str()));
            a.push(Value::from(*att as i64));
        }
        a.push(Value::from(ok.len() as i64));
        for (r, with_active) in ok {
            a.push(Value::from(r.stream_id.as_str()));
            a.push(Value::from(r.job_id.as_str()));
            a.push(Value::from(r.name.as_str()));
            a.push(Value::from(r.attempt as i64));
            a.push(Value::from(r.duration_us as i64));
            let flags = |rk: usize| Value::from((rk * 2 + usize::from(with_active)) as i64);
            match &r.result {
                Some(bytes) => {
                    keys.push(self.keys.result(&r.job_id).into());
                    a.push(flags(keys.len() - 4));
                    a.push(Value::Bytes(bytes.clone()));
                }
                None => {
                    a.push(flags(0));
                    a.push(Value::from(""));
                }
            }
        }
        a.push(Value::from(batch.retry.len() as i64));
        for r in &batch.retry {
            a.push(Value::from(r.stream_id.as_str()));
            a.push(Value::from(r.job_id.as_str()));
            a.push(Value::from(r.name.as_str()));
            a.push(Value::from(r.attempt as i64));
            a.push(Value::from(r.duration_us as i64));
            a.push(Value::from(r.reason.as_str()));
            a.push(Value::Bytes(r.member.clone().into()));
            a.push(Value::from(r.backoff_ms as i64));
        }
        a.push(Value::from(batch.dlq.len() as i64));
        for r in &batch.dlq {
            a.push(Value::from(r.stream_id.as_str()));
            a.push(Value::from(r.job_id.as_str()));
            a.push(Value::from(r.name.as_str()));
            a.push(Value::from(r.attempt as i64));
            a.push(match r.duration_us {
                Some(d) => Value::from(d as i64),
                None => Value::from(""),
            });
            a.push(Value::from(r.reason));
            a.push(Value::from(r.detail.as_str()));
            a.push(Value::Bytes(r.d.clone()));
            a.push(Value::from(r.failed_reason.as_str()));
        }
        a.push(flag(batch.drained));
        let _: i64 = self.settle.run(&self.writer, keys, a).await?;
        Ok(())
    }

    /// Removes this consumer from the group when it has nothing pending,
    /// so restarts do not pile up dead consumer names.
    async fn forget_consumer_if_idle(&self) {
        let pending: std::result::Result<Value, _> = self
            .writer
            .custom(
                fred::cmd!("XPENDING", hash: self.keys.cluster_hash()),
                vec![
                    self.keys.stream.as_str(),
                    self.cfg.group.as_str(),
                    "-",
                    "+",
                    "1",
                    self.consumer_name.as_str(),
                ],
            )
            .await;
        if let Ok(Value::Array(items)) = pending {
            if items.is_empty() {
                let _: std::result::Result<Value, _> = self
                    .writer
                    .custom(
                        // Routed by the queue's slot: by default fred hashes
                        // "DELCONSUMER", the first string argument.
                        fred::cmd!("XGROUP", hash: self.keys.cluster_hash()),
                        vec![
                            "DELCONSUMER",
                            self.keys.stream.as_str(),
                            self.cfg.group.as_str(),
                            self.consumer_name.as_str(),
                        ],
                    )
                    .await;
            }
        }
    }
}

/// Holds reading back while more settled outcomes wait for the writer than
/// `outbox_cap`. False when reading stops meanwhile.
async fn wait_for_writer(inner: &Inner) -> bool {
    let mut warned = false;
    loop {
        let written = inner.written.notified();
        let waiting = inner.settling.lock().unwrap().len();
        if waiting < inner.outbox_cap() {
            return true;
        }
        if !warned {
            warned = true;
            tracing::warn!(
                "reading paused: {waiting} settled jobs wait for Redis to accept their outcomes"
            );
        }
        tokio::select! {
            _ = written => {},
            _ = tokio::time::sleep(Duration::from_millis(100)) => {},
            _ = inner.stop_reading.cancelled() => return false,
        }
    }
}

/// Take up to `max` permits: waits for the first, takes the rest if free.
async fn take_slots(inner: &Inner, max: usize) -> Option<usize> {
    let first = tokio::select! {
        p = inner.slots.clone().acquire_owned() => p.ok()?,
        _ = inner.stop_reading.cancelled() => return None,
    };
    first.forget();
    let mut n = 1;
    while n < max {
        match inner.slots.try_acquire() {
            Ok(p) => {
                p.forget();
                n += 1;
            }
            Err(_) => break,
        }
    }
    Some(n)
}

async fn reader_loop(inner: Arc<Inner>) {
    let mut had_work = false;
    let mut failures = 0u32;
    let read_timeout = Duration::from_millis(inner.cfg.read_block_ms) + Duration::from_secs(10);
    loop {
        if inner.stop_reading.is_cancelled() {
            break;
        }
        if !wait_for_writer(&inner).await {
            break;
        }
        let Some(n) = take_slots(&inner, inner.cfg.effective_read_count()).await else {
            break;
        };
        let read = inner.reader.with_options(&fred::types::config::Options {
            timeout: Some(read_timeout),
            ..Default::default()
        });
        let res: std::result::Result<Value, _> = read
            .xreadgroup(
                inner.cfg.group.as_str(),
                inner.consumer_name.as_str(),
                Some(n as u64),
                Some(inner.cfg.read_block_ms),
                false,
                inner.keys.stream.as_str(),
                ">",
            )
            .await;
        let entries = match res.map_err(Error::from).and_then(streams::parse_read) {
            Ok(e) => {
                failures = 0;
                e
            }
            Err(e) => {
                inner.slots.add_permits(n);
                if e.code() == "redis" && e.to_string().contains("NOGROUP") {
                    // The stream or group was deleted under us: recreate it.
                    let _: std::result::Result<Value, _> = inner
                        .writer
                        .xgroup_create(
                            inner.keys.stream.as_str(),
                            inner.cfg.group.as_str(),
                            "0",
                            true,
                        )
                        .await;
                }
                failures += 1;
                tracing::warn!(error = %e, "stream read failed; retrying");
                let wait = Duration::from_millis((50u64 << failures.min(6)).min(2_000));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = inner.stop_reading.cancelled() => break,
                }
                continue;
            }
        };
        let got = entries.len();
        if got < n {
            inner.slots.add_permits(n - got);
        }
        let batch = inner.admit(entries, None);
        // Entries routed to the DLQ never reach the language layer.
        let routed = got - batch.len();
        if routed > 0 {
            inner.slots.add_permits(routed);
        }
        if got > 0 {
            had_work = true;
        }
        if got < n && had_work && inner.cfg.events_enabled {
            had_work = false;
            inner.push(|ob| ob.drained = true);
        }
        inner.handoff.push(batch);
    }
    inner.reader_exited.store(true, Ordering::Release);
    inner.handoff.feeder_done();
}

/// Crash recovery (lease extension runs in `lease_loop`).
async fn claimer_loop(inner: Arc<Inner>) {
    let idle = inner.cfg.claim_min_idle_ms;
    let period = Duration::from_millis((idle / 3).clamp(50, 5_000));
    // After this worker lost Redis (a restart, a network cut), every pending
    // entry looks idle, those of live workers too: their lease extensions
    // and acks could not get through either. Claim nothing until
    // `claim_min_idle_ms` plus the longest reconnect delay after our own
    // reconnect (or the last failed pass): by then every live worker is
    // back, has re-extended its leases and flushed its acks. Commands wait
    // for the reconnect instead of failing, so the reconnect is learnt from
    // the client's reconnect events.
    let quiet = Duration::from_millis(idle) + conn::RECONNECT_MAX_DELAY;
    let mut quiet_until: Option<Instant> = None;
    let mut reconnects = inner.writer.reconnect_rx();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {},
            _ = inner.stop_reading.cancelled() => break,
        }
        if reconnected(&mut reconnects) {
            tracing::info!("reconnected to Redis; claiming nothing for claim_min_idle_ms");
            quiet_until = Some(Instant::now() + quiet);
        }
        if quiet_until.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        match recover(&inner, &mut reconnects).await {
            Ok(batch) => inner.handoff.push(batch),
            Err(e) => {
                tracing::warn!(error = %e, "crash recovery pass failed");
                quiet_until = Some(Instant::now() + quiet);
            }
        }
    }
    inner.handoff.feeder_done();
}

/// Lease extension, in its own task so that it never waits behind a
/// recovery pass, and running until the final flush (`stop_all`), so that
/// handlers still finishing during a graceful shutdown keep their leases.
async fn lease_loop(inner: Arc<Inner>) {
    let period = Duration::from_millis((inner.cfg.claim_min_idle_ms / 3).clamp(50, 5_000));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {},
            _ = inner.stop_all.cancelled() => break,
        }
        if let Err(e) = extend_leases(&inner).await {
            tracing::warn!(error = %e, "lease extension failed");
        }
    }
}

/// Resets the idle time of entries whose handlers are still running, or
/// whose outcome waits for the writer's flush, so that other workers do not
/// claim them while this worker is alive. A lease counts as extended only
/// once Redis took the XCLAIM.
async fn extend_leases(inner: &Inner) -> Result<()> {
    let threshold = Duration::from_millis(inner.cfg.claim_min_idle_ms / 3);
    let now = Instant::now();
    let mut ids: Vec<String> = inner
        .inflight
        .lock()
        .unwrap()
        .values()
        .filter(|j| now.duration_since(j.leased_at) >= threshold)
        .map(|j| j.stream_id.clone())
        .collect();
    ids.extend(
        inner
            .settling
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= threshold)
            .map(|(id, _)| id.clone()),
    );
    for chunk in ids.chunks(500) {
        let mut args: Vec<Value> = vec![
            inner.keys.stream.as_str().into(),
            inner.cfg.group.as_str().into(),
            inner.consumer_name.as_str().into(),
            Value::from(0i64),
        ];
        args.extend(chunk.iter().map(|s| Value::from(s.as_str())));
        args.push("JUSTID".into());
        let _: Value = inner.writer.custom(fred::cmd!("XCLAIM"), args).await?;
        let extended: std::collections::HashSet<&str> = chunk.iter().map(String::as_str).collect();
        for j in inner.inflight.lock().unwrap().values_mut() {
            if extended.contains(j.stream_id.as_str()) {
                j.leased_at = now;
            }
        }
        for (id, t) in inner.settling.lock().unwrap().iter_mut() {
            if extended.contains(id.as_str()) {
                *t = now;
            }
        }
    }
    Ok(())
}

/// True when the client reconnected since the last call (drains the
/// events). fred announces a reconnect before it writes anything on the new
/// connection, so a reply read after this returned false came from before
/// any reconnect that happened since.
fn reconnected(rx: &mut tokio::sync::broadcast::Receiver<fred::types::config::Server>) -> bool {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut any = false;
    while !matches!(
        rx.try_recv(),
        Err(TryRecvError::Empty | TryRecvError::Closed)
    ) {
        any = true;
    }
    any
}

/// Takes concurrency slots for recovered entries (up to `want`, at least
/// one), waiting a bounded time; returns how many it took. When the worker
/// is idle its reader holds every free slot while it blocks on the empty
/// stream, so waiting alone could take a whole `read_block_ms`: this queues
/// for the slots first (the semaphore serves waiters in order, so the
/// reader cannot take them back) and then releases the reader's blocked
/// read, which returns its slots. It asks for no more slots than handlers
/// leave free, so that a busy worker waits for one handler, not for all.
async fn wait_for_slots(inner: &Inner, want: usize) -> usize {
    let busy = inner.inflight.lock().unwrap().len();
    let n = want
        .min(inner.cfg.concurrency.saturating_sub(busy))
        .clamp(1, u32::MAX as usize);
    let max_wait = Duration::from_millis(inner.cfg.read_block_ms.max(100) + 1_000);
    let acquire = inner.slots.acquire_many(n as u32);
    tokio::pin!(acquire);
    let deadline = tokio::time::sleep(max_wait);
    tokio::pin!(deadline);
    // An unblock that arrives while the reader is between two reads does
    // nothing, so nudge until the slot comes.
    let mut nudge = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            biased;
            p = &mut acquire => {
                return match p {
                    Ok(p) => {
                        p.forget();
                        n
                    }
                    Err(_) => 0,
                };
            }
            _ = &mut deadline => return 0,
            _ = inner.stop_reading.cancelled() => return 0,
            _ = nudge.tick() => {
                let _ = inner
                    .reader
                    .unblock_self(Some(ClientUnblockFlag::Timeout))
                    .await;
            }
        }
    }
}

fn reconnected_mid_pass() -> Error {
    Error::Connection(
        "reconnected to Redis during a recovery pass; claiming nothing for now".into(),
    )
}

/// Claims entries idle longer than `claim_min_idle_ms` (their worker died)
/// and admits them with their delivery counts. A command queued while the
/// connection was down runs after the reconnect, when the entries of live
/// workers look idle too: a pass that straddled a reconnect claims nothing.
async fn recover(
    inner: &Inner,
    reconnects: &mut tokio::sync::broadcast::Receiver<fred::types::config::Server>,
) -> Result<Vec<Delivery>> {
    let idle = inner.cfg.claim_min_idle_ms as i64;
    let pending: Value = inner
        .writer
        .custom(
            fred::cmd!("XPENDING"),
            vec![
                Value::from(inner.keys.stream.as_str()),
                Value::from(inner.cfg.group.as_str()),
                Value::from("IDLE"),
                Value::from(idle),
                Value::from("-"),
                Value::from("+"),
                Value::from(inner.cfg.effective_read_count() as i64),
            ],
        )
        .await?;
    if reconnected(reconnects) {
        return Err(reconnected_mid_pass());
    }
    let Value::Array(rows) = pending else {
        return Ok(Vec::new());
    };
    // Running here, or settled and waiting for the writer: not to be claimed
    // back. The inflight map is read first: `settle_outcomes` moves an entry
    // into `settling` while it holds the inflight lock.
    let mut mine: std::collections::HashSet<String> = inner
        .inflight
        .lock()
        .unwrap()
        .values()
        .map(|j| j.stream_id.clone())
        .collect();
    mine.extend(inner.settling.lock().unwrap().keys().cloned());
    let mut counts: HashMap<String, u64> = HashMap::new();
    for row in rows {
        if let Value::Array(cols) = row {
            let id = cols.first().and_then(|v| v.as_str().map(|s| s.to_string()));
            let count = cols.get(3).and_then(|v| v.as_u64());
            if let (Some(id), Some(count)) = (id, count) {
                if !mine.contains(&id) {
                    counts.insert(id, count + 1);
                }
            }
        }
    }
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let mut permits = 0usize;
    while permits < counts.len() {
        match inner.slots.try_acquire() {
            Ok(p) => {
                p.forget();
                permits += 1;
            }
            Err(_) => break,
        }
    }
    if permits == 0 {
        permits = wait_for_slots(inner, counts.len()).await;
        if permits == 0 {
            return Ok(Vec::new());
        }
    }
    let ids: Vec<String> = counts.keys().take(permits).cloned().collect();
    let mut args: Vec<Value> = vec![
        inner.keys.stream.as_str().into(),
        inner.cfg.group.as_str().into(),
        inner.consumer_name.as_str().into(),
        Value::from(idle),
    ];
    args.extend(ids.iter().map(|s| Value::from(s.as_str())));
    let claimed: std::result::Result<Value, _> =
        inner.writer.custom(fred::cmd!("XCLAIM"), args).await;
    let claimed = match claimed {
        Ok(v) if reconnected(reconnects) => {
            // Claimed from workers that may be alive: leave them be (their
            // owner's next lease extension takes them back; if it is dead,
            // a later pass claims them again).
            drop(v);
            inner.slots.add_permits(permits);
            return Err(reconnected_mid_pass());
        }
        Ok(v) => v,
        Err(e) => {
            inner.slots.add_permits(permits);
            return Err(e.into());
        }
    };
    let entries: Vec<Entry> = streams::parse_entries(claimed)?
        .into_iter()
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let got = entries.len();
    let batch = inner.admit(entries, Some(&counts));
    let unused = permits - batch.len();
    if unused > 0 {
        inner.slots.add_permits(unused);
    }
    if got > 0 {
        tracing::info!(
            recovered = got,
            "claimed entries left pending by a stopped worker"
        );
    }
    Ok(batch)
}

/// A server that is up but cannot serve yet (loading its data after a
/// restart, running a slow script, failing over): worth retrying however
/// long it takes, like a dropped connection.
async fn writer_loop(inner: Arc<Inner>) {
    let mut failures = 0u32;
    let mut pending: Option<Outbox> = None;
    loop {
        if pending.is_none() {
            // Events alone (`active`, `drained`) wait a moment for the
            // outcomes that usually follow, so that both ride one script
            // call; a slow handler delays its `active` event by at most this.
            // More `active` events (the next read's) do not end the wait.
            let only_events = || {
                let ob = inner.outbox.lock().unwrap();
                !ob.is_empty() && ob.ok.is_empty() && ob.retry.is_empty() && ob.dlq.is_empty()
            };
            if only_events() {
                let deadline = tokio::time::Instant::now() + EVENT_COALESCE;
                while only_events() && !inner.stop_all.is_cancelled() {
                    let woke =
                        tokio::time::timeout_at(deadline, inner.outbox_notify.notified()).await;
                    if woke.is_err() {
                        break;
                    }
                }
            }
            let taken = {
                let mut ob = inner.outbox.lock().unwrap();
                if ob.is_empty() {
                    None
                } else {
                    Some(ob.take_flush(MAX_FLUSH))
                }
            };
            match taken {
                Some(b) => pending = Some(b),
                None => {
                    if inner.stop_all.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        _ = inner.outbox_notify.notified() => {},
                        _ = inner.stop_all.cancelled() => {},
                    }
                    continue;
                }
            }
        }
        let batch = pending.as_ref().expect("set above");
        match inner.flush(batch).await {
            Ok(()) => {
                if failures > 5 {
                    tracing::info!(failures, "settle flush written after retries");
                }
                failures = 0;
                inner.unmark_settling(batch);
                inner.written.notify_waiters();
                pending = None;
            }
            Err(e) => {
                // Never dropped while running: a dropped flush would run its
                // jobs again. The reader stops at `outbox_cap` meanwhile.
                failures += 1;
                if inner.stop_all.is_cancelled() && failures > 20 {
                    tracing::error!(error = %e, "Redis refused the last settle flush at shutdown; its jobs stay pending and will be redelivered");
                    break;
                }
                if failures <= 5 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %e, failures, "settle flush failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis((25u64 << failures.min(6)).min(1_000)))
                    .await;
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.inner.stop_reading.cancel();
        self.inner.stop_all.cancel();
        self.inner.outbox_notify.notify_one();
    }
}
