//! The SETTLE script called directly, against a real redis-server: which
//! entries its deletes reach, and a retried flush writing nothing twice.

mod common;

use chasquimq::scripts::SETTLE;
use common::{raw, RedisServer};
use fred::prelude::*;
use std::collections::HashMap;

const STREAM: &str = "{chasqui:s}:stream";
const EVENTS: &str = "{chasqui:s}:events";

/// Adds `n` entries (`d` = i) and returns their ids.
async fn add(r: &Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id: String = r
            .xadd(STREAM, false, None, "*", vec![("d", i.to_string())])
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// Delivers every new entry to consumer `c` of group `default`.
async fn read_all(r: &Client) {
    let _: Value = r
        .xreadgroup("default", "c", Some(1000), None, false, STREAM, ">")
        .await
        .unwrap();
}

/// Runs SETTLE with one `ok` record per id (job id `j<id>`, name `n`,
/// attempt 1, `active` folded in); `result` is stored for the first one.
async fn settle_ok(r: &Client, ids: &[&str], result: Option<&str>) -> i64 {
    let mut keys: Vec<String> = vec![
        STREAM.into(),
        "{chasqui:s}:delayed".into(),
        "{chasqui:s}:dlq".into(),
        EVENTS.into(),
    ];
    let mut args: Vec<Value> = ["default", "1", "0", "100000", "100000", "60", "0"]
        .iter()
        .map(|s| Value::from(*s))
        .collect();
    args.push(Value::from(ids.len() as i64));
    for (k, id) in ids.iter().enumerate() {
        args.push(Value::from(*id));
        args.push(Value::from(format!("j{id}")));
        args.push(Value::from("n"));
        args.push(Value::from(1));
        args.push(Value::from(7));
        match result.filter(|_| k == 0) {
            Some(v) => {
                keys.push(format!("{{chasqui:s}}:result:j{id}"));
                args.push(Value::from(((keys.len() - 4) * 2 + 1) as i64));
                args.push(Value::from(v));
            }
            None => {
                args.push(Value::from(1));
                args.push(Value::from(""));
            }
        }
    }
    for section_count in ["0", "0", "0"] {
        args.push(Value::from(section_count));
    }
    r.eval(SETTLE, keys, args).await.unwrap()
}

async fn remaining(r: &Client) -> Vec<String> {
    let entries: Vec<(String, HashMap<String, String>)> =
        r.xrange(STREAM, "-", "+", None).await.unwrap();
    entries.into_iter().map(|(id, _)| id).collect()
}

async fn events(r: &Client) -> Vec<(String, String)> {
    let entries: Vec<(String, HashMap<String, String>)> =
        r.xrange(EVENTS, "-", "+", None).await.unwrap();
    entries
        .into_iter()
        .map(|(_, f)| (f["e"].clone(), f["id"].clone()))
        .collect()
}

/// A server with `n` entries in the stream, all delivered to consumer `c`.
async fn delivered(n: usize) -> (RedisServer, Client, Vec<String>) {
    let redis = RedisServer::start();
    let r = raw(&redis.url()).await;
    let _: Value = r.xgroup_create(STREAM, "default", "0", true).await.unwrap();
    let ids = add(&r, n).await;
    read_all(&r).await;
    (redis, r, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_reach_exactly_the_acked_entries() {
    let (_redis, r, ids) = delivered(5).await;

    // 1 and 2 finish while 0 (older) still runs: only they go.
    assert_eq!(settle_ok(&r, &[&ids[1], &ids[2]], None).await, 2);
    assert_eq!(
        remaining(&r).await,
        [ids[0].clone(), ids[3].clone(), ids[4].clone()]
    );

    // Entry 5 arrives and is not read yet.
    let later = add(&r, 1).await;
    // 0 finishes: the oldest pending is now 3, everything before it goes.
    assert_eq!(settle_ok(&r, &[&ids[0]], None).await, 1);
    assert_eq!(
        remaining(&r).await,
        [ids[3].clone(), ids[4].clone(), later[0].clone()]
    );

    // 3 and 4 finish with nothing else pending: the cut is just past 4,
    // so the unread entry 5 stays.
    assert_eq!(settle_ok(&r, &[&ids[3], &ids[4]], None).await, 2);
    assert_eq!(remaining(&r).await, later);
    let pending: Value = r.xpending(STREAM, "default", ()).await.unwrap();
    assert_eq!(pending.into_array()[0].as_u64(), Some(0));

    // Each run's `active` (folded in) comes right before its `completed`.
    let order: Vec<String> = [1, 2, 0, 3, 4]
        .iter()
        .map(|&k| format!("j{}", ids[k]))
        .collect();
    let want: Vec<(String, String)> = order
        .iter()
        .flat_map(|j| {
            [
                ("active".into(), j.clone()),
                ("completed".into(), j.clone()),
            ]
        })
        .collect();
    assert_eq!(events(&r).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_flush_writes_no_event_or_result_twice() {
    let (_redis, r, ids) = delivered(2).await;
    let both = [ids[0].as_str(), ids[1].as_str()];
    assert_eq!(settle_ok(&r, &both, Some("\u{1}")).await, 2);
    let first = events(&r).await;
    assert_eq!(first.len(), 4);
    let result_key = format!("{{chasqui:s}}:result:j{}", ids[0]);
    let ttl: i64 = r.ttl(&result_key).await.unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");

    // The reply was lost and the writer sends the same flush again: nothing
    // was pending any more, so nothing is written.
    let _: () = r.del(&result_key).await.unwrap();
    assert_eq!(settle_ok(&r, &both, Some("\u{1}")).await, 0);
    assert_eq!(events(&r).await, first);
    let exists: i64 = r.exists(&result_key).await.unwrap();
    assert_eq!(exists, 0, "the result is not written again");
    assert!(remaining(&r).await.is_empty());
}
