//! Every CQL statement of the store, prepared once at connect. Statements that can run twice
//! with the same effect are marked idempotent (the driver may then retry or speculate them);
//! lightweight transactions and deletes-then-inserts are not.

use scylla::client::session::Session;
use scylla::errors::PrepareError;
use scylla::statement::prepared::PreparedStatement;

/// `cql` with the table after FROM, INTO or UPDATE prefixed by `ks.`.
fn qualify(cql: &str, ks: &str) -> String {
    let mut out = String::with_capacity(cql.len() + 3 * ks.len());
    let mut words = cql.split(' ').peekable();
    while let Some(w) = words.next() {
        out.push_str(w);
        if matches!(w, "FROM" | "INTO" | "UPDATE") {
            if let Some(table) = words.next() {
                out.push(' ');
                out.push_str(ks);
                out.push('.');
                out.push_str(table);
            }
        }
        if words.peek().is_some() {
            out.push(' ');
        }
    }
    out
}

macro_rules! stmts {
    ($($name:ident: $idem:literal $cql:literal;)*) => {
        /// The prepared statements (see the CQL text of each).
        pub(crate) struct Stmts {
            $(pub $name: PreparedStatement,)*
        }

        impl Stmts {
            /// Prepares every statement with its tables qualified by keyspace `ks` (a
            /// session-wide `USE` is ambiguous for prepared statements).
            pub async fn prepare(s: &Session, ks: &str) -> Result<Stmts, PrepareError> {
                Ok(Stmts {
                    $($name: {
                        let mut p = s.prepare(qualify($cql, ks)).await?;
                        p.set_is_idempotent($idem);
                        p.set_page_size(1000);
                        p
                    },)*
                })
            }
        }
    };
}

stmts! {
    ins_user: true "INSERT INTO users (id, name, password_hash, avatar, background_image, signature, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)";
    del_user: true "DELETE FROM users WHERE id = ?";
    get_user: true "SELECT id, name, password_hash, avatar, background_image, signature, created_ms FROM users WHERE id = ?";
    ins_name: false "INSERT INTO usernames (name, user_id) VALUES (?, ?) IF NOT EXISTS";
    get_name: true "SELECT user_id FROM usernames WHERE name = ?";

    ins_video: true "INSERT INTO videos (id, author_id, title, description, play, cover, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)";
    get_video: true "SELECT id, author_id, title, description, play, cover, created_ms FROM videos WHERE id = ?";

    ins_comment: true "INSERT INTO comments (id, video_id, user_id, content, reply_id, created_ms, deleted, pending) VALUES (?, ?, ?, ?, ?, ?, false, ?)";
    get_comment: true "SELECT id, video_id, user_id, content, reply_id, created_ms, deleted, pending FROM comments WHERE id = ?";
    scan_comments: true "SELECT id, video_id, user_id, content, reply_id, created_ms, deleted, token(id) FROM comments WHERE token(id) > ? LIMIT ?";
    get_comment_pending: true "SELECT pending FROM comments WHERE id = ?";
    del_comment: false "UPDATE comments SET deleted = true, pending = ? WHERE id = ? IF deleted = false AND pending = 0";
    clear_comment: false "UPDATE comments SET pending = 0 WHERE id = ? IF pending = ?";

    ins_list: true "INSERT INTO lists (kind, owner, bucket, id, ref) VALUES (?, ?, ?, ?, ?)";
    del_list: true "DELETE FROM lists WHERE kind = ? AND owner = ? AND bucket = ? AND id = ?";
    sel_list: true "SELECT id, ref FROM lists WHERE kind = ? AND owner = ? AND bucket = ?";
    sel_list_limit: true "SELECT id, ref FROM lists WHERE kind = ? AND owner = ? AND bucket = ? LIMIT ?";
    sel_list_after: true "SELECT id FROM lists WHERE kind = ? AND owner = ? AND bucket = ? AND id > ? ORDER BY id ASC LIMIT ?";
    count_list: true "SELECT COUNT(*) FROM lists WHERE kind = ? AND owner = ? AND bucket = ?";
    ins_bucket: true "INSERT INTO buckets (kind, owner, owner2, bucket) VALUES (?, ?, ?, ?)";
    sel_buckets: true "SELECT bucket FROM buckets WHERE kind = ? AND owner = ? AND owner2 = ?";
    scan_buckets: true "SELECT kind, owner, owner2, token(kind, owner, owner2) FROM buckets WHERE token(kind, owner, owner2) > ? PER PARTITION LIMIT 1 LIMIT ?";
    sel_buckets_from: true "SELECT bucket FROM buckets WHERE kind = ? AND owner = ? AND owner2 = ? AND bucket >= ? ORDER BY bucket ASC";

    ins_msg: true "INSERT INTO messages (user_low, user_high, bucket, id, from_user_id, to_user_id, content, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    sel_msgs: true "SELECT id, from_user_id, to_user_id, content, created_ms FROM messages WHERE user_low = ? AND user_high = ? AND bucket = ?";

    ins_play: true "INSERT INTO video_plays (video_id, bucket, viewer) VALUES (?, ?, ?)";
    sel_plays: true "SELECT viewer FROM video_plays WHERE video_id = ? AND bucket = ?";

    get_pair: true "SELECT active, id, version, other, pending FROM pairs WHERE kind = ? AND a = ? AND b = ?";
    get_pair_pending: true "SELECT pending FROM pairs WHERE kind = ? AND a = ? AND b = ?";
    new_pair: false "INSERT INTO pairs (kind, a, b, active, id, version, other, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS";
    cas_pair: false "UPDATE pairs SET active = ?, id = ?, version = ?, other = ?, pending = ? WHERE kind = ? AND a = ? AND b = ? IF version = ? AND pending = 0";
    clear_pair: false "UPDATE pairs SET pending = 0 WHERE kind = ? AND a = ? AND b = ? IF pending = ?";
    put_pair: true "INSERT INTO pairs (kind, a, b, active, id, version, other, pending) VALUES (?, ?, ?, ?, ?, ?, ?, 0)";

    get_tally: true "SELECT count, version FROM tallies WHERE owner = ? AND grp = ? LIMIT 1";
    get_markers: true "SELECT change FROM tallies WHERE owner = ? AND grp = ? AND change IN ?";
    cas_tally: false "UPDATE tallies SET count = ?, version = ? WHERE owner = ? AND grp = ? IF version = ?";
    ins_marker: false "INSERT INTO tallies (owner, grp, change) VALUES (?, ?, ?)";
    del_marker: true "DELETE FROM tallies WHERE owner = ? AND grp = ? AND change = ?";
    put_tally: true "UPDATE tallies SET count = ?, version = ? WHERE owner = ? AND grp = ?";

    get_session: true "SELECT version, generation, revoked FROM sessions WHERE user_id = ?";
    cas_session: false "UPDATE sessions SET version = ?, generation = ?, revoked = ? WHERE user_id = ? IF version = ?";

    ins_outbox: true "INSERT INTO outbox (shard, minute, id, payload) VALUES (?, ?, ?, ?)";
    del_outbox: true "DELETE FROM outbox WHERE shard = ? AND minute = ? AND id = ?";
    sel_outbox: true "SELECT id, payload FROM outbox WHERE shard = ? AND minute = ? LIMIT ?";
    ins_open: true "INSERT INTO outbox_open (shard, minute) VALUES (?, ?)";
    sel_open: true "SELECT minute FROM outbox_open WHERE shard = ?";
    del_open: true "DELETE FROM outbox_open WHERE shard = ? AND minute = ?";
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_are_qualified_by_keyspace() {
        assert_eq!(
            super::qualify("DELETE FROM lists WHERE kind = ?", "ks"),
            "DELETE FROM ks.lists WHERE kind = ?"
        );
        assert_eq!(
            super::qualify("UPDATE pairs SET a = ? WHERE b = ? IF c = ?", "k"),
            "UPDATE k.pairs SET a = ? WHERE b = ? IF c = ?"
        );
        assert_eq!(
            super::qualify("INSERT INTO users (id) VALUES (?)", "k"),
            "INSERT INTO k.users (id) VALUES (?)"
        );
    }
}
