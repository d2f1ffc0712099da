//! A throwaway redis-server per test, started by `tools/redisproc.py`, the
//! spawner every suite shares (CONTRIBUTING.md says why one program): it
//! chooses the port (retrying when another process wins it), never 6379.

#![allow(dead_code)]

use fred::prelude::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

pub struct RedisServer {
    pub port: u16,
    url: String,
    /// Open while the server runs: closing it tells the spawner to stop
    /// the server and remove its directory.
    stdin: Option<ChildStdin>,
    child: Child,
}

impl RedisServer {
    /// A plain server (`--save '' --appendonly no`).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// `args` go to the spawner: its own flags (`--tls`, `--cluster N`),
    /// then `--` and redis-server's (`["--", "--requirepass", "pw"]`).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/redisproc.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be on PATH: tools/redisproc.py starts the test redis-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.wait();
            panic!("{} printed no address: {line:?}", script.display())
        });
        if let Some(e) = info.get("error") {
            let _ = child.wait();
            panic!(
                "redis-server did not start: {}",
                e.as_str().unwrap_or_default()
            );
        }
        RedisServer {
            port: info["port"].as_u64().unwrap() as u16,
            url: info["url"].as_str().unwrap().to_string(),
            stdin: child.stdin.take(),
            child,
        }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // End of file on the spawner's stdin: it stops the server, removes
        // its directory and exits; waiting means no server outlives a test.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A plain fred client for asserting on what is stored in Redis.
pub async fn raw(url: &str) -> Client {
    let c = Client::new(Config::from_url(url).unwrap(), None, None, None);
    c.init().await.unwrap();
    c
}
