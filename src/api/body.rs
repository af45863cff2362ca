//! Reading request bodies so that no client can hold a request open: every read is bounded by
//! an idle timeout and, after a grace period, a minimum average rate; and a body that has
//! ended is never waited on again (a multipart body without its closing boundary would
//! otherwise leave the parser waiting for bytes that will never come).

use crate::config::LimitsConfig;
use crate::error::AppError;
use futures_util::{Stream, StreamExt};
use ntex::util::Bytes;
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long and how slowly a client may send a body.
#[derive(Clone, Copy, Debug)]
pub struct BodyTiming {
    /// Longest wait for the next bytes.
    pub idle: Duration,
    /// Least average rate in bytes per second, measured from the start once `grace` is over
    /// (0: none).
    pub min_rate: u64,
    pub grace: Duration,
}

impl BodyTiming {
    pub fn from_limits(l: &LimitsConfig) -> Self {
        BodyTiming {
            idle: Duration::from_millis(l.body_idle_timeout_ms),
            min_rate: l.body_min_rate_bytes,
            grace: Duration::from_millis(l.body_rate_grace_ms),
        }
    }
}

/// What the payload has delivered so far.
#[derive(Default, Debug)]
struct Progress {
    bytes: Cell<u64>,
    ended: Cell<bool>,
}

/// A request payload that records its progress for a [`BodyClock`].
pub struct Watched<S> {
    inner: S,
    progress: Rc<Progress>,
}

impl<S, E> Stream for Watched<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let r = self.inner.poll_next_unpin(cx);
        match &r {
            Poll::Ready(Some(Ok(b))) => {
                let p = &self.progress;
                p.bytes.set(p.bytes.get() + b.len() as u64);
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.progress.ended.set(true),
            Poll::Pending => {}
        }
        r
    }
}

/// Bounds every read of one body in time (see the module doc).
pub struct BodyClock {
    progress: Rc<Progress>,
    started: Instant,
    timing: BodyTiming,
}

/// Wraps `payload` for reading under `timing`: read the returned stream (or a parser over it)
/// only through [`BodyClock::next`].
pub fn watch<S>(payload: S, timing: BodyTiming) -> (Watched<S>, BodyClock) {
    let progress = Rc::new(Progress::default());
    (
        Watched {
            inner: payload,
            progress: progress.clone(),
        },
        BodyClock {
            progress,
            started: Instant::now(),
            timing,
        },
    )
}

impl BodyClock {
    /// The next item of `s`: the watched payload itself, or a parser reading it. Fails with
    /// [`AppError::BodyTimeout`] when the client is too slow, and with `incomplete` when `s`
    /// waits for more although the body has ended.
    pub async fn next<S: Stream + Unpin>(
        &self,
        s: &mut S,
        incomplete: &'static str,
    ) -> Result<Option<S::Item>, AppError> {
        let progress = &self.progress;
        let read = futures_util::future::poll_fn(|cx| match s.poll_next_unpin(cx) {
            Poll::Pending if progress.ended.get() => Poll::Ready(Err(AppError::param(incomplete))),
            Poll::Pending => Poll::Pending,
            Poll::Ready(item) => Poll::Ready(Ok(item)),
        });
        let deadline = tokio::time::Instant::from_std(self.deadline());
        match tokio::time::timeout_at(deadline, read).await {
            Ok(r) => r,
            Err(_) => Err(AppError::BodyTimeout),
        }
    }

    /// The earlier of: the idle timeout from now, and the moment the average rate since the
    /// start would fall below the minimum if nothing more arrived.
    fn deadline(&self) -> Instant {
        let idle = Instant::now() + self.timing.idle;
        if self.timing.min_rate == 0 {
            return idle;
        }
        let earned =
            Duration::from_secs_f64(self.progress.bytes.get() as f64 / self.timing.min_rate as f64);
        idle.min(self.started + self.timing.grace + earned)
    }
}

/// Reads a whole (non-multipart) body of at most `max` bytes.
pub async fn read_all<S, E>(payload: S, max: usize, timing: BodyTiming) -> Result<Bytes, AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let (mut body, clock) = watch(payload, timing);
    let mut buf = ntex::util::BytesMut::new();
    while let Some(chunk) = clock
        .next(&mut body, "the request body ended early")
        .await?
    {
        let chunk = chunk.map_err(|_| AppError::param("the request body could not be read"))?;
        if buf.len() + chunk.len() > max {
            return Err(AppError::PayloadTooLarge(max as u64));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(idle_ms: u64, min_rate: u64, grace_ms: u64) -> BodyTiming {
        BodyTiming {
            idle: Duration::from_millis(idle_ms),
            min_rate,
            grace: Duration::from_millis(grace_ms),
        }
    }

    #[tokio::test]
    async fn a_whole_body_is_read() {
        let chunks: Vec<Result<Bytes, ()>> = vec![Ok(Bytes::from("ab")), Ok(Bytes::from("cd"))];
        let b = read_all(futures_util::stream::iter(chunks), 10, timing(1000, 0, 0))
            .await
            .unwrap();
        assert_eq!(&b[..], b"abcd");
        let chunks: Vec<Result<Bytes, ()>> = vec![Ok(Bytes::from("abcdef"))];
        let e = read_all(futures_util::stream::iter(chunks), 5, timing(1000, 0, 0)).await;
        assert!(matches!(e, Err(AppError::PayloadTooLarge(5))));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stalled = futures_util::stream::iter(vec![Ok::<_, ()>(Bytes::from("ab"))])
            .chain(futures_util::stream::pending());
        let started = Instant::now();
        let e = read_all(stalled, 10, timing(50, 0, 0)).await;
        assert!(matches!(e, Err(AppError::BodyTimeout)), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_parser_waiting_after_the_end_is_incomplete() {
        let (mut body, clock) = watch(
            futures_util::stream::iter(vec![Ok::<_, ()>(Bytes::from("x"))]),
            timing(10_000, 0, 0),
        );
        assert!(clock.next(&mut body, "x").await.unwrap().is_some());
        assert!(clock.next(&mut body, "x").await.unwrap().is_none());
        // a parser that, like a multipart reader missing its closing boundary, waits for more
        // after the body has ended
        let mut waits = futures_util::stream::pending::<()>();
        let started = Instant::now();
        let e = clock.next(&mut waits, "no closing boundary").await;
        assert!(matches!(e, Err(AppError::InvalidParam(m)) if m == "no closing boundary"));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
