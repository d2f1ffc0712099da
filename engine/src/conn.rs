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
/// Longest wait between two reconnect attempts (exponential from 50 ms):
/// a live client is back at most this long after Redis is.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(2_000);

/// Parses a Redis URL into a fred config. Messages never echo the URL (it
/// may carry a password).
///
/// Schemes: `redis://` (plain), `rediss://` (TLS), `redis-cluster://` and
/// `rediss-cluster://` (Redis Cluster; more seed nodes as `?node=host:port`,
/// repeated), and the `valkey*` spellings of each. ChasquiMQ reads and
/// removes the query parameters `tls_ca_file`, `tls_cert_file` and
/// `tls_key_file` (PEM files, TLS schemes only); fred parses the rest.
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
    let unparsable = || {
        Error::invalid_argument(
            "redis_url",
            "is not a valid Redis URL; use redis://[user:password@]host[:port][/db], rediss://... for TLS, or redis-cluster://host:port[?node=host:port]",
        )
    };
    let mut parsed = url::Url::parse(url).map_err(|_| unparsable())?;
    let mut files = crate::tls::TlsFiles::default();
    let mut rest: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.query_pairs() {
        if k.starts_with("tls_") {
            if !files.set(&k, v.into_owned()) {
                return Err(Error::invalid_argument(
                    "redis_url",
                    format!(
                        "unknown query parameter {k:?}; the TLS parameters are {}",
                        crate::tls::PARAMS.join(", ")
                    ),
                ));
            }
        } else {
            rest.push((k.into_owned(), v.into_owned()));
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let tls = scheme.starts_with("rediss") || scheme.starts_with("valkeys");
    if !tls && !files.is_empty() {
        return Err(Error::invalid_argument(
            "redis_url",
            "tls_ca_file, tls_cert_file and tls_key_file need a TLS URL: use rediss:// (or rediss-cluster://)",
        ));
    }
    if tls {
        // fred would build its own rustls config (system roots, no client
        // certificate); hand it the plain scheme and set ours below.
        let plain = scheme
            .replacen("rediss", "redis", 1)
            .replacen("valkeys", "valkey", 1);
        parsed.set_scheme(&plain).map_err(|_| unparsable())?;
    }
    let mut config = Config::from_url(parsed.as_str()).map_err(|_| unparsable())?;
    if tls {
        config.tls = Some(crate::tls::config(&files)?);
    }
    Ok(config)
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
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            50,
            RECONNECT_MAX_DELAY.as_millis() as u32,
            2,
        ))
        .build()
        .map_err(Error::from)?;
    // `init` subscribes to the first connection result before it connects.
    // (`connect` + `wait_for_connect` races: a failure broadcast before the
    // wait subscribes is missed, and a refused password then looks like a
    // 5 s timeout.) fred fails an attempt after `connection_timeout` /
    // `internal_command_timeout`; the outer bound is a safety net.
    let outcome =
        tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(2), client.init()).await;
    let failure = match outcome {
        // The handle only observes the connection task; dropping it detaches.
        Ok(Ok(_task)) => None,
        // `init` already stopped the connection task.
        Ok(Err(e)) => Some(Error::from(e)),
        Err(_) => {
            // Still retrying: stop the reconnect loop in the background.
            let c = client.clone();
            crate::runtime::spawn_detached(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), c.quit()).await;
            });
            Some(Error::Connection(format!(
                "{} did not accept a connection within {} s; check that Redis runs there \
                 and that no firewall drops the port",
                address_of(url),
                CONNECT_TIMEOUT.as_secs()
            )))
        }
    };
    if let Some(e) = failure {
        return Err(match e {
            Error::Auth(m) => Error::Auth(m),
            Error::InvalidArgument { field, message } => Error::InvalidArgument { field, message },
            Error::Redis(m) if m.to_ascii_uppercase().contains("AUTH") => Error::Auth(m),
            // The credentials were accepted but the ACL user may not run a
            // command the client needs to set up a connection.
            Error::Redis(m) if m.starts_with("NOPERM") => Error::Auth(format!(
                "{m} (the ACL user needs the commands listed in ChasquiMQ's docs/security.md)"
            )),
            // Already a connection error: say it in words, with the address.
            Error::Connection(m) => Error::Connection(readable_io(&address_of(url), &m)),
            other => Error::Connection(other.to_string()),
        });
    }
    Ok(client)
}

/// `host:port` of a Redis URL for messages: never the credentials, the
/// path or the query (a cluster URL lists every seed).
pub fn address_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hosts.is_empty() {
        "the configured address".into()
    } else {
        hosts.to_string()
    }
}

/// An IO failure from fred in words: `Os { code: 111, kind:
/// ConnectionRefused, message: "Connection refused" }` becomes "127.0.0.1:1
/// refused the connection (os error 111) ...", with what to do.
pub fn readable_io(addr: &str, details: &str) -> String {
    let field = |name: &str| -> Option<&str> {
        let start = details.find(name)? + name.len();
        let tail = &details[start..];
        let end = tail.find([',', ' ', '}', '"']).unwrap_or(tail.len());
        Some(&tail[..end])
    };
    if !details.contains("Os {") && !details.contains("kind:") {
        return format!("{addr}: {details}");
    }
    let code = field("code: ")
        .map(|c| format!(" (os error {c})"))
        .unwrap_or_default();
    match field("kind: ").unwrap_or("") {
        "ConnectionRefused" => format!(
            "{addr} refused the connection{code}: nothing listens there; start Redis or fix the host and port in redis_url"
        ),
        "TimedOut" => format!(
            "{addr} did not answer{code}; check that Redis runs there and that no firewall drops the port"
        ),
        "HostUnreachable" | "NetworkUnreachable" => format!(
            "{addr} is unreachable from this machine{code}; check the host in redis_url and the network"
        ),
        "ConnectionReset" | "ConnectionAborted" | "BrokenPipe" | "UnexpectedEof" => format!(
            "{addr} closed the connection{code}; if the server requires TLS, use a rediss:// URL"
        ),
        "NotFound" | "Uncategorized" if details.contains("lookup") || details.contains("resolve") => {
            format!("{addr}: the host name does not resolve{code}; check the host in redis_url")
        }
        _ => {
            let msg = details
                .split_once("message: \"")
                .and_then(|(_, m)| m.split_once('"'))
                .map_or(details, |(m, _)| m);
            format!("{addr}: {msg}{code}; check that Redis runs there and the host and port in redis_url")
        }
    }
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
        // In a cluster this goes to the node of slot("INFO") (fred hashes the
        // first string argument); any node can answer.
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

    pub fn body(&self) -> &'static str {
        self.body
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

#[cfg(test)]
mod readable_tests {
    use super::*;

    #[test]
    fn the_address_never_carries_credentials() {
        assert_eq!(
            address_of("redis://user:pw@127.0.0.1:6380/2?x=1"),
            "127.0.0.1:6380"
        );
        assert_eq!(address_of("rediss://:p@w@h:1"), "h:1");
        assert_eq!(address_of("redis://a:1,b:2"), "a:1,b:2");
        assert_eq!(address_of("redis://"), "the configured address");
    }

    #[test]
    fn os_errors_read_as_words_with_a_fix() {
        let refused = r#"Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }"#;
        let m = readable_io("127.0.0.1:1", refused);
        assert_eq!(
            m,
            "127.0.0.1:1 refused the connection (os error 111): nothing listens there; \
             start Redis or fix the host and port in redis_url"
        );
        assert!(!m.contains("Os {"));
        let other = r#"Os { code: 13, kind: PermissionDenied, message: "Permission denied" }"#;
        assert_eq!(
            readable_io("h:1", other),
            "h:1: Permission denied (os error 13); check that Redis runs there and the host and port in redis_url"
        );
        assert_eq!(
            readable_io("h:1", "Connection closed."),
            "h:1: Connection closed."
        );
    }
}
