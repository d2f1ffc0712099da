//! Redis connections: URL parsing, bounded connect, reconnect policy,
//! script loading and server feature detection.

use crate::errors::{Error, Result};
use fred::prelude::*;
use fred::types::scripts::Script as FredScript;
use std::time::Duration;

/// How long a connect may take before a typed `connection` error.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound for one non-blocking command, including reconnect waits.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a Redis URL into a fred config. Messages never echo the URL (it
/// may carry a password).
pub fn parse_url(url: &str) -> Result<Config> {
    const SCHEMES: [&str; 12] = [
        "redis",
        "rediss",
        "redis-cluster",
        "rediss-cluster",
        "redis-sentinel",
        "rediss-sentinel",
        "valkey",
        "valkeys",
        "valkey-cluster",
        "valkeys-cluster",
        "redis+unix",
        "valkey+unix",
    ];
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err(Error::invalid_argument(
            "redis_url",
            "must start with redis://, rediss:// (TLS), redis-cluster:// or redis-sentinel://",
        ));
    }
    Config::from_url(url).map_err(|_| {
        Error::invalid_argument(
            "redis_url",
            "is not a valid Redis URL; use redis://[user:password@]host[:port][/db], rediss://... for TLS, or redis-cluster://host:port",
        )
    })
}

/// Connects one client, failing with a typed error within `CONNECT_TIMEOUT`.
/// After the first connection the client reconnects by itself.
pub async fn connect(url: &str, command_timeout: Option<Duration>) -> Result<Client> {
    let config = parse_url(url)?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = CONNECT_TIMEOUT;
            c.internal_command_timeout = CONNECT_TIMEOUT;
            c.max_command_attempts = 3;
            c.tcp.nodelay = Some(true);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout.unwrap_or(Duration::ZERO);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build()
        .map_err(Error::from)?;
    let handle = client.connect();
    let outcome = tokio::time::timeout(CONNECT_TIMEOUT, client.wait_for_connect()).await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Error::from(e)),
        Err(_) => Some(Error::Connection(format!(
            "no connection within {} s; is Redis running at the configured address?",
            CONNECT_TIMEOUT.as_secs()
        ))),
    };
    if let Some(e) = failure {
        handle.abort();
        return Err(match e {
            Error::Auth(m) => Error::Auth(m),
            Error::InvalidArgument { field, message } => Error::InvalidArgument { field, message },
            Error::Redis(m) if m.to_ascii_uppercase().contains("AUTH") => Error::Auth(m),
            // Already a connection error: keep its message (no doubled prefix).
            Error::Connection(m) => Error::Connection(m),
            other => Error::Connection(other.to_string()),
        });
    }
    Ok(client)
}

/// What the connected server can do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    /// `XACKDEL` (Redis 8.2+): ack and delete in one command.
    pub xackdel: bool,
}

/// Detects commands by asking the server (`COMMAND INFO`), not by version
/// strings, so forks such as Valkey are judged by what they implement.
pub async fn detect_features(client: &Client) -> Result<Features> {
    let v: Value = client
        .custom(fred::cmd!("COMMAND"), vec!["INFO", "XACKDEL"])
        .await?;
    let xackdel = match v {
        Value::Array(items) => items
            .first()
            .map(|i| !matches!(i, Value::Null))
            .unwrap_or(false),
        _ => false,
    };
    Ok(Features { xackdel })
}

/// A Lua script run with EVALSHA, falling back to EVAL when the server lost
/// its script cache (restart, SCRIPT FLUSH). NOSCRIPT means the script did
/// not run, so the fallback never runs anything twice.
pub struct Script {
    body: &'static str,
    sha: String,
}

impl Script {
    pub fn new(body: &'static str) -> Script {
        Script {
            body,
            sha: fred::util::sha1_hash(body),
        }
    }

    pub fn sha(&self) -> &str {
        &self.sha
    }

    pub async fn run<R: FromValue>(
        &self,
        client: &Client,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R> {
        let fs = FredScript::from_hash(self.sha.clone());
        match fs
            .evalsha::<Value, _, _, _>(client, keys.clone(), args.clone())
            .await
        {
            Ok(v) => R::from_value(v).map_err(Error::from),
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                let v: Value = client.eval(self.body, keys, args).await?;
                R::from_value(v).map_err(Error::from)
            }
            Err(e) => Err(Error::from(e)),
        }
    }
}
