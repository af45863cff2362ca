//! The newest messages of conversations held in process, so that chat polling (messages newer
//! than the client's last) and the friend list (each friend's latest message) need no round
//! trip once warm. A conversation's zset is tracked like the other keys: a message sent
//! through any instance drops the entry here.

use super::{NearCache, NearKey, NearVal, Ticket};
use crate::model::MessageData;
use std::sync::Arc;
use std::time::Instant;

/// The most messages of a conversation held: its newest ones.
pub const CONV_HEAD: usize = 64;

/// The newest messages of a conversation, newest first: up to [`CONV_HEAD`], and all of them
/// when `whole`.
#[derive(Debug)]
pub struct ConvHead {
    msgs: Vec<MessageData>,
    whole: bool,
    pub(super) fetched: Instant,
}

impl ConvHead {
    /// The messages with ids from `min_id` up, oldest first, at most `limit` (the oldest of
    /// them); None when older ones than those held might qualify.
    pub fn after(&self, min_id: i64, limit: usize) -> Option<Vec<MessageData>> {
        let n = self.msgs.partition_point(|m| m.id >= min_id);
        if n == self.msgs.len() && !self.whole {
            return None;
        }
        Some(self.msgs[..n].iter().rev().take(limit).cloned().collect())
    }

    /// The newest `limit` messages, oldest first; None when more are asked than held.
    pub fn latest(&self, limit: usize) -> Option<Vec<MessageData>> {
        if self.msgs.len() < limit && !self.whole {
            return None;
        }
        let n = limit.min(self.msgs.len());
        Some(self.msgs[..n].iter().rev().cloned().collect())
    }

    /// The newest message, if any.
    pub fn newest(&self) -> Option<&MessageData> {
        self.msgs.first()
    }

    /// The heap its messages take (for the near-cache's bound).
    pub(super) fn heap(&self) -> usize {
        use super::weigh::{string, vec};
        vec(&self.msgs) + self.msgs.iter().map(|m| string(&m.content)).sum::<usize>()
    }
}

impl NearCache {
    /// The newest messages between `a` and `b`, if held and fresh.
    pub fn conv(&self, a: i64, b: i64) -> Option<Arc<ConvHead>> {
        match self.lookup(NearKey::conv(a, b)) {
            Some(NearVal::Conv(e)) => Some(e),
            _ => None,
        }
    }

    /// Wraps the newest messages between `a` and `b` (newest first, at most [`CONV_HEAD`] + 1
    /// fetched: more means the conversation is longer than held), installing them unless an
    /// invalidation came after `t`.
    pub fn install_conv(
        &self,
        a: i64,
        b: i64,
        mut newest: Vec<MessageData>,
        t: Ticket,
    ) -> Arc<ConvHead> {
        let whole = newest.len() <= CONV_HEAD;
        newest.truncate(CONV_HEAD);
        let e = Arc::new(ConvHead {
            msgs: newest,
            whole,
            fetched: Instant::now(),
        });
        let key = NearKey::conv(a, b);
        if self.installable(&key, t) {
            self.entries.insert(key, NearVal::Conv(e.clone()));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(ids: &[i64], whole: bool) -> ConvHead {
        let msgs = ids
            .iter()
            .map(|id| MessageData {
                id: *id,
                from: 1,
                to: 2,
                content: id.to_string(),
            })
            .collect();
        ConvHead {
            msgs,
            whole,
            fetched: Instant::now(),
        }
    }

    fn ids(v: Option<Vec<MessageData>>) -> Option<Vec<i64>> {
        v.map(|v| v.into_iter().map(|m| m.id).collect())
    }

    #[test]
    fn polls_and_latest_from_the_head() {
        let h = head(&[50, 40, 30], false);
        assert_eq!(ids(h.after(45, 10)), Some(vec![50]));
        assert_eq!(ids(h.after(35, 10)), Some(vec![40, 50]));
        assert_eq!(ids(h.after(35, 1)), Some(vec![40]), "the oldest of them");
        assert_eq!(ids(h.after(60, 10)), Some(vec![]));
        assert_eq!(ids(h.after(30, 10)), None, "older ones may qualify");
        assert_eq!(ids(h.latest(2)), Some(vec![40, 50]));
        assert_eq!(ids(h.latest(4)), None);
        let w = head(&[50, 40, 30], true);
        assert_eq!(ids(w.after(1, 10)), Some(vec![30, 40, 50]));
        assert_eq!(ids(w.latest(1000)), Some(vec![30, 40, 50]));
        assert_eq!(w.newest().map(|m| m.id), Some(50));
        assert_eq!(ids(head(&[], true).after(1, 5)), Some(vec![]));
    }
}
