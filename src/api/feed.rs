//! The feed: every video, newest first, paged by publish time.

use crate::api::ctx::Ctx;
use crate::api::reply::{ok_close, ok_open};
use crate::api::views;
use crate::error::AppError;
use crate::ids::{floor_for_ms, now_ms, time_ms};
use ntex::web::{self, HttpResponse};
use std::io::Write;

/// Videos that can share one millisecond (256 per node, 16 nodes).
const MAX_PER_MS: usize = 4096;

pub fn routes(cfg: &mut web::ServiceConfig) {
    super::ctx::route(cfg, "/douyin/feed", feed);
}

/// `latest_time` in ms (a value small enough to be seconds is taken as seconds); None: newest.
pub fn parse_latest_time(v: Option<i64>) -> Result<Option<i64>, AppError> {
    match v {
        None | Some(0) => Ok(None),
        Some(t) if t < 0 => Err(AppError::param("latest_time must not be negative")),
        Some(t) if t < 100_000_000_000 => Ok(Some(t * 1000)),
        Some(t) => Ok(Some(t)),
    }
}

/// Cuts a page of `limit + 1` candidate ids (newest first) to at most `limit`, never splitting
/// a millisecond: the next page starts strictly before the oldest returned video's millisecond,
/// so videos sharing it must all be on this page. Returns None when the whole page is one
/// millisecond (the caller then returns every video of that millisecond).
pub fn cut_page(mut ids: Vec<i64>, limit: usize) -> Option<Vec<i64>> {
    if ids.len() <= limit {
        return Some(ids);
    }
    let boundary = time_ms(ids[limit]);
    ids.truncate(limit);
    let keep = ids
        .iter()
        .take_while(|id| time_ms(**id) != boundary)
        .count();
    if keep == 0 {
        return None;
    }
    ids.truncate(keep);
    Some(ids)
}

async fn feed(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let (st, p) = (&ctx.st, &ctx.params);
    let viewer = views::viewer(st, p.token()).await?;
    let before = parse_latest_time(p.i64("latest_time")?)?.map(floor_for_ms);
    let limit = st.cfg.server.feed_page_size;
    let candidates = st.cache.feed_page(before, limit + 1).await?;
    let ids = match cut_page(candidates.clone(), limit) {
        Some(ids) => ids,
        None => {
            let ms = time_ms(candidates[0]);
            let all = st.cache.feed_page(before, MAX_PER_MS).await?;
            all.into_iter()
                .take_while(|id| time_ms(*id) == ms)
                .collect()
        }
    };
    let next_time = ids.last().map(|id| time_ms(*id)).unwrap_or_else(now_ms);
    let mut body = ok_open(ids.len() * 700 + 48);
    let _ = write!(body, ",\"next_time\":{next_time},\"video_list\":");
    views::write_videos(&mut body, st, viewer, &ids).await?;
    Ok(ok_close(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EPOCH_MS;

    fn id(ms: i64, seq: i64) -> i64 {
        ((ms - EPOCH_MS) << 12) | seq
    }

    #[test]
    fn pages_never_split_a_millisecond() {
        let t = 1_800_000_000_000;
        // newest first: 2 at t+2, 3 at t+1, 1 at t
        let ids = vec![
            id(t + 2, 1),
            id(t + 2, 0),
            id(t + 1, 2),
            id(t + 1, 1),
            id(t + 1, 0),
            id(t, 0),
        ];
        assert_eq!(cut_page(ids.clone(), 3).unwrap(), ids[..2].to_vec());
        assert_eq!(cut_page(ids.clone(), 5).unwrap(), ids[..5].to_vec());
        assert_eq!(cut_page(ids.clone(), 10).unwrap(), ids);
        assert_eq!(cut_page(ids[2..].to_vec(), 2), None);
    }

    #[test]
    fn latest_time_units() {
        assert_eq!(parse_latest_time(None).unwrap(), None);
        assert_eq!(parse_latest_time(Some(0)).unwrap(), None);
        assert_eq!(
            parse_latest_time(Some(1_680_703_713)).unwrap(),
            Some(1_680_703_713_000)
        );
        assert_eq!(
            parse_latest_time(Some(1_680_703_713_123)).unwrap(),
            Some(1_680_703_713_123)
        );
        assert!(parse_latest_time(Some(-1)).is_err());
    }
}
