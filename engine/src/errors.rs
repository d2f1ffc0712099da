//! The engine's one error type. Every variant has a stable `code` that the
//! language bindings map to one exception / error class each; conformance
//! compares codes, never message text.

use fred::error::{Error as FredError, ErrorKind};

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A caller-supplied value is out of range or malformed.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// A caller-supplied value has the wrong type.
    #[error("{field}: {message}")]
    InvalidType { field: String, message: String },
    /// A value could not be encoded for the wire.
    #[error("encode failed: {0}")]
    Encode(String),
    /// Bytes read from Redis do not decode as the wire format says.
    #[error("decode failed: {0}")]
    Decode(String),
    /// Redis could not be reached, or the connection dropped.
    #[error("cannot reach Redis: {0}")]
    Connection(String),
    /// Redis refused the credentials.
    #[error("Redis refused authentication: {0}")]
    Auth(String),
    /// An operation did not finish in its time bound.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A write was sent and no reply came (a timeout, or the connection
    /// dropped): it may or may not have been applied.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// Redis answered with an error reply.
    #[error("Redis replied with an error: {0}")]
    Redis(String),
    /// The queue's stream holds `max_stream_len` jobs not yet acked; the
    /// add wrote nothing.
    #[error("queue full: {0}")]
    QueueFull(String),
    /// The object was closed.
    #[error("closed: {0}")]
    Closed(String),
    /// The process forked after the engine's runtime started.
    #[error("the process forked after ChasquiMQ started its runtime; create new Queue/Worker objects in the child process")]
    Forked,
    /// The feature is not available (yet, or on this server).
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A bug: an invariant of the engine broke.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error (see `spec/api.yaml`, `errors:`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::InvalidType { .. } => "invalid_type",
            Error::Encode(_) => "encode",
            Error::Decode(_) => "decode",
            Error::Connection(_) => "connection",
            Error::Auth(_) => "auth",
            Error::Timeout(_) => "timeout",
            Error::OutcomeUnknown(_) => "outcome_unknown",
            Error::Redis(_) => "redis",
            Error::QueueFull(_) => "queue_full",
            Error::Closed(_) => "closed",
            Error::Forked => "forked",
            Error::NotSupported(_) => "not_supported",
            Error::Internal(_) => "internal",
        }
    }

    /// Every code, in a fixed order (used by binding tests).
    pub const CODES: [&'static str; 14] = [
        "invalid_argument",
        "invalid_type",
        "encode",
        "decode",
        "connection",
        "auth",
        "timeout",
        "outcome_unknown",
        "redis",
        "queue_full",
        "closed",
        "forked",
        "not_supported",
        "internal",
    ];

    /// One sample error per code, for binding conversion tests.
    pub fn sample(code: &str) -> Option<Error> {
        let s = || "sample".to_string();
        Some(match code {
            "invalid_argument" => Error::invalid_argument("field", "sample"),
            "invalid_type" => Error::InvalidType {
                field: "field".into(),
                message: s(),
            },
            "encode" => Error::Encode(s()),
            "decode" => Error::Decode(s()),
            "connection" => Error::Connection(s()),
            "auth" => Error::Auth(s()),
            "timeout" => Error::Timeout(s()),
            "outcome_unknown" => Error::OutcomeUnknown(s()),
            "redis" => Error::Redis(s()),
            "queue_full" => Error::QueueFull(s()),
            "closed" => Error::Closed(s()),
            "forked" => Error::Forked,
            "not_supported" => Error::NotSupported(s()),
            "internal" => Error::Internal(s()),
            _ => return None,
        })
    }

    pub fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `note` appended to a connection or timeout
    /// message (what was tried, what to do); other errors are unchanged.
    pub fn context(self, note: impl std::fmt::Display) -> Self {
        match self {
            Error::Connection(m) => Error::Connection(format!("{m}; {note}")),
            Error::Timeout(m) => Error::Timeout(format!("{m}; {note}")),
            other => other,
        }
    }

    /// The same error naming `key` when Redis refused a command on it for
    /// holding another type than `kind` (its own reply names no key, as the
    /// scripts' check does; see `lua_expect!`). Other errors are unchanged.
    pub fn on_key(self, key: &str, kind: &str) -> Self {
        match self {
            Error::Redis(m) if m.starts_with("WRONGTYPE Operation") => Error::Redis(format!(
                "WRONGTYPE the key {key} holds another type of value, not the {kind} \
                 ChasquiMQ keeps there (another program wrote it); nothing was changed: \
                 rename or delete that key"
            )),
            other => other,
        }
    }

    /// True when retrying later may succeed (connection-level trouble).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connection(_) | Error::Timeout(_) | Error::OutcomeUnknown(_)
        )
    }

    /// The error of a write that was sent: a timeout or a dropped
    /// connection becomes `OutcomeUnknown` with `note` (what happened and
    /// how to retry safely); other errors are unchanged.
    pub fn after_send(self, note: impl std::fmt::Display) -> Self {
        match self {
            Error::Connection(m) | Error::Timeout(m) => {
                Error::OutcomeUnknown(format!("{m}; {note}"))
            }
            other => other,
        }
    }
}

impl From<FredError> for Error {
    fn from(e: FredError) -> Self {
        let details = e.details().to_string();
        match e.kind() {
            ErrorKind::Auth => Error::Auth(details),
            ErrorKind::IO => Error::Connection(tls_hint(details)),
            ErrorKind::Canceled | ErrorKind::Routing => Error::Connection(details),
            ErrorKind::Timeout => Error::Timeout(details),
            ErrorKind::Url | ErrorKind::Config => Error::invalid_argument("redis_url", details),
            ErrorKind::Backpressure => Error::Connection(details),
            // A rejected certificate (either side) means no connection.
            ErrorKind::Tls => Error::Connection(format!("TLS: {details}")),
            // CLUSTERDOWN / redirections that could not be followed: the
            // topology is changing, so trying again later may succeed.
            ErrorKind::Cluster => Error::Connection(details),
            _ => {
                // The server reports auth failures as plain error replies.
                let upper = details.to_ascii_uppercase();
                if upper.starts_with("WRONGPASS")
                    || upper.starts_with("NOAUTH")
                    || upper.contains("WRONGPASS")
                {
                    Error::Auth(details)
                } else if (upper.contains("CONNECTION") && upper.contains("CLOSED"))
                    // fred's own error when the connection is gone (down,
                    // reconnecting) and the command may not be resent.
                    || upper.starts_with("FAILED TO ROUTE COMMAND")
                {
                    Error::Connection(details)
                } else if let Some(at) = details
                    .starts_with("WRONGTYPE the key ")
                    .then(|| details.find(" script: "))
                    .flatten()
                {
                    // Our scripts' own wrong-type check names the key;
                    // the script's sha and line say nothing to a user.
                    Error::Redis(details[..at].to_string())
                } else {
                    Error::Redis(details)
                }
            }
        }
    }
}

/// fred reports a failed TLS handshake as an IO error in Debug form
/// (`Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }`);
/// say what it means and what to check.
fn tls_hint(details: String) -> String {
    let inner = |marker: &str| {
        let start = details.find(marker)? + marker.len();
        let end = details[start..].find(')').map(|i| start + i)?;
        Some(details[start..end].to_string())
    };
    if let Some(why) = inner("InvalidCertificate(") {
        format!("TLS: the server's certificate was rejected ({why}); check that tls_ca_file holds the CA that signed it and that it names the host of the URL")
    } else if let Some(alert) = inner("AlertReceived(") {
        format!("TLS: the server ended the handshake ({alert}); if it requires client certificates, pass tls_cert_file and tls_key_file")
    } else {
        details
    }
}

impl From<rmp::encode::ValueWriteError> for Error {
    fn from(e: rmp::encode::ValueWriteError) -> Self {
        Error::Encode(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_sample_with_that_code() {
        for code in Error::CODES {
            assert_eq!(Error::sample(code).unwrap().code(), code);
        }
        assert!(Error::sample("nope").is_none());
    }

    #[test]
    fn fred_kinds_map_to_codes() {
        let io = FredError::new(ErrorKind::IO, "refused");
        assert_eq!(Error::from(io).code(), "connection");
        let auth = FredError::new(ErrorKind::Auth, "bad");
        assert_eq!(Error::from(auth).code(), "auth");
        let wp = FredError::new(
            ErrorKind::Unknown,
            "WRONGPASS invalid username-password pair",
        );
        assert_eq!(Error::from(wp).code(), "auth");
        let t = FredError::new(ErrorKind::Timeout, "slow");
        assert_eq!(Error::from(t).code(), "timeout");
        let unroutable = FredError::new(ErrorKind::Unknown, "Failed to route command.");
        assert_eq!(Error::from(unroutable).code(), "connection");
        let wrong = FredError::new(
            ErrorKind::Unknown,
            "WRONGTYPE the key {chasqui:q}:dlq holds another type of value script: 1f2e, on @user_script:9.",
        );
        assert_eq!(
            Error::from(wrong).to_string(),
            "Redis replied with an error: WRONGTYPE the key {chasqui:q}:dlq holds another type of value"
        );
        let other = FredError::new(ErrorKind::Unknown, "ERR syntax");
        assert_eq!(Error::from(other).code(), "redis");
        let tls = FredError::new(ErrorKind::Tls, "bad");
        assert_eq!(Error::from(tls).code(), "connection");
        let down = FredError::new(ErrorKind::Cluster, "CLUSTERDOWN The cluster is down");
        assert_eq!(Error::from(down).code(), "connection");
    }

    #[test]
    fn tls_handshake_failures_say_what_to_check() {
        let ca = FredError::new(
            ErrorKind::IO,
            "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
        );
        let e = Error::from(ca);
        assert_eq!(e.code(), "connection");
        assert!(e.to_string().contains("(UnknownIssuer)"), "{e}");
        assert!(e.to_string().contains("tls_ca_file"), "{e}");
        let alert = FredError::new(
            ErrorKind::IO,
            "Custom { kind: InvalidData, error: AlertReceived(CertificateRequired) }",
        );
        let e = Error::from(alert);
        assert!(e.to_string().contains("(CertificateRequired)"), "{e}");
        assert!(e.to_string().contains("tls_cert_file"), "{e}");
        let refused = FredError::new(ErrorKind::IO, "Connection refused (os error 111)");
        assert_eq!(
            Error::from(refused).to_string(),
            "cannot reach Redis: Connection refused (os error 111)"
        );
    }
}
