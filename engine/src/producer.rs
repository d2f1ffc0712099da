//! The producer: immediate and delayed adds, bulk adds in one pipeline, and
//! the DLQ reader/replayer.

use crate::conn::{self, Script};
use crate::envelope::{Envelope, RetryOverride};
use crate::errors::{Error, Result};
use crate::keys::{validate_queue_name, Keys};
use crate::scripts;
use fred::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Longest job name, in UTF-8 bytes (the wire's `n` field).
pub const MAX_NAME_BYTES: usize = 256;

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub queue: String,
    pub pool_size: usize,
    pub max_stream_len: u64,
    pub max_delay_secs: u64,
    /// How long a command waits for its reply (ms) before it fails: an add
    /// then fails with `OutcomeUnknown`.
    pub command_timeout_ms: u64,
}

impl ProducerConfig {
    pub fn new(queue: impl Into<String>) -> Self {
        ProducerConfig {
            queue: queue.into(),
            pool_size: 2,
            max_stream_len: 1_000_000,
            max_delay_secs: 30 * 24 * 3600,
            command_timeout_ms: conn::COMMAND_TIMEOUT.as_millis() as u64,
        }
    }
}

/// Per-job options of an add.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// Deliver no earlier than this many ms from now (server clock).
    pub delay_ms: Option<u64>,
    /// Per-job retry override (envelope element 5).
    pub retry: Option<RetryOverride>,
    /// Caller-chosen job id (ChasquiMQ 2 issue: idempotency).
    pub job_id: Option<String>,
}

/// One job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub name: String,
    /// msgpack of the user's data.
    pub payload: Vec<u8>,
    pub options: AddOptions,
}

/// What an add returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub id: String,
    pub created_at_ms: u64,
}

/// One DLQ entry as `peek_dlq` returns it.
#[derive(Debug, Clone)]
pub struct DlqEntry {
    pub dlq_id: String,
    pub source_id: String,
    pub reason: String,
    pub detail: Option<String>,
    pub name: String,
    /// The `d` field as stored: the envelope bytes (may be empty for `malformed`).
    pub payload: Vec<u8>,
}

/// Epoch ms of `created_at_ms` (see `clock`: frozen in conformance tests).
pub use crate::clock::now_ms;

/// Checks that a job's data (msgpack) reads back as it was added: one
/// value, every map key a scalar. `field` names the argument in the error.
pub fn validate_payload(field: &str, payload: &[u8]) -> Result<()> {
    crate::msgpack::check_payload(payload).map_err(|e| Error::Encode(format!("{field}: {e}")))
}

/// Checks a job name (`field` names the argument in the error).
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::invalid_argument(
            field,
            format!(
                "is {} bytes of UTF-8; job names are at most {MAX_NAME_BYTES} bytes",
                name.len()
            ),
        ));
    }
    Ok(())
}

struct Scripts {
    add: Script,
    bulk: Script,
    cancel: Script,
    replay: Script,
}

pub struct Producer {
    url: String,
    cfg: ProducerConfig,
    keys: Keys,
    clients: OnceCell<Vec<Client>>,
    next: AtomicUsize,
    closed: AtomicBool,
    scripts: Scripts,
}

/// Adds one job through a script: delayed (scored by the server clock,
/// with a `delayed` event), and/or idempotent (a `dlid:<job_id>` marker
/// decides; a duplicate writes nothing and returns 0). An immediate add
/// first checks the cap (`room`); -1 means refused, nothing written.
/// Every key is read (type-checked) before the first write, the job's
/// destination is written before its markers, and the event comes last,
/// so a failure at any step never leaves a marker without its job.
/// KEYS: stream, delayed, events, dlid, didx, [bulk gate].
/// ARGV: delay_ms (0 = now), dedup (0|1), ttl_secs, d, name, job_id,
///   stream cap, events_maxlen, need (immediate entries to check the cap
///   for; 0 none; -1 check the gate).
const ADD: &str = concat!(
    scripts::lua_room!(),
    scripts::lua_expect!(),
    r#"
if tonumber(ARGV[1]) > 0 then
  expect('zset', KEYS[2]); expect('stream', KEYS[3])
  if ARGV[2] == '1' then expect('string', KEYS[5]) end
else
  expect('stream', KEYS[1])
end
if ARGV[2] == '1' then expect('string', KEYS[4]) end
if not room(KEYS[1], tonumber(ARGV[7]), tonumber(ARGV[9]), KEYS[6]) then return -1 end
local dedup = ARGV[2] == '1'
if dedup and redis.call('GET', KEYS[4]) then return 0 end
local delay = tonumber(ARGV[1])
if delay > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local name = ARGV[5]
  local member = struct.pack('<I4', #name) .. name .. ARGV[4]
  -- Due time rounded up to the ms: the promoter compares scores with the
  -- floored clock, so a floored due time could run a job up to 1 ms early.
  local due = tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000) + delay
  redis.call('ZADD', KEYS[2], due, member)
  if dedup then
    redis.call('SET', KEYS[4], '1', 'EX', ARGV[3])
    redis.call('SET', KEYS[5], member, 'EX', ARGV[3])
  end
  local e = {'XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'e', 'delayed', 'id', ARGV[6], 'ts', string.format('%.0f', now)}
  if name ~= '' then e[#e + 1] = 'n'; e[#e + 1] = name end
  e[#e + 1] = 'delay_ms'; e[#e + 1] = ARGV[1]
  redis.call(unpack(e))
else
  local a = {'XADD', KEYS[1], '*', 'd', ARGV[4]}
  if ARGV[5] ~= '' then a[#a + 1] = 'n'; a[#a + 1] = ARGV[5] end
  redis.call(unpack(a))
  if dedup then redis.call('SET', KEYS[4], '1', 'EX', ARGV[3]) end
end
return 1
"#
);

/// Cancels a delayed job by id: removes its member from `delayed` only if
/// it is still there (the promoter removes it when it promotes).
/// KEYS: didx, delayed, dlid. Returns 1 when cancelled.
const CANCEL: &str = concat!(
    scripts::lua_expect!(),
    r#"
expect('string', KEYS[1]); expect('zset', KEYS[2]); expect('string', KEYS[3])
local member = redis.call('GET', KEYS[1])
if not member then return 0 end
if redis.call('ZREM', KEYS[2], member) == 1 then
  redis.call('DEL', KEYS[1], KEYS[3])
  return 1
end
return 0
"#
);

/// Options for a write that must not be sent twice: a plain XADD (no
/// `job_id` to dedup it). fred resends a command whose connection dropped
/// after it was written, so an XADD that ran just before a Redis crash or
/// a network cut would run again after the reconnect and enqueue the job
/// twice. With one attempt the caller gets a `connection` error instead:
/// the add may or may not have been written (pass a `job_id` to retry it
/// safely). Commands not yet written still wait for the reconnect.
fn write_once() -> fred::types::config::Options {
    fred::types::config::Options {
        max_attempts: Some(1),
        ..Default::default()
    }
}

/// Adds plain jobs (no delay, no job id): one command for many entries,
/// after the cap check (`room`; -1 means refused, nothing written).
/// KEYS: stream, [bulk gate]. ARGV: stream cap, need (as in ADD), then
/// (d, name) pairs.
const BULK_ADD: &str = concat!(
    scripts::lua_room!(),
    scripts::lua_expect!(),
    r#"
local key = KEYS[1]
expect('stream', key)
if not room(key, tonumber(ARGV[1]), tonumber(ARGV[2]), KEYS[2]) then return -1 end
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('XADD', key, '*', 'd', ARGV[i])
  else
    redis.call('XADD', key, '*', 'd', ARGV[i], 'n', ARGV[i + 1])
  end
end
return (#ARGV - 2) / 2
"#
);

/// Most plain entries per BULK_ADD call, so one call never holds Redis long.
const BULK_CHUNK: usize = 1_000;

/// How long an immediate add's `job_id` dedups (s). A delayed add's marker
/// lives `max(1, delay_ms div 1000) + 3600` s (the 1.x layout).
pub const IMMEDIATE_DEDUP_TTL_SECS: u64 = 3600;

pub const EVENTS_MAXLEN: u64 = 100_000;

impl Producer {
    /// Validates the configuration; connects lazily on first use.
    pub fn new(url: &str, cfg: ProducerConfig) -> Result<Producer> {
        validate_queue_name("queue_name", &cfg.queue)?;
        conn::parse_url(url)?;
        if cfg.command_timeout_ms == 0 {
            return Err(Error::invalid_argument(
                "command_timeout_ms",
                "must be at least 1 ms; pass how long a command may wait for Redis",
            ));
        }
        if cfg.pool_size == 0 || cfg.pool_size > 64 {
            return Err(Error::invalid_argument(
                "pool_size",
                "must be between 1 and 64",
            ));
        }
        Ok(Producer {
            url: url.to_string(),
            keys: Keys::new(&cfg.queue),
            cfg,
            clients: OnceCell::new(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            scripts: Scripts {
                add: Script::new(ADD),
                bulk: Script::new(BULK_ADD),
                cancel: Script::new(CANCEL),
                replay: Script::new(scripts::REPLAY),
            },
        })
    }

    pub fn queue(&self) -> &str {
        &self.cfg.queue
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn client(&self) -> Result<&Client> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the producer was closed".into()));
        }
        let clients = self
            .clients
            .get_or_try_init(|| async {
                let mut v = Vec::with_capacity(self.cfg.pool_size);
                for _ in 0..self.cfg.pool_size {
                    let timeout = std::time::Duration::from_millis(self.cfg.command_timeout_ms);
                    v.push(conn::connect(&self.url, Some(timeout)).await?);
                }
                Ok::<_, Error>(v)
            })
            .await?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % clients.len();
        Ok(&clients[i])
    }

    fn prepare(&self, job: &NewJob, created_at_ms: u64) -> Result<(Envelope, String)> {
        validate_name("name", &job.name)?;
        validate_payload("data", &job.payload)?;
        if let Some(d) = job.options.delay_ms {
            if d > self.cfg.max_delay_secs.saturating_mul(1000) {
                return Err(Error::invalid_argument(
                    "delay_ms",
                    format!("is {d} ms, above max_delay_secs ({} s); pass a shorter delay or raise max_delay_secs", self.cfg.max_delay_secs),
                ));
            }
        }
        let id = match &job.options.job_id {
            Some(id) => id.clone(),
            None => crate::clock::new_id(),
        };
        let env = Envelope {
            id: id.clone(),
            payload: job.payload.clone(),
            created_at_ms,
            attempt: 0,
            retry: job.options.retry.clone(),
        };
        Ok((env, id))
    }

    /// Script keys and args of an add that needs the ADD script (delayed
    /// or idempotent); `None` for a plain immediate add (BULK_ADD).
    /// `need` and `gate` are the cap check (see `room` in scripts.rs).
    fn add_script_call(
        &self,
        job: &NewJob,
        env: &Envelope,
        need: i64,
        gate: Option<&str>,
    ) -> Option<(Vec<Key>, Vec<Value>)> {
        let delay = job.options.delay_ms.unwrap_or(0);
        let dedup = job.options.job_id.is_some();
        if delay == 0 && !dedup {
            return None;
        }
        let ttl = if delay > 0 {
            (delay / 1000).max(1) + 3600
        } else {
            IMMEDIATE_DEDUP_TTL_SECS
        };
        let mut keys: Vec<Key> = vec![
            self.keys.stream.as_str().into(),
            self.keys.delayed.as_str().into(),
            self.keys.events.as_str().into(),
            self.keys.dedup(&env.id).into(),
            self.keys.delayed_index(&env.id).into(),
        ];
        if let Some(g) = gate {
            keys.push(g.into());
        }
        let args = vec![
            Value::from(delay as i64),
            Value::from(if dedup { "1" } else { "0" }),
            Value::from(ttl as i64),
            Value::Bytes(env.encode().into()),
            Value::from(job.name.as_str()),
            Value::from(env.id.as_str()),
            Value::from(self.cfg.max_stream_len as i64),
            Value::from(EVENTS_MAXLEN as i64),
            Value::from(need),
        ];
        Some((keys, args))
    }

    /// Keys and leading args of a BULK_ADD call.
    fn bulk_call(&self, need: i64, gate: Option<&str>) -> (Vec<Key>, Vec<Value>) {
        let mut keys: Vec<Key> = vec![self.keys.stream.as_str().into()];
        if let Some(g) = gate {
            keys.push(g.into());
        }
        let args = vec![
            Value::from(self.cfg.max_stream_len as i64),
            Value::from(need),
        ];
        (keys, args)
    }

    /// What an add whose reply never came tells the caller.
    fn unknown_note(&self, jobs: usize, dedup: bool) -> String {
        let what = if jobs == 1 {
            "the job".to_string()
        } else {
            format!("the {jobs} jobs")
        };
        let retry = if dedup {
            "retrying with the same job_id is safe: a second add of an id writes nothing"
                .to_string()
        } else {
            let them = if jobs == 1 { "it" } else { "them" };
            format!(
                "retrying may enqueue {them} twice; give each job a job_id (add_unique, or \
                 job_id= / jobId) and retry with the same id, which is always safe"
            )
        };
        format!(
            "the add was sent but no reply came within command_timeout_ms ({} ms) or the \
             connection dropped, so {what} may or may not have been added; {retry}",
            self.cfg.command_timeout_ms
        )
    }

    /// The error of an add the cap refused (`need` entries for the stream).
    fn queue_full(&self, need: usize) -> Error {
        let what = if need == 1 {
            "this add".to_string()
        } else {
            format!("this add_bulk's {need} immediate jobs")
        };
        Error::QueueFull(format!(
            "the stream of queue '{}' is at max_stream_len ({}): that many jobs are \
             waiting or running, and {what} would pass it; nothing was added. Run \
             more workers or add fewer jobs at once, retry later, or raise \
             max_stream_len (the cap only refuses adds: no job is ever trimmed)",
            self.cfg.queue, self.cfg.max_stream_len
        ))
    }

    /// Adds one job; one round trip. With a `job_id`, adding the same id
    /// again within the dedup window writes nothing (across processes).
    /// An immediate add past `max_stream_len` is refused (`QueueFull`).
    pub async fn add(&self, job: NewJob) -> Result<Added> {
        let created = now_ms();
        let (env, id) = self.prepare(&job, created)?;
        let client = self.client().await?;
        let need = i64::from(job.options.delay_ms.unwrap_or(0) == 0);
        // Without a job_id nothing dedups a resend: one attempt (see
        // `write_once`). With one, fred may resend after a reconnect.
        let dedup = job.options.job_id.is_some();
        let once = client.with_options(&write_once());
        let sender: &Client = if dedup { client } else { &once };
        let r: i64 = match self.add_script_call(&job, &env, need, None) {
            Some((keys, args)) => self.scripts.add.run(sender, keys, args).await,
            None => {
                let (keys, mut args) = self.bulk_call(1, None);
                args.push(Value::Bytes(env.encode().into()));
                args.push(Value::from(job.name.as_str()));
                self.scripts.bulk.run(sender, keys, args).await
            }
        }
        .map_err(|e| e.after_send(self.unknown_note(1, dedup)))?;
        if r < 0 {
            return Err(self.queue_full(1));
        }
        Ok(Added {
            id,
            created_at_ms: created,
        })
    }

    /// Adds many jobs in one pipeline: one round trip per call, whatever
    /// per-job options the entries carry. All or nothing against the cap:
    /// the first call checks room for every immediate entry; when it
    /// refuses, it sets a gate key that every later call of the pipeline
    /// reads, so none writes.
    pub async fn add_bulk(&self, jobs: Vec<NewJob>) -> Result<Vec<Added>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let created = now_ms();
        let client = self.client().await?;
        let mut prepared = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            let (env, id) = self.prepare(job, created).map_err(|e| match e {
                Error::InvalidArgument { field, message } => Error::InvalidArgument {
                    field: format!("jobs[{i}].{field}"),
                    message,
                },
                Error::Encode(message) => Error::Encode(format!("jobs[{i}].{message}")),
                other => other,
            })?;
            prepared.push((env, id));
        }
        let immediate = jobs
            .iter()
            .filter(|j| j.options.delay_ms.unwrap_or(0) == 0)
            .count();
        let script_calls = jobs
            .iter()
            .filter(|j| j.options.delay_ms.unwrap_or(0) > 0 || j.options.job_id.is_some())
            .count();
        let plain_calls = (jobs.len() - script_calls).div_ceil(BULK_CHUNK);
        // One call checks its own entries; several share a gate.
        let gate = (immediate > 0 && script_calls + plain_calls > 1)
            .then(|| self.keys.bulk_gate(&crate::clock::new_id()));
        let gate = gate.as_deref();
        let mut first = true;
        let mut need = || -> i64 {
            if std::mem::take(&mut first) {
                immediate as i64
            } else if gate.is_some() {
                -1
            } else {
                0
            }
        };
        // Plain entries go in BULK_ADD script calls (one command per chunk,
        // not one per job); delayed or idempotent ones each get the ADD
        // script. All of it is one pipeline: one round trip.
        let mut calls: Vec<(&Script, Vec<Key>, Vec<Value>)> = Vec::new();
        let mut plain: Vec<Value> = Vec::new();
        let mut plain_keys: Vec<Key> = Vec::new();
        for (job, (env, _)) in jobs.iter().zip(&prepared) {
            if let Some((keys, args)) = self.add_script_call(job, env, 0, None) {
                // Close the plain run first: the stream keeps the call's order.
                if !plain.is_empty() {
                    calls.push((
                        &self.scripts.bulk,
                        std::mem::take(&mut plain_keys),
                        std::mem::take(&mut plain),
                    ));
                }
                let n = need();
                let (keys, args) = if n != 0 {
                    self.add_script_call(job, env, n, gate)
                        .unwrap_or((keys, args))
                } else {
                    (keys, args)
                };
                calls.push((&self.scripts.add, keys, args));
            } else {
                if plain.is_empty() {
                    (plain_keys, plain) = self.bulk_call(need(), gate);
                }
                plain.push(Value::Bytes(env.encode().into()));
                plain.push(Value::from(job.name.as_str()));
                if plain.len() >= 2 + 2 * BULK_CHUNK {
                    calls.push((
                        &self.scripts.bulk,
                        std::mem::take(&mut plain_keys),
                        std::mem::take(&mut plain),
                    ));
                }
            }
        }
        if !plain.is_empty() {
            calls.push((&self.scripts.bulk, plain_keys, plain));
        }
        let once = client.with_options(&write_once());
        let pipe = fred::clients::Pipeline::from(once.clone());
        for (i, (script, keys, args)) in calls.iter().enumerate() {
            let mut a: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
            // The gated first call always runs (EVAL, not EVALSHA): a later
            // call's NOSCRIPT rerun must find its verdict already made.
            let eval = i == 0 && gate.is_some();
            a.push(if eval {
                Value::from(script.body())
            } else {
                Value::from(script.sha())
            });
            a.push(Value::from(keys.len() as i64));
            a.extend(
                keys.iter()
                    .map(|k| Value::Bytes(k.as_bytes().to_vec().into())),
            );
            a.extend(args.iter().cloned());
            let cmd = if eval { "EVAL" } else { "EVALSHA" };
            let _: () = pipe
                .custom(fred::cmd!(cmd, hash: self.keys.cluster_hash()), a)
                .await?;
        }
        let unknown =
            self.unknown_note(jobs.len(), jobs.iter().all(|j| j.options.job_id.is_some()));
        let results = pipe.try_all::<Value>().await;
        let mut refused = false;
        for ((script, keys, args), r) in calls.iter().zip(results) {
            let v = match r {
                Ok(v) => v,
                // The script did not run (cache lost): run it now, once.
                Err(e) if e.details().starts_with("NOSCRIPT") => script
                    .run(&once, keys.clone(), args.clone())
                    .await
                    .map_err(|e| e.after_send(&unknown))?,
                Err(e) => return Err(Error::from(e).after_send(&unknown)),
            };
            refused |= v.as_i64().is_some_and(|n| n < 0);
        }
        if refused {
            if let Some(g) = gate {
                let _: crate::Result<i64> = client.del(g).await.map_err(Error::from);
            }
            return Err(self.queue_full(immediate));
        }
        Ok(prepared
            .into_iter()
            .map(|(_, id)| Added {
                id,
                created_at_ms: created,
            })
            .collect())
    }

    /// Removes a delayed job by its stable id. True when it was still
    /// delayed and is now removed (it will never run); false when it was
    /// already promoted, or never existed.
    pub async fn cancel_delayed(&self, job_id: &str) -> Result<bool> {
        let client = self.client().await?;
        let n: i64 = self
            .scripts
            .cancel
            .run(
                client,
                vec![
                    self.keys.delayed_index(job_id).into(),
                    self.keys.delayed.as_str().into(),
                    self.keys.dedup(job_id).into(),
                ],
                Vec::new(),
            )
            .await?;
        Ok(n == 1)
    }

    /// Upserts a repeatable spec; returns its key.
    pub async fn upsert_repeatable(&self, req: crate::scheduler::UpsertRequest) -> Result<String> {
        validate_name("name", &req.job_name)?;
        let client = self.client().await?;
        crate::scheduler::upsert(client, &self.keys, req).await
    }

    /// Repeatable specs ordered by next fire.
    pub async fn repeatables(&self, limit: u64) -> Result<Vec<crate::scheduler::RepeatableMeta>> {
        let client = self.client().await?;
        crate::scheduler::list(client, &self.keys, limit).await
    }

    /// Removes a repeatable spec by key.
    pub async fn remove_repeatable(&self, key: &str) -> Result<bool> {
        let client = self.client().await?;
        crate::scheduler::remove(client, &self.keys, key).await
    }

    /// Up to `limit` DLQ entries, oldest first.
    pub async fn peek_dlq(&self, limit: u64) -> Result<Vec<DlqEntry>> {
        let client = self.client().await?;
        let v: Value = client
            .xrange(self.keys.dlq.as_str(), "-", "+", Some(limit))
            .await
            .map_err(|e| Error::from(e).on_key(&self.keys.dlq, "stream"))?;
        Ok(crate::streams::parse_entries(v)?
            .into_iter()
            .map(|(id, f)| dlq_entry(id, f))
            .collect())
    }

    /// Moves up to `limit` DLQ entries (oldest first) back to the stream with
    /// their attempt counter reset; the retry override is kept. Entries whose
    /// envelope does not decode stay in the DLQ. Replay stops at the
    /// stream's cap (`max_stream_len`): it returns how many moved, or fails
    /// with `QueueFull` when the stream had no room for even one.
    pub async fn replay_dlq(&self, limit: u64) -> Result<u64> {
        let client = self.client().await?;
        let mut replayed = 0u64;
        let mut start = "-".to_string();
        while replayed < limit {
            let want = (limit - replayed).min(500);
            let v: Value = client
                .xrange(self.keys.dlq.as_str(), start.as_str(), "+", Some(want))
                .await
                .map_err(|e| Error::from(e).on_key(&self.keys.dlq, "stream"))?;
            let entries = crate::streams::parse_entries(v)?;
            if entries.is_empty() {
                break;
            }
            let last = entries.last().map(|(id, _)| id.clone()).unwrap_or_default();
            let mut args: Vec<Value> = vec![Value::from(self.cfg.max_stream_len as i64)];
            for (id, fields) in &entries {
                let e = dlq_entry(id.clone(), fields.clone());
                if let Ok(mut env) = Envelope::decode(&e.payload) {
                    env.attempt = 0;
                    args.push(Value::from(id.as_str()));
                    args.push(Value::Bytes(env.encode().into()));
                    args.push(Value::from(e.name.as_str()));
                }
            }
            if args.len() > 1 {
                let r: Vec<i64> = self
                    .scripts
                    .replay
                    .run(
                        client,
                        vec![
                            self.keys.dlq.as_str().into(),
                            self.keys.stream.as_str().into(),
                        ],
                        args,
                    )
                    .await?;
                replayed += r.first().copied().unwrap_or(0).max(0) as u64;
                if r.get(1) == Some(&1) {
                    // At the cap: what is left stays in the DLQ.
                    if replayed == 0 {
                        return Err(self.queue_full(1));
                    }
                    break;
                }
            }
            if (entries.len() as u64) < want {
                break;
            }
            start = format!("({last}");
        }
        Ok(replayed)
    }

    /// Stored results (msgpack) of `job_ids`, aligned by index; one
    /// pipelined round trip. `None` where no result is stored.
    pub async fn get_results(&self, job_ids: &[String]) -> Result<Vec<Option<bytes::Bytes>>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let pipe = client.pipeline();
        for id in job_ids {
            let _: () = pipe.get(self.keys.result(id)).await?;
        }
        let values: Vec<Value> = pipe.all().await?;
        Ok(values
            .into_iter()
            .map(|v| match v {
                Value::Bytes(b) => Some(b),
                Value::String(s) => Some(s.into_inner()),
                _ => None,
            })
            .collect())
    }

    /// Drops the connections. Idempotent.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(clients) = self.clients.get() {
            for c in clients {
                let _ = c.quit().await;
            }
        }
    }
}

fn dlq_entry(dlq_id: String, fields: Vec<(String, bytes::Bytes)>) -> DlqEntry {
    let mut e = DlqEntry {
        dlq_id,
        source_id: String::new(),
        reason: String::new(),
        detail: None,
        name: String::new(),
        payload: Vec::new(),
    };
    for (k, v) in fields {
        let s = || String::from_utf8_lossy(&v).into_owned();
        match k.as_str() {
            "d" => e.payload = v.to_vec(),
            "n" => e.name = s(),
            "source_id" => e.source_id = s(),
            "reason" => e.reason = s(),
            "detail" => e.detail = Some(s()),
            _ => {}
        }
    }
    e
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Connection tasks outlive their handles; quit them so a dropped
        // producer does not keep sockets (and reconnect loops) alive.
        if !self.closed.swap(true, Ordering::AcqRel) {
            if let (Some(clients), Ok(rt)) = (self.clients.take(), crate::runtime::runtime()) {
                rt.spawn(async move {
                    for c in clients {
                        let _ = c.quit().await;
                    }
                });
            }
        }
    }
}

/// Shared handle type used by bindings.
pub type SharedProducer = Arc<Producer>;
