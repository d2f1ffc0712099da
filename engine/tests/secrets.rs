//! The password of a Redis URL never reaches a log record or an error.
//! Everything the engine (tracing), fred and rustls (log) emit at trace
//! level is captured while connecting with a password: a full add / consume
//! / settle / close, refused credentials, an unreachable server, a bad URL
//! and TLS set-ups that fail. No record and no error may hold the password,
//! raw or percent-encoded.

mod common;

use chasquimq::{AddOptions, Consumer, ConsumerConfig, NewJob, Outcome, Producer, ProducerConfig};
use common::RedisServer;
use fred::prelude::*;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

const SECRET: &str = "Zq8-s3cr3t:p@ss/w#rd%";
const ENC: &str = "Zq8-s3cr3t%3Ap%40ss%2Fw%23rd%25";

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn keep(line: String) {
    RECORDS.lock().unwrap().push(line);
}

struct LogCapture;

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        keep(format!(
            "{} {}: {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

struct TraceCapture;

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for TraceCapture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut s = format!("span {}", span.metadata().name());
        span.record(&mut Fields(&mut s));
        keep(s);
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut s = String::from("record");
        values.record(&mut Fields(&mut s));
        keep(s);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut s = format!(
            "{} {}:",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut s));
        keep(s);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn clean(what: &str, text: &str) {
    for s in [SECRET, ENC, "s3cr3t"] {
        assert!(!text.contains(s), "{what} shows the password: {text}");
    }
}

fn check_error(what: &str, e: &chasquimq::Error) {
    clean(what, &e.to_string());
    clean(what, &format!("{e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_logs_or_errors() {
    log::set_logger(&LogCapture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    tracing::subscriber::set_global_default(TraceCapture).unwrap();

    let redis = RedisServer::start();
    let admin = Client::new(Config::from_url(&redis.url()).unwrap(), None, None, None);
    admin.init().await.unwrap();
    let _: Value = admin
        .custom(
            fred::cmd!("ACL"),
            vec![
                "SETUSER",
                "app",
                "on",
                &format!(">{SECRET}"),
                "~*",
                "&*",
                "+@all",
            ],
        )
        .await
        .unwrap();
    let base = format!("127.0.0.1:{}", redis.port);

    // A whole round trip with the right password.
    let url = format!("redis://app:{ENC}@{base}/0");
    let p = Producer::new(&url, ProducerConfig::new("sq")).unwrap();
    p.add(NewJob {
        name: "x".into(),
        payload: vec![0x01],
        options: AddOptions::default(),
    })
    .await
    .unwrap();
    let mut cfg = ConsumerConfig::new("sq");
    cfg.read_block_ms = 100;
    let c = Consumer::start(&url, cfg).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), c.next_batch())
        .await
        .unwrap()
        .unwrap();
    c.settle(
        batch
            .iter()
            .map(|d| Outcome::Completed {
                token: d.token,
                result: None,
                duration_us: 1,
            })
            .collect(),
    );
    c.close().await;
    p.close().await;

    // Refused credentials, an unknown user, nothing listening, bad URLs.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let failing = [
        format!("redis://app:wrong{ENC}@{base}/0"),
        format!("redis://nobody:{ENC}@{base}/0"),
        format!("redis://app:{ENC}@127.0.0.1:{port}/0"),
        format!("rediss://app:{ENC}@{base}/0?tls_ca_file=/nonexistent/ca.pem"),
        format!("rediss://app:{ENC}@{base}/0?tls_ca_file=/etc/hostname"),
        format!("rediss://app:{ENC}@{base}/0?tls_bogus=1"),
        format!("redis://app:{ENC}@{base}/0?tls_ca_file=/x.pem"),
        format!("redis://app:{ENC}@127.0.0.1:99999/0"),
        format!("redis://app:{ENC}@/0"),
        format!("redis-cluster://app:{ENC}@{base}?node=nohostport"),
    ];
    for url in &failing {
        let t0 = std::time::Instant::now();
        match Producer::new(url, ProducerConfig::new("sq")) {
            Err(e) => check_error(url, &e),
            Ok(p) => {
                let e = tokio::time::timeout(
                    Duration::from_secs(10),
                    p.add(NewJob {
                        name: "x".into(),
                        payload: vec![0x01],
                        options: AddOptions::default(),
                    }),
                )
                .await
                .expect("fails in time")
                .expect_err(url);
                check_error(url, &e);
            }
        }
        // A short start budget: the retry warnings are logged (and checked
        // for secrets below) without spending the default 30 s.
        let mut cfg = ConsumerConfig::new("sq");
        cfg.start_timeout_ms = 300;
        if let Err(e) = Consumer::start(url, cfg).await {
            check_error(url, &e);
        }
        // Refusals are immediate: never the connect timeout.
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{url}: {:?}",
            t0.elapsed()
        );
    }
    let records = RECORDS.lock().unwrap().clone();
    assert!(
        records.len() > 20,
        "the capture saw the clients' records ({} lines)",
        records.len()
    );
    for line in &records {
        clean("a log record", line);
    }
}
