//! Hands delivered jobs from the engine's tasks to the language layer.
//!
//! Two ways to take them: `next().await` (an async wait; one future per
//! batch) or `poll()` plus a waker. With the waker the language's event loop
//! sleeps in its own selector on a file descriptor the waker writes to, and
//! takes batches with a plain synchronous call when woken: no engine thread
//! ever waits for the Python GIL or schedules a callback on the loop.

use crate::consumer::Delivery;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

type Waker = Arc<dyn Fn() + Send + Sync>;

pub struct Handoff {
    queue: Mutex<Vec<Delivery>>,
    notify: Notify,
    /// Tasks that still push (reader, claimer); at 0 the handoff is closed.
    feeders: AtomicUsize,
    /// The language is asleep waiting for the waker.
    armed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Handoff {
    pub fn new(feeders: usize) -> Handoff {
        Handoff {
            queue: Mutex::new(Vec::new()),
            notify: Notify::new(),
            feeders: AtomicUsize::new(feeders),
            armed: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    pub fn set_waker(&self, waker: Waker) {
        *self.waker.lock().unwrap() = Some(waker);
    }

    fn wake(&self) {
        self.notify.notify_one();
        if self.armed.swap(false, Ordering::AcqRel) {
            let waker = self.waker.lock().unwrap().clone();
            if let Some(w) = waker {
                w();
            }
        }
    }

    pub fn push(&self, batch: Vec<Delivery>) {
        if batch.is_empty() {
            return;
        }
        self.queue.lock().unwrap().extend(batch);
        self.wake();
    }

    /// A feeder task ended; the last one closes the handoff.
    pub fn feeder_done(&self) {
        if self.feeders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.wake();
        }
    }

    fn closed(&self) -> bool {
        self.feeders.load(Ordering::Acquire) == 0
    }

    /// Everything waiting now; `Some(empty)` when nothing is; `None` once
    /// closed and drained.
    pub fn take(&self) -> Option<Vec<Delivery>> {
        let batch = std::mem::take(&mut *self.queue.lock().unwrap());
        if batch.is_empty() && self.closed() {
            // Close is final, but a last push may have raced it.
            let late = std::mem::take(&mut *self.queue.lock().unwrap());
            return if late.is_empty() { None } else { Some(late) };
        }
        Some(batch)
    }

    /// `take`, and when nothing is waiting, arm the waker so the next push
    /// (or the close) calls it once.
    pub fn poll(&self) -> Option<Vec<Delivery>> {
        let got = self.take()?;
        if !got.is_empty() {
            return Some(got);
        }
        self.armed.store(true, Ordering::Release);
        // A push between the take and the arm saw `armed == false`: look again.
        match self.take() {
            Some(late) if !late.is_empty() => {
                self.armed.store(false, Ordering::Release);
                Some(late)
            }
            Some(_) => Some(Vec::new()),
            None => None,
        }
    }

    /// Waits for the next batch; `None` once closed and drained.
    pub async fn next(&self) -> Option<Vec<Delivery>> {
        loop {
            let notified = self.notify.notified();
            match self.take() {
                Some(b) if b.is_empty() => notified.await,
                other => return other,
            }
        }
    }
}
