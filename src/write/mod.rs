//! The write path, between the API handlers and the stores: every change is written durably
//! first (its records and an outbox entry in one atomic batch), then applied to Redis, then its
//! outbox entry is cleared ([`outbox`]). A write flows downward only: handlers call these
//! functions, these call the durable store and the cache, and nothing here knows about HTTP.
//!
//! If the Redis side fails, the write still succeeds: it is durable, and the outbox replayer
//! applies it later (dropping the keys it touched so the next read reloads them whole).

pub mod accounts;
pub mod comments;
pub mod likes;
pub mod outbox;
pub mod social;
pub mod videos;
