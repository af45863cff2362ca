//! Follows and messages: a follow or unfollow (two versioned changes, one per user), and a chat
//! message (one conversation zset).

use super::outbox;
use crate::cache::versioned::{UserAspect, ZsetOp};
use crate::error::AppError;
use crate::ids::time_ms;
use crate::state::AppState;
use crate::store::{MessageRecord, OutboxOp};

/// Follows (or unfollows) `followee` for `follower`: durable first, then both users' cached
/// counters and sets. Returns whether anything changed.
pub async fn set_follow(
    st: &AppState,
    follower: i64,
    followee: i64,
    follow: bool,
) -> Result<bool, AppError> {
    let follow_id = st.ids.next_id();
    let entry = outbox::entry(st, OutboxOp::FollowChanged { follower, followee });
    let change = st
        .store
        .set_follow(follower, followee, follow, follow_id, &entry)
        .await?;
    if !change.changed {
        return Ok(false);
    }
    outbox::finish(st, &entry, async {
        let (a, b) = if follow {
            (
                ZsetOp::Add {
                    member: followee,
                    score: follow_id,
                    version: change.pair_version,
                },
                ZsetOp::Add {
                    member: follower,
                    score: follow_id,
                    version: change.pair_version,
                },
            )
        } else {
            (
                ZsetOp::Remove {
                    member: followee,
                    version: change.pair_version,
                },
                ZsetOp::Remove {
                    member: follower,
                    version: change.pair_version,
                },
            )
        };
        // two users, two independent versioned changes: sent together
        let c = &st.cache;
        c.apply(vec![
            c.user_change(follower, &change.follower, UserAspect::Follows, a),
            c.user_change(followee, &change.followee, UserAspect::Followers, b),
        ])
        .await
    })
    .await;
    Ok(true)
}

/// Sends a message (`content` already validated) from `from` to `to`.
pub async fn send_message(
    st: &AppState,
    from: i64,
    to: i64,
    content: String,
) -> Result<(), AppError> {
    let id = st.ids.next_id();
    let rec = MessageRecord {
        id,
        from_user_id: from,
        to_user_id: to,
        content,
        created_ms: time_ms(id),
    };
    let entry = outbox::entry(st, OutboxOp::MessageSent { from, to });
    st.store.add_message(&rec, &entry).await?;
    outbox::finish(st, &entry, st.cache.message_sent(&rec)).await;
    Ok(())
}
