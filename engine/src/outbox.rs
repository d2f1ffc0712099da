//! The consumer's outbox: settled outcomes and events waiting for the
//! writer's next settle script call.

use bytes::Bytes;

#[derive(Default)]
pub(crate) struct Outbox {
    pub(crate) active: Vec<(String, String, u32)>,
    pub(crate) ok: Vec<OkRec>,
    pub(crate) retry: Vec<RetryRec>,
    pub(crate) dlq: Vec<DlqRec>,
    pub(crate) drained: bool,
}

pub(crate) struct OkRec {
    pub(crate) stream_id: String,
    pub(crate) job_id: String,
    pub(crate) name: String,
    pub(crate) attempt: u32,
    pub(crate) duration_us: u64,
    pub(crate) result: Option<Bytes>,
}

pub(crate) struct RetryRec {
    pub(crate) stream_id: String,
    pub(crate) job_id: String,
    pub(crate) name: String,
    pub(crate) attempt: u32,
    pub(crate) duration_us: u64,
    pub(crate) reason: String,
    pub(crate) member: Vec<u8>,
    pub(crate) backoff_ms: u64,
}

pub(crate) struct DlqRec {
    pub(crate) stream_id: String,
    pub(crate) job_id: String,
    pub(crate) name: String,
    pub(crate) attempt: u32,
    pub(crate) duration_us: Option<u64>,
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
    pub(crate) d: Bytes,
    pub(crate) failed_reason: String,
}

impl Outbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.active.is_empty()
            && self.ok.is_empty()
            && self.retry.is_empty()
            && self.dlq.is_empty()
            && !self.drained
    }

    pub(crate) fn len(&self) -> usize {
        self.active.len() + self.ok.len() + self.retry.len() + self.dlq.len()
    }

    /// Takes the next flush: every event, and at most `max` outcomes in
    /// their order (completions, retries, dead letters). A `drained` event
    /// stays behind until the outcomes before it are taken.
    pub(crate) fn take_flush(&mut self, max: usize) -> Outbox {
        if self.ok.len() + self.retry.len() + self.dlq.len() <= max {
            return std::mem::take(self);
        }
        let n = self.ok.len().min(max);
        let ok: Vec<OkRec> = self.ok.drain(..n).collect();
        let room = max - n;
        let n = self.retry.len().min(room);
        let retry: Vec<RetryRec> = self.retry.drain(..n).collect();
        let n = self.dlq.len().min(room - n);
        let dlq: Vec<DlqRec> = self.dlq.drain(..n).collect();
        Outbox {
            active: std::mem::take(&mut self.active),
            ok,
            retry,
            dlq,
            drained: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(i: usize) -> OkRec {
        OkRec {
            stream_id: format!("{i}-0"),
            job_id: format!("j{i}"),
            name: "n".into(),
            attempt: 1,
            duration_us: 1,
            result: None,
        }
    }

    fn dlq(i: usize) -> DlqRec {
        DlqRec {
            stream_id: format!("{i}-1"),
            job_id: format!("d{i}"),
            name: "n".into(),
            attempt: 1,
            duration_us: None,
            reason: "unrecoverable",
            detail: String::new(),
            d: Bytes::new(),
            failed_reason: String::new(),
        }
    }

    #[test]
    fn a_small_outbox_is_taken_whole() {
        let mut ob = Outbox {
            ok: (0..3).map(ok).collect(),
            drained: true,
            ..Default::default()
        };
        let taken = ob.take_flush(10);
        assert_eq!(taken.len(), 3);
        assert!(taken.drained);
        assert!(ob.is_empty());
    }

    #[test]
    fn a_big_outbox_goes_in_bounded_flushes_in_order() {
        let mut ob = Outbox {
            active: vec![("j0".into(), "n".into(), 1)],
            ok: (0..5).map(ok).collect(),
            dlq: (0..4).map(dlq).collect(),
            drained: true,
            ..Default::default()
        };
        let first = ob.take_flush(4);
        assert_eq!(first.active.len(), 1);
        assert_eq!(first.ok.len(), 4);
        assert!(first.dlq.is_empty());
        // `drained` follows the outcomes before it.
        assert!(!first.drained);
        let second = ob.take_flush(4);
        assert_eq!(
            second
                .ok
                .iter()
                .map(|r| r.job_id.as_str())
                .collect::<Vec<_>>(),
            ["j4"]
        );
        assert_eq!(second.dlq.len(), 3);
        assert!(!second.drained);
        let third = ob.take_flush(4);
        assert_eq!(third.dlq.len(), 1);
        assert!(third.drained);
        assert!(ob.is_empty());
    }
}
