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
/// when `whole`. Held in two allocations whatever their number: each message's id and where
/// its text lies, and the texts one after another (a message's sender is one bit: a
/// conversation has two people).
#[derive(Debug)]
pub struct ConvHead {
    msgs: Box<[Held]>,
    text: Box<str>,
    /// The two people, the lower id first.
    people: (i64, i64),
    /// Bit i set: the i-th message was sent by the higher id.
    from_high: u64,
    whole: bool,
    pub(super) fetched: Instant,
}

/// A held message: its id and where its text lies.
#[derive(Debug)]
struct Held {
    id: i64,
    start: u32,
    end: u32,
}

impl ConvHead {
    /// Holds `newest` (newest first, at most [`CONV_HEAD`]), messages between `a` and `b`.
    fn new(a: i64, b: i64, newest: &[MessageData], whole: bool) -> Self {
        let people = (a.min(b), a.max(b));
        let mut text = String::with_capacity(newest.iter().map(|m| m.content.len()).sum());
        let mut from_high = 0u64;
        let msgs = newest
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if m.from == people.1 && people.0 != people.1 {
                    from_high |= 1 << i;
                }
                let start = text.len() as u32;
                text.push_str(&m.content);
                Held {
                    id: m.id,
                    start,
                    end: text.len() as u32,
                }
            })
            .collect();
        ConvHead {
            msgs,
            text: text.into_boxed_str(),
            people,
            from_high,
            whole,
            fetched: Instant::now(),
        }
    }

    /// The i-th newest message.
    fn message(&self, i: usize) -> MessageData {
        let h = &self.msgs[i];
        let (from, to) = if self.from_high >> i & 1 == 1 {
            (self.people.1, self.people.0)
        } else {
            (self.people.0, self.people.1)
        };
        MessageData {
            id: h.id,
            from,
            to,
            content: self.text[h.start as usize..h.end as usize].to_owned(),
        }
    }

    /// The messages with ids from `min_id` up, oldest first, at most `limit` (the oldest of
    /// them); None when older ones than those held might qualify.
    pub fn after(&self, min_id: i64, limit: usize) -> Option<Vec<MessageData>> {
        let n = self.msgs.partition_point(|m| m.id >= min_id);
        if n == self.msgs.len() && !self.whole {
            return None;
        }
        Some((0..n).rev().take(limit).map(|i| self.message(i)).collect())
    }

    /// The newest `limit` messages, oldest first; None when more are asked than held.
    pub fn latest(&self, limit: usize) -> Option<Vec<MessageData>> {
        if self.msgs.len() < limit && !self.whole {
            return None;
        }
        let n = limit.min(self.msgs.len());
        Some((0..n).rev().map(|i| self.message(i)).collect())
    }

    /// The newest message, if any.
    pub fn newest(&self) -> Option<MessageData> {
        (!self.msgs.is_empty()).then(|| self.message(0))
    }

    /// The heap its messages take (for the near-cache's bound).
    pub(super) fn heap(&self) -> usize {
        use super::weigh::slice;
        slice(&self.msgs) + slice(self.text.as_bytes())
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
    pub fn install_conv(&self, a: i64, b: i64, newest: &[MessageData], t: Ticket) -> Arc<ConvHead> {
        let whole = newest.len() <= CONV_HEAD;
        let e = Arc::new(ConvHead::new(
            a,
            b,
            &newest[..newest.len().min(CONV_HEAD)],
            whole,
        ));
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
        let msgs: Vec<MessageData> = ids
            .iter()
            .map(|id| MessageData {
                id: *id,
                from: 1,
                to: 2,
                content: id.to_string(),
            })
            .collect();
        ConvHead::new(1, 2, &msgs, whole)
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

    #[test]
    fn messages_come_back_as_they_were_held() {
        let m = |id: i64, from: i64, to: i64, content: &str| MessageData {
            id,
            from,
            to,
            content: content.into(),
        };
        // newest first, both ways, empty and non-ASCII texts
        let msgs = vec![
            m(9, 30, 4, "最新"),
            m(8, 4, 30, ""),
            m(7, 4, 30, "hi \"there\""),
            m(6, 30, 4, "x"),
        ];
        for (a, b) in [(4, 30), (30, 4)] {
            let h = ConvHead::new(a, b, &msgs, true);
            assert_eq!(h.newest(), Some(msgs[0].clone()));
            let mut oldest_first = msgs.clone();
            oldest_first.reverse();
            assert_eq!(h.latest(10), Some(oldest_first.clone()));
            assert_eq!(h.after(7, 10), Some(oldest_first[1..].to_vec()));
        }
        // a conversation with oneself
        let own = vec![m(2, 5, 5, "note"), m(1, 5, 5, "to self")];
        let h = ConvHead::new(5, 5, &own, true);
        assert_eq!(h.latest(2), Some(vec![own[1].clone(), own[0].clone()]));
        assert_eq!(ConvHead::new(1, 2, &[], true).newest(), None);
    }
}
