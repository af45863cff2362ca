//! The embedded store's bulk paths: the bench data set's import (sorted runs, one fsync),
//! the scan of every like that `check` walks and the scans of conversations and comments that
//! `rebuild-cache` walks.

use super::*;

/// Loads `data` with fjall's ingestion, a keyspace at a time: its records sorted by key and
/// written straight into tables as one sorted run, then one fsync. Written through batches,
/// the journal and 4 MiB memtables, the same data set left about a hundred overlapping tables
/// to compact, and the first `rebuild-cache` after a seed read the store while it compacted:
/// 12.5 s against 8.1 s for the next one at scale 1 (bench/NOTES.md).
pub(super) fn import(i: &Inner, data: &Import) -> StoreResult<()> {
    ingest(
        &i.usernames,
        data.users
            .iter()
            .map(|u| (u.name.as_bytes().to_vec(), be(u.id).to_vec())),
    )?;
    ingest(
        &i.users,
        data.users.iter().map(|u| (be(u.id).to_vec(), encode(u))),
    )?;
    ingest(
        &i.user_counters,
        data.user_counters
            .iter()
            .map(|(id, c)| (be(*id).to_vec(), encode(c))),
    )?;
    ingest(
        &i.videos,
        data.videos.iter().map(|v| (be(v.id).to_vec(), encode(v))),
    )?;
    ingest(
        &i.videos_by_author,
        data.videos
            .iter()
            .map(|v| (pair(v.author_id, v.id), Vec::new())),
    )?;
    ingest(
        &i.feed_timeline,
        data.videos
            .iter()
            .map(|v| (be(v.id).to_vec(), be(v.author_id).to_vec())),
    )?;
    ingest(
        &i.video_counters,
        data.video_counters
            .iter()
            .map(|(id, c)| (be(*id).to_vec(), encode(c))),
    )?;
    let on = |id: i64| {
        encode(&PairState {
            on: true,
            id,
            version: 1,
        })
    };
    ingest(
        &i.likes,
        data.likes
            .iter()
            .map(|(user, video, like)| (pair(*user, *video), on(*like))),
    )?;
    ingest(
        &i.likes_by_user,
        data.likes
            .iter()
            .map(|(user, video, like)| (pair(*user, *like), be(*video).to_vec())),
    )?;
    ingest(
        &i.likers_by_video,
        data.likes
            .iter()
            .map(|(user, video, _)| (pair(*video, *user), Vec::new())),
    )?;
    ingest(
        &i.follows,
        data.follows
            .iter()
            .map(|(a, c, follow)| (pair(*a, *c), on(*follow))),
    )?;
    ingest(
        &i.following_by_user,
        data.follows
            .iter()
            .map(|(a, c, follow)| (pair(*a, *follow), be(*c).to_vec())),
    )?;
    ingest(
        &i.followers_by_user,
        data.follows
            .iter()
            .map(|(a, c, follow)| (pair(*c, *follow), be(*a).to_vec())),
    )?;
    ingest(
        &i.comments,
        data.comments.iter().map(|c| (be(c.id).to_vec(), encode(c))),
    )?;
    ingest(
        &i.comments_by_video,
        data.comments
            .iter()
            .map(|c| (pair(c.video_id, c.id), Vec::new())),
    )?;
    ingest(
        &i.messages,
        data.messages.iter().map(|m| (message_key(m), encode(m))),
    )?;
    i.db.persist(PersistMode::SyncAll).map_err(unavailable)
}

/// Writes `records` into `ks` as one sorted run (fjall's ingestion wants ascending keys, each
/// once); of records with the same key the last wins, as in a batch.
fn ingest(ks: &Keyspace, records: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> StoreResult<()> {
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = records.collect();
    if records.is_empty() {
        return Ok(());
    }
    // reversed, then sorted stably: of equal keys the last written comes first and is kept
    records.reverse();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records.dedup_by(|later, first| later.0 == first.0);
    let mut run = ks.start_ingestion().map_err(unavailable)?;
    for (k, v) in records {
        run.write(k, v).map_err(unavailable)?;
    }
    run.finish().map_err(unavailable)
}

/// Up to `limit` (user, video) likes that are on, in key order after `after`.
pub(super) fn scan_likes(
    i: &Inner,
    after: (i64, i64),
    limit: usize,
) -> StoreResult<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    let start = pair(after.0, after.1.saturating_add(1));
    for kv in i.likes.range(start..) {
        let (k, v) = kv.into_inner().map_err(unavailable)?;
        let state: PairState = decode(&v)?;
        if state.on {
            out.push((read_id(&k[..8]), read_id(&k[8..])));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// A page of conversations in key order: each is found by seeking past the one before it,
/// so a scan reads one message a conversation. The cursor is the last pair's key.
pub(super) fn scan_conversations(
    i: &Inner,
    cursor: &[u8],
    limit: usize,
) -> StoreResult<ScanPage<(i64, i64)>> {
    let mut out = Vec::new();
    let mut from = match cursor {
        [] => pair(0, 0),
        c if c.len() == 16 => pair(read_id(&c[..8]), read_id(&c[8..]).saturating_add(1)),
        _ => return Err(StoreError::Corrupt("conversation scan cursor".into())),
    };
    while out.len() < limit {
        let Some(kv) = i.messages.range(from..).next() else {
            return Ok((out, None));
        };
        let k = kv.key().map_err(unavailable)?;
        let (lo, hi) = (read_id(&k[..8]), read_id(&k[8..16]));
        out.push((lo, hi));
        from = pair(lo, hi.saturating_add(1));
    }
    let next = out.last().map(|(lo, hi)| pair(*lo, *hi));
    Ok((out, next))
}

/// A page of comments in id order (a deleted comment's record is removed). The cursor is the
/// last id's key.
pub(super) fn scan_comments(
    i: &Inner,
    cursor: &[u8],
    limit: usize,
) -> StoreResult<ScanPage<CommentRecord>> {
    let from = match cursor {
        [] => 0,
        c if c.len() == 8 => read_id(c).saturating_add(1),
        _ => return Err(StoreError::Corrupt("comment scan cursor".into())),
    };
    let mut out: Vec<CommentRecord> = Vec::new();
    for kv in i.comments.range(be(from).to_vec()..) {
        out.push(decode(&kv.value().map_err(unavailable)?)?);
        if out.len() >= limit {
            let next = out.last().map(|c| be(c.id).to_vec());
            return Ok((out, next));
        }
    }
    Ok((out, None))
}
