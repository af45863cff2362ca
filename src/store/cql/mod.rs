//! The ScyllaDB/Cassandra store (`store.backend = "scylla"`): one driver session per process,
//! every statement prepared once at connect, token-aware routing in the local datacenter.
//!
//! The tables are in `cql/*.cql` (applied by [`migrate`]). This file owns the session and the
//! plain reads and writes; `lists.rs` the bucketed id lists, `counted.rs` the exact counters
//! (likes, follows, comments), `outbox.rs` the cluster-wide outbox, `migrate.rs` the schema.
//! Any driver error or timeout is [`StoreError::Unavailable`]: the client sees 10012.

mod bulk;
mod counted;
mod lists;
pub mod migrate;
mod outbox;
mod rows;
mod stmts;
mod tally;

use super::*;
use crate::config::CqlConfig;
use async_trait::async_trait;
use lists::Kind;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::statement::{Consistency, SerialConsistency};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stmts::Stmts;

pub use migrate::{migrate, SCHEMA_VERSION};

/// The consistency level named in `store.cql.consistency`.
pub fn consistency(name: &str) -> Result<Consistency, String> {
    Ok(match name {
        "local_quorum" => Consistency::LocalQuorum,
        "quorum" => Consistency::Quorum,
        "one" => Consistency::One,
        "local_one" => Consistency::LocalOne,
        "all" => Consistency::All,
        other => {
            return Err(format!(
                "store.cql.consistency {other:?}: use local_quorum, quorum, one, local_one or all"
            ))
        }
    })
}

/// Keyspace names are spliced into DDL, so only plain identifiers are accepted.
pub fn check_keyspace_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "store.cql.keyspace {name:?}: letters, digits and _ only, starting with a letter"
        ))
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cql: {e}"))
}

/// The hour bucket of a snowflake id (its millisecond / 3 600 000).
pub(crate) fn bucket(id: i64) -> i32 {
    bucket_ms(crate::ids::time_ms(id))
}

/// The hour bucket of a Unix millisecond.
pub(crate) fn bucket_ms(ms: i64) -> i32 {
    (ms / 3_600_000) as i32
}

/// Connects a session to the cluster of `cfg` (without a keyspace when `keyspace` is false).
pub async fn session(cfg: &CqlConfig, keyspace: bool) -> Result<Session, String> {
    let serial = match consistency(&cfg.consistency)? {
        Consistency::LocalQuorum | Consistency::LocalOne => SerialConsistency::LocalSerial,
        _ => SerialConsistency::Serial,
    };
    let policy = DefaultPolicy::builder()
        .prefer_datacenter(cfg.local_datacenter.clone())
        .token_aware(true)
        .permit_dc_failover(false)
        .build();
    let profile = ExecutionProfile::builder()
        .consistency(consistency(&cfg.consistency)?)
        .serial_consistency(Some(serial))
        .request_timeout(Some(Duration::from_millis(cfg.request_timeout_ms)))
        .load_balancing_policy(policy)
        .build();
    let mut b = SessionBuilder::new()
        .known_nodes(&cfg.contact_points)
        .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .default_execution_profile_handle(profile.into_handle());
    if !cfg.username.is_empty() {
        b = b.user(cfg.username.clone(), cfg.password()?.unwrap_or_default());
    }
    if let Some(tls) = tls_config(cfg)? {
        b = b.tls_context(Some(tls));
    }
    if keyspace {
        b = b.use_keyspace(&cfg.keyspace, false);
    }
    tokio::time::timeout(
        Duration::from_millis(cfg.connect_timeout_ms.max(1000) * 3),
        b.build(),
    )
    .await
    .map_err(|_| "cql: no node answered".to_string())?
    .map_err(|e| format!("cql: {e}"))
}

/// The TLS settings of `cfg` (None: plain TCP).
fn tls_config(cfg: &CqlConfig) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(ca) = &cfg.tls_ca_file else {
        return Ok(None);
    };
    let bad = |what: &str, f: &std::path::Path, e: &dyn std::fmt::Display| {
        format!("store.cql.{what} {}: {e}", f.display())
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad("tls_ca_file", ca, &e))? {
        roots
            .add(cert.map_err(|e| bad("tls_ca_file", ca, &e))?)
            .map_err(|e| bad("tls_ca_file", ca, &e))?;
    }
    if roots.is_empty() {
        return Err(bad("tls_ca_file", ca, &"no certificate in it"));
    }
    // the provider named, not the process default: rustls cannot choose one when both of its
    // backends are in the tree (rust-s3's reqwest brings ring)
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("store.cql TLS: {e}"))?
    .with_root_certificates(roots);
    let config = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad("tls_cert_file", cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("tls_cert_file", cert, &e))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| bad("tls_key_file", key, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("store.cql client certificate: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("store.cql.tls_cert_file and tls_key_file go together".into()),
    };
    Ok(Some(Arc::new(config)))
}

/// Whether a lightweight transaction applied (its first column, `[applied]`).
pub(crate) fn applied(r: QueryResult) -> StoreResult<bool> {
    let rows = r.into_rows_result().map_err(unavailable)?;
    let row = rows
        .maybe_first_row::<scylla::value::Row>()
        .map_err(unavailable)?;
    Ok(matches!(
        row.and_then(|r| r.columns.into_iter().next().flatten()),
        Some(scylla::value::CqlValue::Boolean(true))
    ))
}

/// Ids minted more than this long ago that are missing stay missing: their write would have
/// finished (requests time out well before), so they are remembered as absent.
const MISSING_AFTER_MS: i64 = 30_000;

/// The tables of the missing-id set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Users,
    Videos,
    Comments,
}

/// The CQL store.
pub struct CqlStore {
    s: Arc<Session>,
    q: Arc<Stmts>,
    tallier: tally::Tallier,
    /// Ids (users, videos, comments) known not to exist: a flood of requests for them does
    /// not reach the cluster. Only ids older than [`MISSING_AFTER_MS`] are remembered, so an
    /// id being created right now is never hidden.
    missing: quick_cache::sync::Cache<(Table, i64), ()>,
    /// List buckets already registered in `buckets` by this process.
    registered: quick_cache::sync::Cache<(u8, i64, i64, i32), ()>,
    writes: AtomicU64,
}

impl CqlStore {
    /// Connects to the keyspace of `cfg` and prepares every statement. Refuses a keyspace
    /// whose schema is older than this build needs (run `douyin-lite migrate`).
    pub async fn connect(cfg: &CqlConfig) -> Result<CqlStore, String> {
        let s = session(cfg, false).await?;
        let have = migrate::applied_version(&s, &cfg.keyspace).await?;
        if have < SCHEMA_VERSION {
            return Err(format!(
                "cql keyspace {} has schema version {have}, this build needs {SCHEMA_VERSION}: \
                 run `douyin-lite migrate` first",
                cfg.keyspace
            ));
        }
        let q = Arc::new(
            Stmts::prepare(&s, &cfg.keyspace)
                .await
                .map_err(|e| format!("cql: {e}"))?,
        );
        let s = Arc::new(s);
        // exported from the start (the dashboard graphs them), not from the first retry
        for what in ["counter", "pair"] {
            metrics::counter!("douyin_store_cas_retries_total", "what" => what).increment(0);
        }
        Ok(CqlStore {
            tallier: tally::Tallier::new(s.clone(), q.clone()),
            s,
            q,
            missing: quick_cache::sync::Cache::new(100_000),
            registered: quick_cache::sync::Cache::new(100_000),
            writes: AtomicU64::new(0),
        })
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    fn known_missing(&self, table: Table, id: i64) -> bool {
        self.missing.get(&(table, id)).is_some()
    }

    fn note_missing(&self, table: Table, id: i64) {
        if crate::ids::time_ms(id) < crate::ids::now_ms() - MISSING_AFTER_MS {
            self.missing.insert((table, id), ());
        }
    }

    async fn user(&self, id: i64) -> StoreResult<Option<UserRecord>> {
        if self.known_missing(Table::Users, id) {
            return Ok(None);
        }
        type Row = (i64, String, String, String, String, String, i64);
        let row = rows::first_row::<Row>(&self.s, &self.q.get_user, (id,)).await?;
        let Some((id, name, password_hash, avatar, background_image, signature, created_ms)) = row
        else {
            self.note_missing(Table::Users, id);
            return Ok(None);
        };
        Ok(Some(UserRecord {
            id,
            name,
            password_hash,
            avatar,
            background_image,
            signature,
            created_ms,
        }))
    }

    async fn video(&self, id: i64) -> StoreResult<Option<VideoRecord>> {
        if self.known_missing(Table::Videos, id) {
            return Ok(None);
        }
        type Row = (i64, i64, String, String, String, String, i64);
        let row = rows::first_row::<Row>(&self.s, &self.q.get_video, (id,)).await?;
        let Some((id, author_id, title, desc, play, cover, created_ms)) = row else {
            self.note_missing(Table::Videos, id);
            return Ok(None);
        };
        Ok(Some(VideoRecord {
            id,
            author_id,
            title,
            desc,
            play,
            cover,
            created_ms,
        }))
    }

    /// Records in id order for the scan lists (`Kind::Users`, `Kind::Videos`).
    async fn scan<T, F, Fut>(
        &self,
        kind: Kind,
        after: i64,
        limit: usize,
        get: F,
    ) -> StoreResult<Vec<T>>
    where
        F: Fn(i64) -> Fut,
        Fut: std::future::Future<Output = StoreResult<Option<T>>>,
    {
        let ids = self.ids_after(kind, 0, after, limit).await?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(64) {
            let got = futures_util::future::try_join_all(chunk.iter().map(|id| get(*id))).await?;
            out.extend(got.into_iter().flatten());
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for CqlStore {
    async fn create_user(&self, user: &UserRecord, outbox: &OutboxEntry) -> StoreResult<bool> {
        // the user row first (its id is new), then the name: a crash in between leaves a row no
        // name points at, which the outbox replay removes (see `outbox::complete`)
        self.outbox_put(outbox).await?;
        let u = user;
        self.put_user_row(u).await?;
        let r = self
            .s
            .execute_unpaged(&self.q.ins_name, (&u.name, u.id))
            .await
            .map_err(unavailable)?;
        if !applied(r)? {
            // someone else's name: undo the row, unless the name is ours (a retried LWT)
            if self.user_id_by_name(&u.name).await? != Some(u.id) {
                self.s
                    .execute_unpaged(&self.q.del_user, (u.id,))
                    .await
                    .map_err(unavailable)?;
                self.outbox_drop(outbox).await?;
                return Ok(false);
            }
        }
        self.list_add(Kind::Users, 0, u.id, 0).await?;
        self.missing.remove(&(Table::Users, u.id));
        self.wrote();
        Ok(true)
    }

    async fn get_user(&self, id: i64) -> StoreResult<Option<UserRecord>> {
        self.user(id).await
    }

    async fn user_id_by_name(&self, name: &str) -> StoreResult<Option<i64>> {
        Ok(
            rows::first_row::<(i64,)>(&self.s, &self.q.get_name, (name,))
                .await?
                .map(|(id,)| id),
        )
    }

    async fn put_video(&self, v: &VideoRecord, outbox: &OutboxEntry) -> StoreResult<()> {
        self.outbox_put(outbox).await?;
        self.put_video_row(v).await?;
        self.list_video(v).await?;
        self.missing.remove(&(Table::Videos, v.id));
        self.wrote();
        Ok(())
    }

    async fn get_video(&self, id: i64) -> StoreResult<Option<VideoRecord>> {
        self.video(id).await
    }

    async fn video_exists(&self, id: i64) -> StoreResult<bool> {
        // past the missing-id set: another instance may have recorded it since
        type Row = (i64, i64, String, String, String, String, i64);
        let row = rows::first_row::<Row>(&self.s, &self.q.get_video, (id,)).await?;
        Ok(row.is_some())
    }

    async fn video_ids_by_author(&self, author_id: i64) -> StoreResult<Vec<i64>> {
        Ok(self
            .list(Kind::AuthorVideos, author_id, usize::MAX)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn feed_ids(&self, limit: usize) -> StoreResult<Vec<i64>> {
        Ok(self
            .list(Kind::Feed, 0, limit)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn add_play(&self, video_id: i64, viewer: &str) -> StoreResult<()> {
        let b = bucket_ms(crate::ids::now_ms());
        self.register(Kind::Plays, video_id, 0, b).await?;
        self.s
            .execute_unpaged(&self.q.ins_play, (video_id, b, viewer))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn plays(&self, video_id: i64) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        for b in self.buckets(Kind::Plays, video_id, 0).await? {
            out.extend(
                self.paged::<(String,)>(&self.q.sel_plays, (video_id, b))
                    .await?
                    .into_iter()
                    .map(|(v,)| v),
            );
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn scan_users(&self, after: i64, limit: usize) -> StoreResult<Vec<UserRecord>> {
        self.scan(Kind::Users, after, limit, |id| self.user(id))
            .await
    }

    async fn scan_videos(&self, after: i64, limit: usize) -> StoreResult<Vec<VideoRecord>> {
        self.scan(Kind::Videos, after, limit, |id| self.video(id))
            .await
    }

    async fn user_counters(&self, user_id: i64) -> StoreResult<UserCounters> {
        use counted::Grp;
        let (l, r, fo, fr) = futures_util::future::try_join4(
            self.tallier.read(user_id, Grp::UserLikes),
            self.tallier.read(user_id, Grp::UserReceived),
            self.tallier.read(user_id, Grp::UserFollows),
            self.tallier.read(user_id, Grp::UserFollowers),
        )
        .await?;
        Ok(UserCounters {
            favorite_count: l.0,
            like_version: l.1,
            total_favorited: r.0,
            received_version: r.1,
            follow_count: fo.0,
            follow_version: fo.1,
            follower_count: fr.0,
            follower_version: fr.1,
        })
    }

    async fn video_counters(&self, video_id: i64) -> StoreResult<VideoCounters> {
        use counted::Grp;
        let (f, c) = futures_util::future::try_join(
            self.tallier.read(video_id, Grp::VideoFavorites),
            self.tallier.read(video_id, Grp::VideoComments),
        )
        .await?;
        Ok(VideoCounters {
            favorite_count: f.0,
            favorite_version: f.1,
            comment_count: c.0,
            comment_version: c.1,
        })
    }

    async fn set_like(
        &self,
        user_id: i64,
        video_id: i64,
        author_id: i64,
        like: bool,
        like_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<LikeChange> {
        self.like(user_id, video_id, author_id, like, like_id, outbox)
            .await
    }

    async fn likes_by_user(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.list(Kind::UserLikes, user_id, usize::MAX).await
    }

    async fn count_likers(&self, video_id: i64) -> StoreResult<i64> {
        self.count(Kind::VideoLikers, video_id).await
    }

    async fn add_comment(
        &self,
        c: &CommentRecord,
        outbox: &OutboxEntry,
    ) -> StoreResult<VideoCounters> {
        self.comment_add(c, outbox).await
    }

    async fn delete_comment(
        &self,
        comment_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<Option<VideoCounters>> {
        self.comment_delete(comment_id, outbox).await
    }

    async fn get_comment(&self, id: i64) -> StoreResult<Option<CommentRecord>> {
        Ok(self
            .comment_row(id)
            .await?
            .filter(|r| !r.deleted)
            .map(|r| r.record))
    }

    async fn comment_ids_by_video(&self, video_id: i64) -> StoreResult<Vec<i64>> {
        Ok(self
            .list(Kind::VideoComments, video_id, usize::MAX)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn set_follow(
        &self,
        follower: i64,
        followee: i64,
        follow: bool,
        follow_id: i64,
        outbox: &OutboxEntry,
    ) -> StoreResult<FollowChange> {
        self.follow(follower, followee, follow, follow_id, outbox)
            .await
    }

    async fn following(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.list(Kind::Following, user_id, usize::MAX).await
    }

    async fn followers(&self, user_id: i64) -> StoreResult<Vec<(i64, i64)>> {
        self.list(Kind::Followers, user_id, usize::MAX).await
    }

    async fn add_message(&self, m: &MessageRecord, outbox: &OutboxEntry) -> StoreResult<()> {
        self.outbox_put(outbox).await?;
        self.put_message(m).await?;
        self.wrote();
        Ok(())
    }

    async fn conversation(&self, a: i64, b: i64) -> StoreResult<Vec<MessageRecord>> {
        let (lo, hi) = low_high(a, b);
        let mut buckets = self.buckets(Kind::Conversation, lo, hi).await?;
        buckets.reverse(); // oldest first
        let mut out = Vec::new();
        for bk in buckets {
            type Row = (i64, i64, i64, String, i64);
            for (id, from_user_id, to_user_id, content, created_ms) in
                self.paged::<Row>(&self.q.sel_msgs, (lo, hi, bk)).await?
            {
                out.push(MessageRecord {
                    id,
                    from_user_id,
                    to_user_id,
                    content,
                    created_ms,
                });
            }
        }
        Ok(out)
    }

    async fn session(&self, user_id: i64) -> StoreResult<SessionState> {
        Ok(self.session_row(user_id).await?.unwrap_or_default())
    }

    async fn revoke(
        &self,
        user_id: i64,
        what: Revoke,
        now: u64,
        outbox: &OutboxEntry,
    ) -> StoreResult<SessionState> {
        self.outbox_put(outbox).await?;
        for _ in 0..50 {
            let cur = self.session_row(user_id).await?;
            let prev = cur.as_ref().map(|s| s.version);
            let next = cur.unwrap_or_default().revoked_by(what, now);
            let revoked = simd_json::to_string(&next.revoked).map_err(unavailable)?;
            let r = self
                .s
                .execute_unpaged(
                    &self.q.cas_session,
                    (next.version, next.generation, revoked, user_id, prev),
                )
                .await
                .map_err(unavailable)?;
            if applied(r)? {
                self.wrote();
                return Ok(next);
            }
        }
        Err(StoreError::Unavailable(format!(
            "cql: session of user {user_id} kept changing"
        )))
    }

    async fn max_id(&self) -> StoreResult<i64> {
        let mut max = 0;
        for kind in [Kind::Users, Kind::Videos, Kind::Feed] {
            if let Some((id, _)) = self.list(kind, 0, 1).await?.first() {
                max = max.max(*id);
            }
        }
        Ok(max.max(self.outbox_max().await?))
    }

    async fn pending_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
        self.outbox_pending(limit).await
    }

    async fn outbox_done(&self, id: i64) -> StoreResult<()> {
        self.outbox_delete(id).await
    }

    async fn complete(&self, entry: &OutboxEntry) -> StoreResult<()> {
        self.outbox_complete(entry).await
    }

    async fn flush(&self) -> StoreResult<()> {
        // every acknowledged write was acknowledged by the cluster at the configured consistency
        Ok(())
    }

    async fn import(&self, data: Import) -> StoreResult<()> {
        self.bulk_import(data).await
    }

    async fn scan_likes(&self, after: (i64, i64), limit: usize) -> StoreResult<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        let mut user_after = after.0 - 1;
        while out.len() < limit {
            let users = self.ids_after(Kind::Users, 0, user_after, 256).await?;
            let Some(last) = users.last().copied() else {
                break;
            };
            for u in users {
                let mut vids: Vec<i64> = self
                    .list(Kind::UserLikes, u, usize::MAX)
                    .await?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
                vids.sort_unstable();
                out.extend(vids.into_iter().map(|v| (u, v)).filter(|p| *p > after));
                if out.len() >= limit {
                    break;
                }
            }
            user_after = last;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Walks the buckets table in token order, one row a list (`PER PARTITION LIMIT 1`),
    /// keeping the conversations' lists.
    async fn scan_conversations(
        &self,
        cursor: &[u8],
        limit: usize,
    ) -> StoreResult<ScanPage<(i64, i64)>> {
        type Row = (i8, i64, i64, i64);
        self.scan_tokens(
            &self.q.scan_buckets,
            cursor,
            limit,
            |(kind, lo, hi, token): Row| {
                (
                    token,
                    (kind == Kind::Conversation as i8).then_some((lo, hi)),
                )
            },
        )
        .await
    }

    /// Walks the comments table in token order, skipping deleted comments.
    async fn scan_comments(
        &self,
        cursor: &[u8],
        limit: usize,
    ) -> StoreResult<ScanPage<CommentRecord>> {
        type Row = (i64, i64, i64, String, i64, i64, Option<bool>, i64);
        self.scan_tokens(&self.q.scan_comments, cursor, limit, |row: Row| {
            let (id, video_id, user_id, content, reply_id, created_ms, deleted, token) = row;
            let record = CommentRecord {
                id,
                video_id,
                user_id,
                content,
                reply_id,
                created_ms,
            };
            (token, (deleted != Some(true)).then_some(record))
        })
        .await
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            durable_writes: self.writes.load(Ordering::Relaxed),
            fsyncs: 0,
            memory_bytes: 0,
        }
    }
}

/// A conversation's key: the two user ids, lower first.
fn low_high(a: i64, b: i64) -> (i64, i64) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}
