//! Snowflake ID generation with a 53-bit layout.
//!
//! IDs travel as JSON numbers, and float64/JavaScript clients decode them as doubles, so every ID
//! must stay below 2^53. The layout, from the most significant bit down:
//!
//! | bits | field                                              |
//! |------|----------------------------------------------------|
//! | 41   | milliseconds since [`EPOCH_MS`] (2024-01-01 UTC), ~69 years |
//! | 4    | node id (0..=15): 16 nodes                          |
//! | 8    | sequence within the millisecond: 256 IDs/ms = 256k IDs/s per node |
//!
//! IDs are time ordered, so the feed can page by ID. The generator never goes backwards: when the
//! wall clock steps back it keeps issuing from the last millisecond it used (borrowing sequence
//! numbers, then future milliseconds), and it can be seeded with the largest ID already stored so
//! that a restart on a machine whose clock went back cannot reissue an ID.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2024-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: i64 = 1_704_067_200_000;
pub const NODE_BITS: u32 = 4;
pub const SEQ_BITS: u32 = 8;
pub const TIME_BITS: u32 = 41;
const SHIFT: u32 = NODE_BITS + SEQ_BITS;
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;
const MAX_SEQ: i64 = (1 << SEQ_BITS) - 1;
/// The largest ID the layout can produce (2^53 - 1).
pub const MAX_ID: i64 = (1 << (TIME_BITS + SHIFT)) - 1;

/// Thread-safe snowflake generator for one node.
#[derive(Debug)]
pub struct IdGenerator {
    node: i64,
    /// (last millisecond offset used, last sequence used in it)
    state: Mutex<(i64, i64)>,
}

impl IdGenerator {
    /// Creates a generator for `node` (0..=15).
    pub fn new(node: u16) -> Result<Self, String> {
        if node > MAX_NODE {
            return Err(format!(
                "ids.node_id must be between 0 and {MAX_NODE}, got {node}"
            ));
        }
        Ok(Self {
            node: node as i64,
            state: Mutex::new((-1, MAX_SEQ)),
        })
    }

    /// Never issue an ID at or below `id` (e.g. the largest one already stored).
    pub fn observe(&self, id: i64) {
        if id <= 0 {
            return;
        }
        let ms = id >> SHIFT;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if ms > st.0 {
            *st = (ms, MAX_SEQ);
        }
    }

    /// The next ID.
    pub fn next_id(&self) -> i64 {
        let now = now_ms() - EPOCH_MS;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, seq) = *st;
        let (ms, seq) = if now > last {
            (now, 0)
        } else if seq < MAX_SEQ {
            // Same millisecond, or the clock stepped back: keep counting on the last one.
            (last, seq + 1)
        } else {
            // Sequence exhausted: borrow the next millisecond.
            (last + 1, 0)
        };
        *st = (ms, seq);
        (ms << SHIFT) | (self.node << SEQ_BITS) | seq
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The Unix millisecond at which `id` was issued.
pub fn time_ms(id: i64) -> i64 {
    (id >> SHIFT) + EPOCH_MS
}

/// The smallest ID that can be issued at Unix millisecond `ms`: every ID issued strictly before
/// `ms` is below it.
pub fn floor_for_ms(ms: i64) -> i64 {
    let off = (ms - EPOCH_MS).clamp(0, (1 << TIME_BITS) - 1);
    off << SHIFT
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_increasing_and_below_2_pow_53() {
        let g = IdGenerator::new(15).unwrap();
        let mut prev = 0;
        let mut seen = HashSet::new();
        for _ in 0..300_000 {
            let id = g.next_id();
            assert!(id > prev, "{id} after {prev}");
            assert!(id < (1i64 << 53));
            assert!(seen.insert(id));
            prev = id;
        }
        assert_eq!((prev >> SEQ_BITS) & 0xF, 15);
    }

    #[test]
    fn survives_a_clock_step_back() {
        let g = IdGenerator::new(1).unwrap();
        // Pretend an ID from an hour in the future was already issued (the clock then stepped back).
        let future = (now_ms() - EPOCH_MS + 3_600_000) << SHIFT;
        g.observe(future);
        let a = g.next_id();
        let b = g.next_id();
        assert!(a > future && b > a);
        assert!(time_ms(a) >= time_ms(future));
    }

    #[test]
    fn time_round_trips() {
        let g = IdGenerator::new(0).unwrap();
        let before = now_ms();
        let id = g.next_id();
        let t = time_ms(id);
        assert!(t >= before && t <= now_ms() + 1);
        assert!(floor_for_ms(t) <= id && id < floor_for_ms(t + 1));
        assert!(IdGenerator::new(16).is_err());
    }
}
