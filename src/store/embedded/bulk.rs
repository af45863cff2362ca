//! The embedded store's bulk paths: the bench data set's import (large batches, one fsync),
//! the scan of every like that `check` walks and the scans of conversations and comments that
//! `rebuild-cache` walks.

use super::*;

/// Records per batch of an import.
const CHUNK: usize = 20_000;

/// Writes `data` in batches of [`CHUNK`] records, then fsyncs once.
pub(super) fn import(i: &Inner, data: &Import) -> StoreResult<()> {
    let mut b = i.db.batch();
    let mut n = 0;
    let step = |b: &mut fjall::OwnedWriteBatch, n: &mut usize| -> StoreResult<()> {
        *n += 1;
        if *n >= CHUNK {
            let full = std::mem::replace(b, i.db.batch());
            full.commit().map_err(unavailable)?;
            *n = 0;
        }
        Ok(())
    };
    for u in &data.users {
        b.insert(&i.usernames, u.name.as_bytes().to_vec(), be(u.id).to_vec());
        b.insert(&i.users, be(u.id).to_vec(), encode(u));
        step(&mut b, &mut n)?;
    }
    for (id, c) in &data.user_counters {
        b.insert(&i.user_counters, be(*id).to_vec(), encode(c));
        step(&mut b, &mut n)?;
    }
    for v in &data.videos {
        b.insert(&i.videos, be(v.id).to_vec(), encode(v));
        b.insert(&i.videos_by_author, pair(v.author_id, v.id), Vec::new());
        b.insert(
            &i.feed_timeline,
            be(v.id).to_vec(),
            be(v.author_id).to_vec(),
        );
        step(&mut b, &mut n)?;
    }
    for (id, c) in &data.video_counters {
        b.insert(&i.video_counters, be(*id).to_vec(), encode(c));
        step(&mut b, &mut n)?;
    }
    for (user, video, like_id) in &data.likes {
        let state = PairState {
            on: true,
            id: *like_id,
            version: 1,
        };
        b.insert(&i.likes, pair(*user, *video), encode(&state));
        b.insert(&i.likes_by_user, pair(*user, *like_id), be(*video).to_vec());
        b.insert(&i.likers_by_video, pair(*video, *user), Vec::new());
        step(&mut b, &mut n)?;
    }
    for (a, c, follow_id) in &data.follows {
        let state = PairState {
            on: true,
            id: *follow_id,
            version: 1,
        };
        b.insert(&i.follows, pair(*a, *c), encode(&state));
        b.insert(&i.following_by_user, pair(*a, *follow_id), be(*c).to_vec());
        b.insert(&i.followers_by_user, pair(*c, *follow_id), be(*a).to_vec());
        step(&mut b, &mut n)?;
    }
    for c in &data.comments {
        b.insert(&i.comments, be(c.id).to_vec(), encode(c));
        b.insert(&i.comments_by_video, pair(c.video_id, c.id), Vec::new());
        step(&mut b, &mut n)?;
    }
    for m in &data.messages {
        let mut key = conversation_prefix(m.from_user_id, m.to_user_id);
        key.extend_from_slice(&be(m.id));
        b.insert(&i.messages, key, encode(m));
        step(&mut b, &mut n)?;
    }
    b.commit().map_err(unavailable)?;
    i.db.persist(PersistMode::SyncAll).map_err(unavailable)
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
