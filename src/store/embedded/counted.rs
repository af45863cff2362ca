//! The embedded store's counted writes: likes, follows and comments, each a read-modify-write
//! of counters and pair states under the process-wide counter lock, committed as one batch with
//! its outbox entry.

use super::*;

/// Likes or unlikes in one batch (see [`Store::set_like`]).
pub(super) fn set_like(
    i: &Inner,
    user_id: i64,
    video_id: i64,
    author_id: i64,
    like: bool,
    like_id: i64,
    outbox: &OutboxEntry,
) -> StoreResult<LikeChange> {
    let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
    let key = pair(user_id, video_id);
    let state = get_pair(&i.likes, &key)?;
    let mut liker: UserCounters = get_json(&i.user_counters, be(user_id))?;
    let mut video: VideoCounters = get_json(&i.video_counters, be(video_id))?;
    let mut author: UserCounters = if author_id == user_id {
        liker
    } else {
        get_json(&i.user_counters, be(author_id))?
    };
    if state.on == like {
        return Ok(LikeChange {
            changed: false,
            liker,
            author,
            video,
            pair_version: state.version,
        });
    }
    let delta = if like { 1 } else { -1 };
    let mut b = i.db.batch();
    let next = PairState {
        on: like,
        id: if like { like_id } else { state.id },
        version: state.version + 1,
    };
    b.insert(&i.likes, key, encode(&next));
    if like {
        b.insert(
            &i.likes_by_user,
            pair(user_id, like_id),
            be(video_id).to_vec(),
        );
        b.insert(&i.likers_by_video, pair(video_id, user_id), Vec::new());
    } else {
        b.remove(&i.likes_by_user, pair(user_id, state.id));
        b.remove(&i.likers_by_video, pair(video_id, user_id));
    }
    video.favorite_count += delta;
    video.favorite_version += 1;
    liker.favorite_count += delta;
    liker.like_version += 1;
    if author_id == user_id {
        liker.total_favorited += delta;
        liker.received_version += 1;
        author = liker;
    } else {
        author.total_favorited += delta;
        author.received_version += 1;
        b.insert(&i.user_counters, be(author_id).to_vec(), encode(&author));
    }
    b.insert(&i.user_counters, be(user_id).to_vec(), encode(&liker));
    b.insert(&i.video_counters, be(video_id).to_vec(), encode(&video));
    outbox_put(i, &mut b, outbox);
    b.commit().map_err(unavailable)?;
    Ok(LikeChange {
        changed: true,
        liker,
        author,
        video,
        pair_version: next.version,
    })
}

/// Adds a comment and bumps its video's comment counter in one batch.
pub(super) fn add_comment(
    i: &Inner,
    c: &CommentRecord,
    outbox: &OutboxEntry,
) -> StoreResult<VideoCounters> {
    let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut video: VideoCounters = get_json(&i.video_counters, be(c.video_id))?;
    video.comment_count += 1;
    video.comment_version += 1;
    let mut b = i.db.batch();
    b.insert(&i.comments, be(c.id).to_vec(), encode(&c));
    b.insert(&i.comments_by_video, pair(c.video_id, c.id), Vec::new());
    b.insert(&i.video_counters, be(c.video_id).to_vec(), encode(&video));
    outbox_put(i, &mut b, outbox);
    b.commit().map_err(unavailable)?;
    Ok(video)
}

/// Deletes a comment and lowers its video's comment counter; None when it does not exist.
pub(super) fn delete_comment(
    i: &Inner,
    comment_id: i64,
    outbox: &OutboxEntry,
) -> StoreResult<Option<VideoCounters>> {
    let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
    let Some(raw) = i.comments.get(be(comment_id)).map_err(unavailable)? else {
        return Ok(None);
    };
    let c: CommentRecord = decode(&raw)?;
    let mut video: VideoCounters = get_json(&i.video_counters, be(c.video_id))?;
    video.comment_count -= 1;
    video.comment_version += 1;
    let mut b = i.db.batch();
    b.remove(&i.comments, be(c.id).to_vec());
    b.remove(&i.comments_by_video, pair(c.video_id, c.id));
    b.insert(&i.video_counters, be(c.video_id).to_vec(), encode(&video));
    outbox_put(i, &mut b, outbox);
    b.commit().map_err(unavailable)?;
    Ok(Some(video))
}

/// Follows or unfollows in one batch (see [`Store::set_follow`]).
pub(super) fn set_follow(
    i: &Inner,
    follower: i64,
    followee: i64,
    follow: bool,
    follow_id: i64,
    outbox: &OutboxEntry,
) -> StoreResult<FollowChange> {
    let _g = i.counter_lock.lock().unwrap_or_else(|e| e.into_inner());
    let key = pair(follower, followee);
    let state = get_pair(&i.follows, &key)?;
    let mut a: UserCounters = get_json(&i.user_counters, be(follower))?;
    let mut b: UserCounters = get_json(&i.user_counters, be(followee))?;
    if state.on == follow {
        return Ok(FollowChange {
            changed: false,
            follower: a,
            followee: b,
            pair_version: state.version,
        });
    }
    let mut batch = i.db.batch();
    let next = PairState {
        on: follow,
        id: if follow { follow_id } else { state.id },
        version: state.version + 1,
    };
    batch.insert(&i.follows, key, encode(&next));
    if follow {
        batch.insert(
            &i.following_by_user,
            pair(follower, follow_id),
            be(followee).to_vec(),
        );
        batch.insert(
            &i.followers_by_user,
            pair(followee, follow_id),
            be(follower).to_vec(),
        );
    } else {
        batch.remove(&i.following_by_user, pair(follower, state.id));
        batch.remove(&i.followers_by_user, pair(followee, state.id));
    }
    let delta = if follow { 1 } else { -1 };
    a.follow_count += delta;
    a.follow_version += 1;
    b.follower_count += delta;
    b.follower_version += 1;
    batch.insert(&i.user_counters, be(follower).to_vec(), encode(&a));
    batch.insert(&i.user_counters, be(followee).to_vec(), encode(&b));
    outbox_put(i, &mut batch, outbox);
    batch.commit().map_err(unavailable)?;
    Ok(FollowChange {
        changed: true,
        follower: a,
        followee: b,
        pair_version: next.version,
    })
}
