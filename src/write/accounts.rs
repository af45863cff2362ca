//! Accounts: creating a user (argon2 hash, unique name, then the Redis side), and logging out
//! (a token, or every token of the user), durably.

use super::outbox;
use crate::auth::Token;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{OutboxOp, Revoke, UserRecord};

/// The profile fields of a new account, validated by the caller.
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub avatar: String,
    pub background_image: String,
    pub signature: String,
}

/// Creates an account; shared by the endpoint and `seed`. Returns the new user's id.
pub async fn create_user(st: &AppState, nu: NewUser) -> Result<i64, AppError> {
    let password_hash = st.auth.hash_password(nu.password).await?;
    let id = st.ids.next_id();
    let rec = UserRecord {
        id,
        name: nu.username,
        password_hash,
        avatar: nu.avatar,
        background_image: nu.background_image,
        signature: nu.signature,
        created_ms: crate::ids::now_ms(),
    };
    let entry = outbox::entry(st, OutboxOp::UserCreated { user_id: id });
    if !st.store.create_user(&rec, &entry).await? {
        return Err(AppError::UserExists);
    }
    outbox::finish(st, &entry, st.cache.user_created(&rec)).await;
    Ok(id)
}

/// Revokes `token` (or, `everywhere`, every token of its user): durable first, then the
/// session in Redis, so that every instance refuses it from now on.
pub async fn logout(st: &AppState, token: &Token, everywhere: bool) -> Result<(), AppError> {
    let what = if everywhere {
        Revoke::All
    } else {
        Revoke::Token {
            id: token.id,
            exp: token.exp,
        }
    };
    let uid = token.user_id;
    let entry = outbox::entry(st, OutboxOp::SessionChanged { user_id: uid });
    let now = crate::ids::now_ms().max(0) as u64 / 1000;
    let state = st.store.revoke(uid, what, now, &entry).await?;
    outbox::finish(st, &entry, st.cache.session_changed(uid, &state)).await;
    Ok(())
}
