//! The job lifecycle through the engine API against a real redis-server.

mod common;

use chasquimq::{
    AddOptions, Backoff, BackoffKind, Consumer, ConsumerConfig, Envelope, FailKind, NewJob,
    Outcome, Producer, ProducerConfig, RetryOverride,
};
use common::{raw, RedisServer};
use fred::prelude::*;
use std::time::Duration;

fn job(name: &str, payload: &[u8]) -> NewJob {
    NewJob {
        name: name.into(),
        payload: payload.to_vec(),
        options: AddOptions::default(),
    }
}

fn consumer_cfg(queue: &str) -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new(queue);
    cfg.read_block_ms = 200;
    cfg
}

async fn next(c: &Consumer) -> Vec<chasquimq::Delivery> {
    tokio::time::timeout(Duration::from_secs(10), c.next_batch())
        .await
        .expect("a batch in time")
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_consume_ack_leaves_nothing_behind() {
    let redis = RedisServer::start();
    let p = Producer::new(&redis.url(), ProducerConfig::new("q1")).unwrap();
    let a = p.add(job("send", &[0x81, 0xa1, 0x61, 0x01])).await.unwrap();
    let b = p
        .add_bulk(vec![job("", &[0x01]), job("b", &[0x02])])
        .await
        .unwrap();
    assert_eq!(a.id.len(), 26);
    assert_eq!(b.len(), 2);

    let c = Consumer::start(&redis.url(), consumer_cfg("q1"))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(next(&c).await);
    }
    let first = got.iter().find(|d| d.job_id == a.id).unwrap();
    assert_eq!(
        (first.name.as_str(), first.attempt, &first.payload[..]),
        ("send", 1, &[0x81, 0xa1, 0x61, 0x01][..])
    );
    c.settle(
        got.iter()
            .map(|d| Outcome::Completed {
                token: d.token,
                result: None,
                duration_us: 5,
            })
            .collect(),
    );
    c.close().await;

    let r = raw(&redis.url()).await;
    let len: u64 = r.xlen("{chasqui:q1}:stream").await.unwrap();
    assert_eq!(len, 0, "acked entries are deleted");
    let pending: Value = r
        .xpending("{chasqui:q1}:stream", "default", ())
        .await
        .unwrap();
    assert_eq!(pending.into_array()[0].as_u64(), Some(0));
    let events: Vec<(String, std::collections::HashMap<String, String>)> = r
        .xrange("{chasqui:q1}:events", "-", "+", None)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(_, f)| f["e"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "active").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "completed").count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_through_delayed_then_reach_the_dlq() {
    let redis = RedisServer::start();
    let p = Producer::new(&redis.url(), ProducerConfig::new("q2")).unwrap();
    let backoff = Backoff {
        kind: BackoffKind::Fixed,
        delay_ms: 50,
        max_delay_ms: None,
        multiplier: None,
        jitter_ms: Some(0),
    };
    let mut j = job("flaky", &[0xc0]);
    j.options.retry = Some(RetryOverride {
        max_attempts: Some(3),
        backoff: Some(backoff.clone()),
        timeout_ms: None,
    });
    let added = p.add(j).await.unwrap();

    let c = Consumer::start(&redis.url(), consumer_cfg("q2"))
        .await
        .unwrap();
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let batch = next(&c).await;
        assert_eq!(batch.len(), 1);
        attempts.push(batch[0].attempt);
        c.settle(vec![Outcome::Failed {
            token: batch[0].token,
            reason: "boom".into(),
            kind: FailKind::Retryable,
            duration_us: 1,
        }]);
    }
    assert_eq!(attempts, vec![1, 2, 3]);
    c.close().await;

    let dlq = p.peek_dlq(10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].reason, "retries_exhausted");
    assert_eq!(dlq[0].detail.as_deref(), Some("boom"));
    assert_eq!(dlq[0].name, "flaky");
    let env = Envelope::decode(&dlq[0].payload).unwrap();
    assert_eq!(env.id, added.id);
    assert_eq!(env.retry.unwrap().backoff, Some(backoff));

    // Replay resets the attempt counter and keeps the override.
    assert_eq!(p.replay_dlq(10).await.unwrap(), 1);
    assert!(p.peek_dlq(10).await.unwrap().is_empty());
    let c = Consumer::start(&redis.url(), consumer_cfg("q2"))
        .await
        .unwrap();
    let batch = next(&c).await;
    assert_eq!(
        (batch[0].job_id.as_str(), batch[0].attempt),
        (added.id.as_str(), 1)
    );
    c.settle(vec![Outcome::Failed {
        token: batch[0].token,
        reason: "fatal".into(),
        kind: FailKind::Unrecoverable,
        duration_us: 1,
    }]);
    c.close().await;
    let dlq = p.peek_dlq(10).await.unwrap();
    assert_eq!(dlq[0].reason, "unrecoverable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_entries_go_to_the_dlq_without_a_handler() {
    let redis = RedisServer::start();
    let r = raw(&redis.url()).await;
    let c = Consumer::start(&redis.url(), consumer_cfg("q3"))
        .await
        .unwrap();
    let _: String = r
        .xadd(
            "{chasqui:q3}:stream",
            false,
            None,
            "*",
            vec![("d", "not msgpack")],
        )
        .await
        .unwrap();
    let _: String = r
        .xadd("{chasqui:q3}:stream", false, None, "*", vec![("x", "no d")])
        .await
        .unwrap();
    let p = Producer::new(&redis.url(), ProducerConfig::new("q3")).unwrap();
    p.add(job("ok", &[0x01])).await.unwrap();
    let batch = next(&c).await;
    assert_eq!(batch.len(), 1, "only the valid entry reaches the handler");
    c.settle(vec![Outcome::Completed {
        token: batch[0].token,
        result: None,
        duration_us: 1,
    }]);
    c.close().await;
    let reasons: Vec<String> = p
        .peek_dlq(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, vec!["decode_failed", "malformed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_are_promoted_by_the_consumer() {
    let redis = RedisServer::start();
    let p = Producer::new(&redis.url(), ProducerConfig::new("q4")).unwrap();
    let mut j = job("later", &[0x01]);
    j.options.delay_ms = Some(150);
    let t0 = std::time::Instant::now();
    p.add(j).await.unwrap();
    let c = Consumer::start(&redis.url(), consumer_cfg("q4"))
        .await
        .unwrap();
    let batch = next(&c).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "delivered early: {:?}",
        t0.elapsed()
    );
    assert_eq!(batch[0].name, "later");
    c.settle(vec![Outcome::Completed {
        token: batch[0].token,
        result: None,
        duration_us: 1,
    }]);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_dead_consumer_are_claimed_with_their_delivery_count() {
    let redis = RedisServer::start();
    let p = Producer::new(&redis.url(), ProducerConfig::new("q5")).unwrap();
    let added = p.add(job("crashy", &[0x01])).await.unwrap();
    let mut cfg = consumer_cfg("q5");
    cfg.claim_min_idle_ms = 300;
    let dead = Consumer::start(&redis.url(), cfg.clone()).await.unwrap();
    let batch = next(&dead).await;
    assert_eq!(batch[0].attempt, 1);
    // The first consumer "dies": it stops without settling or closing.
    dead.stop();
    drop(dead);

    let alive = Consumer::start(&redis.url(), cfg).await.unwrap();
    let batch = next(&alive).await;
    assert_eq!(
        (batch[0].job_id.as_str(), batch[0].attempt),
        (added.id.as_str(), 2)
    );
    alive.settle(vec![Outcome::Completed {
        token: batch[0].token,
        result: None,
        duration_us: 1,
    }]);
    alive.close().await;
    let r = raw(&redis.url()).await;
    let len: u64 = r.xlen("{chasqui:q5}:stream").await.unwrap();
    assert_eq!(len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_a_typed_error_in_bounded_time() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let t0 = std::time::Instant::now();
    let mut cfg = consumer_cfg("q6");
    cfg.start_timeout_ms = 0; // one attempt; the wait is tested below
    let e = Consumer::start(&url, cfg).await.err().unwrap();
    assert_eq!(e.code(), "connection");
    assert!(e.to_string().contains("refused the connection"), "{e}");
    // With a budget, start retries for it, then says how it tried.
    let mut cfg = consumer_cfg("q6");
    cfg.start_timeout_ms = 800;
    let t1 = std::time::Instant::now();
    let e = Consumer::start(&url, cfg).await.err().unwrap();
    assert!(
        t1.elapsed() >= Duration::from_millis(750),
        "{:?}",
        t1.elapsed()
    );
    assert!(e.to_string().contains("start_timeout_ms 800"), "{e}");
    // A cancelled wait ends at once with `closed`.
    let cancel = chasquimq::CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c2.cancel();
    });
    let t2 = std::time::Instant::now();
    let e = Consumer::start_until(&url, consumer_cfg("q6"), cancel)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), "closed");
    assert!(t2.elapsed() < Duration::from_secs(3));
    let p = Producer::new(&url, ProducerConfig::new("q6")).unwrap();
    let e = p.add(job("x", &[0x01])).await.unwrap_err();
    assert_eq!(e.code(), "connection");
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(
        Producer::new("http://nope", ProducerConfig::new("q"))
            .err()
            .unwrap()
            .code(),
        "invalid_argument"
    );
}
