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

/// One promotion step: `(is_leader, promoted, ms until the next due member)`.
pub async fn step(
    client: &Client,
    keys: &Keys,
    cfg: &PromoterConfig,
    script: &Script,
) -> crate::Result<(bool, i64, i64)> {
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
    Ok((
        r.first() == Some(&1),
        r.get(1).copied().unwrap_or(0),
        r.get(2).copied().unwrap_or(-1),
    ))
}

/// Runs until `stop`, then releases the lock if held.
pub async fn run(client: Client, keys: Keys, cfg: PromoterConfig, stop: CancellationToken) {
    let script = Script::new(scripts::PROMOTE);
    let release = Script::new(scripts::RELEASE_LOCK);
    let mut leader = false;
    while !stop.is_cancelled() {
        let wait = match step(&client, &keys, &cfg, &script).await {
            Ok((is_leader, moved, next_ms)) => {
                leader = is_leader;
                if !is_leader {
                    cfg.tick
                } else if moved >= BATCH {
                    Duration::ZERO
                } else if next_ms >= 0 {
                    Duration::from_millis(next_ms as u64).min(cfg.tick)
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
