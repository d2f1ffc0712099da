//! The delayed-job promoter: one leader per queue (`promoter:lock`) moves due
//! members of `delayed` into the stream. Due times come from the Redis
//! server clock, so client clock skew does not move them.

use crate::conn::Script;
use crate::keys::Keys;
use crate::producer::EVENTS_MAXLEN;
use crate::scripts;
use fred::prelude::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Leader lock TTL (`EX 5`, docs/wire-format.md).
pub const LOCK_TTL_SECS: i64 = 5;
/// Most members moved per script call.
pub const BATCH: i64 = 1_000;

#[derive(Debug, Clone)]
pub struct PromoterConfig {
    pub holder: String,
    pub tick: Duration,
    pub max_stream_len: u64,
    pub events_enabled: bool,
}

/// What one promotion step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub leader: bool,
    pub promoted: i64,
    /// ms until the next due member, or -1 when none.
    pub next_ms: i64,
    /// Due members stayed delayed: the stream is at `max_stream_len`.
    pub held: bool,
}

/// One promotion step. It never fills the stream past `max_stream_len`:
/// due members that do not fit stay delayed for a later step.
pub async fn step(
    client: &Client,
    keys: &Keys,
    cfg: &PromoterConfig,
    script: &Script,
) -> crate::Result<Step> {
    let r: Vec<i64> = script
        .run(
            client,
            vec![
                keys.promoter_lock.as_str().into(),
                keys.delayed.as_str().into(),
                keys.stream.as_str().into(),
                keys.events.as_str().into(),
            ],
            vec![
                Value::from(cfg.holder.as_str()),
                Value::from(LOCK_TTL_SECS),
                Value::from(BATCH),
                Value::from(cfg.max_stream_len as i64),
                Value::from(if cfg.events_enabled { "1" } else { "0" }),
                Value::from(EVENTS_MAXLEN as i64),
            ],
        )
        .await?;
    Ok(Step {
        leader: r.first() == Some(&1),
        promoted: r.get(1).copied().unwrap_or(0),
        next_ms: r.get(2).copied().unwrap_or(-1),
        held: r.get(3) == Some(&1),
    })
}

/// Runs until `stop`, then releases the lock if held.
pub async fn run(client: Client, keys: Keys, cfg: PromoterConfig, stop: CancellationToken) {
    let script = Script::new(scripts::PROMOTE);
    let release = Script::new(scripts::RELEASE_LOCK);
    let mut leader = false;
    let mut holding = false;
    while !stop.is_cancelled() {
        let wait = match step(&client, &keys, &cfg, &script).await {
            Ok(s) => {
                leader = s.leader;
                if s.held && !holding {
                    tracing::warn!(
                        queue = %keys.prefix(),
                        max_stream_len = cfg.max_stream_len,
                        "the stream is at max_stream_len: due delayed jobs wait until workers make room"
                    );
                }
                holding = s.held;
                if !s.leader || s.held {
                    cfg.tick
                } else if s.promoted >= BATCH {
                    Duration::ZERO
                } else if s.next_ms >= 0 {
                    Duration::from_millis(s.next_ms as u64).min(cfg.tick)
                } else {
                    cfg.tick
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "delayed promotion failed; retrying");
                cfg.tick.max(Duration::from_millis(250))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {},
            _ = stop.cancelled() => break,
        }
    }
    if leader {
        let _: crate::Result<i64> = release
            .run(
                &client,
                vec![keys.promoter_lock.as_str().into()],
                vec![Value::from(cfg.holder.as_str())],
            )
            .await;
    }
}
