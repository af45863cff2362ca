//! A probe of the machine's speed at one moment (`bench-baseline --probe`), for the runner to
//! record beside its figures. This machine's cores and memory are shared, and runs of the same
//! code have moved by a quarter within an hour (bench/NOTES.md): two runs of the runner compare
//! only with the machine's state beside each.
//!
//! Three figures, each on one thread, about a second in all:
//! - `compute_ns`: a step of a dependent integer chain held in registers: the core's own speed
//!   (its clock, its share of the host);
//! - `chase_ns`: a read at a random place in 256 MiB, each waiting for the one before: memory
//!   latency with its TLB misses, what a near-cache lookup waits for;
//! - `gather_gbs`: 110 pieces of 560 bytes lying apart in those 256 MiB copied into one buffer,
//!   as a favorite list's cards are: memory throughput with the misses overlapped.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// What one probe measured.
pub struct Probe {
    compute_ns: f64,
    chase_ns: f64,
    gather_gbs: f64,
}

impl Probe {
    /// One line of JSON (the runner keeps it beside the run's figures).
    pub fn json(&self) -> String {
        format!(
            "{{\"compute_ns\":{:.3},\"chase_ns\":{:.1},\"gather_gbs\":{:.2}}}",
            self.compute_ns, self.chase_ns, self.gather_gbs
        )
    }
}

/// The memory read at random: larger than any cache, about the near-cache's size.
const ARENA: usize = 256 << 20;
const LINE: usize = 64;
/// A gathered piece (a card's JSON) and how many make a response.
const PIECE: usize = 560;
const PIECES: usize = 110;

pub fn run() -> Probe {
    let compute_ns = compute();
    let mut arena = vec![0u8; ARENA];
    let chase_ns = chase(&mut arena);
    let gather_gbs = gather(&arena);
    Probe {
        compute_ns,
        chase_ns,
        gather_gbs,
    }
}

/// xorshift64*: the probe's random numbers (any spread will do; no crate's behaviour to track).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Nanoseconds a step of a dependent chain of integer operations takes.
fn compute() -> f64 {
    const STEPS: u64 = 50_000_000;
    let mut rng = Rng(black_box(0x9e37_79b9_7f4a_7c15));
    let start = Instant::now();
    let mut acc = 0u64;
    for _ in 0..STEPS {
        acc = acc.wrapping_add(rng.next());
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / STEPS as f64
}

/// Nanoseconds a dependent read at a random line of `arena` takes: the lines are linked into
/// one cycle in random order (Sattolo's shuffle), each holding the next one's number.
fn chase(arena: &mut [u8]) -> f64 {
    let lines = arena.len() / LINE;
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in (1..lines).rev() {
        order.swap(i, rng.below(i));
    }
    for (i, next) in order.iter().enumerate() {
        arena[i * LINE..i * LINE + 4].copy_from_slice(&next.to_ne_bytes());
    }
    let read = |line: usize| {
        let at = line * LINE;
        u32::from_ne_bytes(arena[at..at + 4].try_into().expect("4 bytes")) as usize
    };
    // a first lap over part of the cycle, then the one timed
    let mut line = 0;
    for _ in 0..200_000 {
        line = read(line);
    }
    const STEPS: usize = 2_000_000;
    let start = Instant::now();
    for _ in 0..STEPS {
        line = read(line);
    }
    black_box(line);
    start.elapsed().as_nanos() as f64 / STEPS as f64
}

/// GB/s copied while gathering responses of [`PIECES`] pieces of [`PIECE`] bytes from random
/// places in `arena`, for about 300 ms.
fn gather(arena: &[u8]) -> f64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out: Vec<u8> = Vec::with_capacity(PIECES * PIECE);
    let (mut copied, start) = (0usize, Instant::now());
    while start.elapsed() < Duration::from_millis(300) {
        for _ in 0..64 {
            out.clear();
            for _ in 0..PIECES {
                let at = rng.below((arena.len() - PIECE) / 16) * 16;
                out.extend_from_slice(&arena[at..at + PIECE]);
            }
            black_box(&out);
            copied += out.len();
        }
    }
    copied as f64 / start.elapsed().as_nanos() as f64
}
