//! The store trait suite: one set of tests run against every backend (the embedded store in a
//! temp dir, and the CQL store in a keyspace of its own on the real node when
//! `CQL_TEST_NODE` names one; see deploy/local.sh).

use crate::helpers::{cql_config, cql_enabled, prepare_keyspace};
use douyin_lite::store::cql::CqlStore;
use douyin_lite::store::embedded::EmbeddedStore;
use douyin_lite::store::*;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Ids for the suite: time-ordered like snowflakes, unique within the process.
fn next_id() -> i64 {
    static SEQ: AtomicI64 = AtomicI64::new(0);
    let s = SEQ.fetch_add(1, Ordering::Relaxed) & 0xfff;
    let ms = douyin_lite::ids::now_ms() - douyin_lite::ids::EPOCH_MS;
    (ms << 12) | s
}

fn entry(op: OutboxOp) -> OutboxEntry {
    OutboxEntry { id: next_id(), op }
}

/// Every backend the suite runs against, each empty.
async fn backends() -> Vec<(&'static str, Arc<dyn Store>)> {
    let dir = tempfile::Builder::new()
        .prefix("store-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let mut out: Vec<(&'static str, Arc<dyn Store>)> =
        vec![("embedded", Arc::new(EmbeddedStore::open(&dir).unwrap()))];
    if cql_enabled() {
        let cfg = cql_config(&dir);
        prepare_keyspace(&cfg).await;
        out.push(("cql", Arc::new(CqlStore::connect(&cfg).await.unwrap())));
    }
    out
}

/// Every backend twice over the same data, as two instances see it: the embedded store is one
/// process's, so both handles are the same; the CQL store gets a second connection of its own
/// (its own counter rounds, as another instance has).
async fn backends_twice() -> Vec<(&'static str, Arc<dyn Store>, Arc<dyn Store>)> {
    let dir = tempfile::Builder::new()
        .prefix("store-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir).unwrap());
    let mut out = vec![("embedded", embedded.clone(), embedded)];
    if cql_enabled() {
        let cfg = cql_config(&dir);
        prepare_keyspace(&cfg).await;
        out.push((
            "cql",
            Arc::new(CqlStore::connect(&cfg).await.unwrap()),
            Arc::new(CqlStore::connect(&cfg).await.unwrap()),
        ));
    }
    out
}

fn user(name: &str) -> UserRecord {
    UserRecord {
        id: next_id(),
        name: name.into(),
        password_hash: "$argon2id$x".into(),
        avatar: String::new(),
        background_image: String::new(),
        signature: "hi".into(),
        created_ms: douyin_lite::ids::now_ms(),
    }
}

async fn new_user(s: &dyn Store, name: &str) -> i64 {
    let u = user(name);
    let e = entry(OutboxOp::UserCreated { user_id: u.id });
    assert!(s.create_user(&u, &e).await.unwrap());
    s.outbox_done(e.id).await.unwrap();
    u.id
}

async fn new_video(s: &dyn Store, author: i64) -> i64 {
    let v = VideoRecord {
        id: next_id(),
        author_id: author,
        title: "t".into(),
        desc: String::new(),
        play: "videos/x.mp4".into(),
        cover: String::new(),
        created_ms: douyin_lite::ids::now_ms(),
    };
    let e = entry(OutboxOp::VideoPublished {
        video_id: v.id,
        author_id: author,
    });
    s.put_video(&v, &e).await.unwrap();
    s.outbox_done(e.id).await.unwrap();
    v.id
}

/// Adds comment `content` of `user` on `video`; the comment and the video's counters.
async fn new_comment(
    s: &dyn Store,
    video: i64,
    user: i64,
    content: &str,
) -> (CommentRecord, VideoCounters) {
    let c = CommentRecord {
        id: next_id(),
        video_id: video,
        user_id: user,
        content: content.into(),
        reply_id: 0,
        created_ms: 0,
    };
    let e = entry(OutboxOp::CommentChanged {
        video_id: video,
        comment_id: c.id,
    });
    let vc = s.add_comment(&c, &e).await.unwrap();
    (c, vc)
}

async fn like(s: &dyn Store, u: i64, v: i64, a: i64, on: bool) -> LikeChange {
    let e = entry(OutboxOp::LikeChanged {
        user_id: u,
        video_id: v,
        author_id: a,
    });
    let c = s.set_like(u, v, a, on, next_id(), &e).await.unwrap();
    s.outbox_done(e.id).await.unwrap();
    c
}

#[tokio::test]
async fn users_are_unique_by_name_and_scan_in_id_order() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "alice").await;
        let dup = user("alice");
        let e = entry(OutboxOp::UserCreated { user_id: dup.id });
        assert!(!s.create_user(&dup, &e).await.unwrap(), "{name}");
        assert_eq!(s.get_user(dup.id).await.unwrap(), None, "{name}");
        assert_eq!(s.user_id_by_name("alice").await.unwrap(), Some(a), "{name}");
        assert_eq!(s.get_user(a).await.unwrap().unwrap().name, "alice");
        let b = new_user(&*s, "bob").await;
        let ids: Vec<i64> = s
            .scan_users(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(ids, vec![a, b], "{name}");
        let ids: Vec<i64> = s
            .scan_users(a, 10)
            .await
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(ids, vec![b], "{name}");
        assert!(s.get_user(next_id()).await.unwrap().is_none());
        assert!(s.max_id().await.unwrap() >= b, "{name}");
    }
}

#[tokio::test]
async fn videos_list_newest_first_in_feed_and_by_author() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "author").await;
        let v1 = new_video(&*s, a).await;
        let v2 = new_video(&*s, a).await;
        assert_eq!(
            s.video_ids_by_author(a).await.unwrap(),
            vec![v2, v1],
            "{name}"
        );
        assert_eq!(s.feed_ids(1).await.unwrap(), vec![v2], "{name}");
        assert_eq!(s.feed_ids(10).await.unwrap(), vec![v2, v1], "{name}");
        let scanned: Vec<i64> = s
            .scan_videos(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(scanned, vec![v1, v2], "{name}");
        assert_eq!(s.get_video(v1).await.unwrap().unwrap().author_id, a);
        s.add_play(v1, "ip:1").await.unwrap();
        s.add_play(v1, "ip:1").await.unwrap();
        s.add_play(v1, "u:7").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(s.plays(v1).await.unwrap().len(), 2, "{name}");
    }
}

#[tokio::test]
async fn likes_count_once_and_version_every_change() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "a").await;
        let u = new_user(&*s, "u").await;
        let v = new_video(&*s, a).await;
        let c = like(&*s, u, v, a, true).await;
        assert!(c.changed, "{name}");
        assert_eq!((c.video.favorite_count, c.video.favorite_version), (1, 1));
        assert_eq!((c.liker.favorite_count, c.liker.like_version), (1, 1));
        assert_eq!(c.author.total_favorited, 1);
        assert_eq!(c.pair_version, 1);
        let again = like(&*s, u, v, a, true).await;
        assert!(!again.changed, "{name}: liking twice changes nothing");
        assert_eq!(again.video.favorite_count, 1);
        assert_eq!(s.likes_by_user(u).await.unwrap().len(), 1);
        assert_eq!(s.count_likers(v).await.unwrap(), 1);
        let off = like(&*s, u, v, a, false).await;
        assert!(off.changed);
        assert_eq!(
            (off.video.favorite_count, off.video.favorite_version),
            (0, 2)
        );
        assert_eq!(off.pair_version, 2);
        assert!(s.likes_by_user(u).await.unwrap().is_empty(), "{name}");
        assert_eq!(s.count_likers(v).await.unwrap(), 0);
        // a self-like moves both of the author's groups
        let own = like(&*s, a, v, a, true).await;
        assert_eq!(own.liker.favorite_count, 1, "{name}");
        assert_eq!(own.author.total_favorited, 1, "{name}");
        let uc = s.user_counters(a).await.unwrap();
        assert_eq!((uc.favorite_count, uc.total_favorited), (1, 1), "{name}");
        let vc = s.video_counters(v).await.unwrap();
        assert_eq!((vc.favorite_count, vc.favorite_version), (1, 3), "{name}");
        assert_eq!(
            s.scan_likes((0, 0), 10).await.unwrap(),
            vec![(a, v)],
            "{name}"
        );
    }
}

#[tokio::test]
async fn concurrent_likes_of_one_video_are_exact() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "hot").await;
        let v = new_video(&*s, a).await;
        let mut users = Vec::new();
        for i in 0..24 {
            users.push(new_user(&*s, &format!("fan{i}")).await);
        }
        // every fan likes, and the first eight also toggle twice more, all at once
        let mut jobs = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let rounds = if i < 8 { 3 } else { 1 };
            for r in 0..rounds {
                let s = s.clone();
                let u = *u;
                jobs.push(tokio::spawn(async move {
                    like(&*s, u, v, a, r % 2 == 0).await;
                }));
            }
        }
        for j in jobs {
            j.await.unwrap();
        }
        let vc = s.video_counters(v).await.unwrap();
        let likers = s.count_likers(v).await.unwrap();
        assert_eq!(
            vc.favorite_count, likers,
            "{name}: counter equals the like records"
        );
        let ac = s.user_counters(a).await.unwrap();
        assert_eq!(ac.total_favorited, likers, "{name}");
        let mut sum = 0;
        for u in &users {
            let c = s.user_counters(*u).await.unwrap();
            assert_eq!(
                c.favorite_count,
                s.likes_by_user(*u).await.unwrap().len() as i64
            );
            sum += c.favorite_count;
        }
        assert_eq!(sum, likers, "{name}");
        assert!(likers >= 16, "{name}: the 16 single likes count ({likers})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_finished_by_two_instances_at_once_counts_once() {
    for (name, s, other) in backends_twice().await {
        let a = new_user(&*s, "hot").await;
        let v = new_video(&*s, a).await;
        let mut jobs = Vec::new();
        let mut users = Vec::new();
        for i in 0..80 {
            let u = new_user(&*s, &format!("fan{i}")).await;
            users.push(u);
            let e = entry(OutboxOp::LikeChanged {
                user_id: u,
                video_id: v,
                author_id: a,
            });
            // one instance makes the change while the other replays its outbox entry, as a
            // restarted or a second instance does with every entry it finds pending
            let (s, other) = (s.clone(), other.clone());
            jobs.push(tokio::spawn(async move {
                let replay = {
                    let (other, e) = (other.clone(), e.clone());
                    tokio::spawn(async move {
                        for k in 0..6u64 {
                            other.complete(&e).await.unwrap();
                            tokio::time::sleep(std::time::Duration::from_micros(300 * k)).await;
                        }
                    })
                };
                let c = s.set_like(u, v, a, true, next_id(), &e).await.unwrap();
                // what the like hands on (to Redis) holds the like, whoever counted it
                assert_eq!(
                    c.liker.favorite_count, 1,
                    "{name}: the liker's count after it"
                );
                replay.await.unwrap();
                s.outbox_done(e.id).await.unwrap();
            }));
        }
        for j in jobs {
            j.await.unwrap();
        }
        let likers = s.count_likers(v).await.unwrap();
        assert_eq!(likers, 80, "{name}");
        assert_eq!(
            s.video_counters(v).await.unwrap().favorite_count,
            80,
            "{name}"
        );
        assert_eq!(
            s.user_counters(a).await.unwrap().total_favorited,
            80,
            "{name}"
        );
        for u in users {
            assert_eq!(
                s.user_counters(u).await.unwrap().favorite_count,
                1,
                "{name}: user {u} liked once"
            );
        }
    }
}

#[tokio::test]
async fn follows_keep_both_lists_and_counters() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "a").await;
        let b = new_user(&*s, "b").await;
        let e = entry(OutboxOp::FollowChanged {
            follower: a,
            followee: b,
        });
        let c = s.set_follow(a, b, true, next_id(), &e).await.unwrap();
        assert!(c.changed, "{name}");
        assert_eq!((c.follower.follow_count, c.followee.follower_count), (1, 1));
        let again = s.set_follow(a, b, true, next_id(), &e).await.unwrap();
        assert!(!again.changed, "{name}");
        assert_eq!(s.following(a).await.unwrap()[0].1, b, "{name}");
        assert_eq!(s.followers(b).await.unwrap()[0].1, a, "{name}");
        let e2 = entry(OutboxOp::FollowChanged {
            follower: a,
            followee: b,
        });
        let off = s.set_follow(a, b, false, next_id(), &e2).await.unwrap();
        assert_eq!(
            (off.follower.follow_count, off.pair_version),
            (0, 2),
            "{name}"
        );
        assert!(s.following(a).await.unwrap().is_empty());
        assert!(s.followers(b).await.unwrap().is_empty());
        assert_eq!(
            s.user_counters(b).await.unwrap().follower_version,
            2,
            "{name}"
        );
    }
}

#[tokio::test]
async fn comments_count_once_and_delete_once() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "a").await;
        let v = new_video(&*s, a).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let (c, vc) = new_comment(&*s, v, a, &format!("c{i}")).await;
            assert_eq!(vc.comment_count, i + 1, "{name}");
            ids.push(c.id);
        }
        let listed = s.comment_ids_by_video(v).await.unwrap();
        assert_eq!(
            listed,
            ids.iter().rev().copied().collect::<Vec<_>>(),
            "{name}"
        );
        let e = entry(OutboxOp::CommentChanged {
            video_id: v,
            comment_id: ids[1],
        });
        let vc = s.delete_comment(ids[1], &e).await.unwrap().unwrap();
        assert_eq!((vc.comment_count, vc.comment_version), (2, 4), "{name}");
        assert!(
            s.delete_comment(ids[1], &e).await.unwrap().is_none(),
            "{name}"
        );
        assert!(s.get_comment(ids[1]).await.unwrap().is_none(), "{name}");
        assert_eq!(s.get_comment(ids[0]).await.unwrap().unwrap().content, "c0");
        assert_eq!(s.comment_ids_by_video(v).await.unwrap().len(), 2, "{name}");
        assert_eq!(s.video_counters(v).await.unwrap().comment_count, 2);
    }
}

/// Every item of a scan, read a page at a time from `scan` (given the cursor): each page
/// holds at most `limit`, and the scan ends within `max_pages`.
async fn scan_all<T, F, Fut>(name: &str, limit: usize, max_pages: usize, scan: F) -> Vec<T>
where
    T: std::fmt::Debug,
    F: Fn(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = StoreResult<ScanPage<T>>>,
{
    let (mut all, mut cursor) = (Vec::new(), Vec::new());
    for _ in 0..max_pages {
        let (page, next) = scan(cursor).await.unwrap();
        assert!(page.len() <= limit, "{name}: {page:?}");
        all.extend(page);
        match next {
            Some(c) => cursor = c,
            None => return all,
        }
    }
    panic!("{name}: the scan did not end within {max_pages} pages");
}

#[tokio::test]
async fn conversations_scan_once_each_page_by_page() {
    for (name, s) in backends().await {
        let [a, b, c, d] = [
            new_user(&*s, "a").await,
            new_user(&*s, "b").await,
            new_user(&*s, "c").await,
            new_user(&*s, "d").await,
        ];
        // other lists share the CQL store's buckets table: a video, a like, a follow
        let v = new_video(&*s, a).await;
        let e = entry(OutboxOp::LikeChanged {
            user_id: b,
            video_id: v,
            author_id: a,
        });
        s.set_like(b, v, a, true, next_id(), &e).await.unwrap();
        let e = entry(OutboxOp::FollowChanged {
            follower: c,
            followee: d,
        });
        s.set_follow(c, d, true, next_id(), &e).await.unwrap();
        assert_eq!(s.scan_conversations(&[], 10).await.unwrap(), (vec![], None));
        // (a, b) over two hours, both directions; (c, a) and (d, b) once each
        let two_hours_ago = next_id() - ((2 * 3_600_000) << 12);
        for (id, from, to) in [
            (two_hours_ago, a, b),
            (next_id(), b, a),
            (next_id(), c, a),
            (next_id(), d, b),
        ] {
            let m = MessageRecord {
                id,
                from_user_id: from,
                to_user_id: to,
                content: "hi".into(),
                created_ms: 0,
            };
            let e = entry(OutboxOp::MessageSent { from, to });
            s.add_message(&m, &e).await.unwrap();
        }
        let mut want = vec![(a, b), (a.min(c), a.max(c)), (b.min(d), b.max(d))];
        want.sort_unstable();
        let (mut all, next) = s.scan_conversations(&[], 10).await.unwrap();
        all.sort_unstable();
        assert_eq!((all, next), (want.clone(), None), "{name}: one page");
        for limit in 1..=3 {
            let mut paged = scan_all(name, limit, 6, |c| {
                let s = s.clone();
                async move { s.scan_conversations(&c, limit).await }
            })
            .await;
            paged.sort_unstable();
            assert_eq!(paged, want, "{name}: {limit} a page, each once");
        }
    }
}

#[tokio::test]
async fn comments_scan_once_each_without_the_deleted() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "a").await;
        let v = new_video(&*s, a).await;
        assert_eq!(s.scan_comments(&[], 10).await.unwrap(), (vec![], None));
        let mut want = Vec::new();
        for i in 0..8 {
            want.push(new_comment(&*s, v, a, &format!("c{i}")).await.0);
        }
        // every third deleted: a page of the CQL store's rows then holds fewer comments
        // than it read, and a scan must still hand out at most `limit` a page
        for i in [6, 3, 0] {
            let gone = want.remove(i);
            let e = entry(OutboxOp::CommentChanged {
                video_id: v,
                comment_id: gone.id,
            });
            assert!(s.delete_comment(gone.id, &e).await.unwrap().is_some());
        }
        let (mut all, next) = s.scan_comments(&[], 10).await.unwrap();
        all.sort_unstable_by_key(|c| c.id);
        assert_eq!((&all, next), (&want, None), "{name}: one page");
        for limit in 1..=4 {
            let mut paged = scan_all(name, limit, 6, |c| {
                let s = s.clone();
                async move { s.scan_comments(&c, limit).await }
            })
            .await;
            paged.sort_unstable_by_key(|c| c.id);
            assert_eq!(paged, want, "{name}: {limit} a page, each once");
        }
    }
}

#[tokio::test]
async fn messages_and_sessions() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "a").await;
        let b = new_user(&*s, "b").await;
        let mut sent = Vec::new();
        for (from, to) in [(a, b), (b, a), (a, b)] {
            let m = MessageRecord {
                id: next_id(),
                from_user_id: from,
                to_user_id: to,
                content: "hi".into(),
                created_ms: 0,
            };
            let e = entry(OutboxOp::MessageSent { from, to });
            s.add_message(&m, &e).await.unwrap();
            sent.push(m.id);
        }
        let got: Vec<i64> = s
            .conversation(b, a)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(got, sent, "{name}: oldest first, both directions");
        assert_eq!(s.session(a).await.unwrap(), SessionState::default());
        let e = entry(OutboxOp::SessionChanged { user_id: a });
        let st = s
            .revoke(
                a,
                Revoke::Token {
                    id: 9,
                    exp: u64::MAX,
                },
                1,
                &e,
            )
            .await
            .unwrap();
        assert_eq!(st.revoked, vec![(9, u64::MAX)], "{name}");
        let st = s.revoke(a, Revoke::All, 1, &e).await.unwrap();
        assert_eq!((st.generation, st.version), (1, 2), "{name}");
        assert_eq!(s.session(a).await.unwrap(), st, "{name}");
    }
}

#[tokio::test]
async fn outbox_keeps_entries_until_done_and_replays_harmlessly() {
    for (name, s) in backends().await {
        let a = new_user(&*s, "a").await;
        let u = new_user(&*s, "u").await;
        let v = new_video(&*s, a).await;
        let e = entry(OutboxOp::LikeChanged {
            user_id: u,
            video_id: v,
            author_id: a,
        });
        s.set_like(u, v, a, true, next_id(), &e).await.unwrap();
        let pending = s.pending_outbox(100).await.unwrap();
        assert!(pending.iter().any(|p| p.id == e.id), "{name}: {pending:?}");
        // finishing an already finished change again counts nothing twice
        s.complete(&e).await.unwrap();
        s.complete(&e).await.unwrap();
        assert_eq!(
            s.video_counters(v).await.unwrap().favorite_count,
            1,
            "{name}"
        );
        assert_eq!(
            s.user_counters(u).await.unwrap().favorite_count,
            1,
            "{name}"
        );
        s.outbox_done(e.id).await.unwrap();
        let pending = s.pending_outbox(100).await.unwrap();
        assert!(!pending.iter().any(|p| p.id == e.id), "{name}");
    }
}

#[tokio::test]
async fn import_loads_a_consistent_data_set() {
    for (name, s) in backends().await {
        let u1 = user("i1");
        let u2 = user("i2");
        let now = douyin_lite::ids::now_ms();
        let video = |title: &str| VideoRecord {
            id: next_id(),
            author_id: u1.id,
            title: title.into(),
            desc: String::new(),
            play: "p".into(),
            cover: String::new(),
            created_ms: now,
        };
        let (v, w) = (video("t"), video("w"));
        let like_id = next_id();
        let comment = CommentRecord {
            id: next_id(),
            video_id: v.id,
            user_id: u2.id,
            content: "imported".into(),
            reply_id: 0,
            created_ms: now,
        };
        let message = MessageRecord {
            id: next_id(),
            from_user_id: u2.id,
            to_user_id: u1.id,
            content: "hello".into(),
            created_ms: now,
        };
        let data = Import {
            users: vec![u1.clone(), u2.clone()],
            user_counters: vec![
                (
                    u1.id,
                    UserCounters {
                        total_favorited: 1,
                        follower_count: 1,
                        ..Default::default()
                    },
                ),
                (
                    u2.id,
                    UserCounters {
                        favorite_count: 1,
                        follow_count: 1,
                        ..Default::default()
                    },
                ),
            ],
            videos: vec![v.clone(), w.clone()],
            video_counters: vec![(
                v.id,
                VideoCounters {
                    favorite_count: 1,
                    comment_count: 1,
                    ..Default::default()
                },
            )],
            likes: vec![(u2.id, v.id, like_id)],
            follows: vec![(u2.id, u1.id, next_id())],
            comments: vec![comment.clone()],
            messages: vec![message.clone()],
        };
        s.import(data).await.unwrap();
        // every table the import writes, read back
        for u in [&u1, &u2] {
            assert_eq!(
                s.user_id_by_name(&u.name).await.unwrap(),
                Some(u.id),
                "{name}"
            );
            assert_eq!(
                s.get_user(u.id).await.unwrap().unwrap().name,
                u.name,
                "{name}"
            );
        }
        assert_eq!(
            s.user_counters(u1.id).await.unwrap().total_favorited,
            1,
            "{name}"
        );
        assert_eq!(
            s.get_video(w.id).await.unwrap().unwrap().title,
            "w",
            "{name}"
        );
        let mut works = s.video_ids_by_author(u1.id).await.unwrap();
        works.sort_unstable();
        let mut both = vec![v.id, w.id];
        both.sort_unstable();
        assert_eq!(works, both, "{name}");
        let mut feed = s.feed_ids(10).await.unwrap();
        feed.sort_unstable();
        assert_eq!(feed, both, "{name}");
        assert_eq!(s.likes_by_user(u2.id).await.unwrap(), vec![(like_id, v.id)]);
        assert_eq!(s.count_likers(v.id).await.unwrap(), 1, "{name}");
        assert_eq!(s.video_counters(v.id).await.unwrap().favorite_count, 1);
        assert_eq!(s.following(u2.id).await.unwrap()[0].1, u1.id, "{name}");
        assert_eq!(s.followers(u1.id).await.unwrap()[0].1, u2.id, "{name}");
        assert_eq!(
            s.comment_ids_by_video(v.id).await.unwrap(),
            vec![comment.id]
        );
        let got = s.get_comment(comment.id).await.unwrap().unwrap();
        assert_eq!(got.content, "imported", "{name}");
        let chat = s.conversation(u1.id, u2.id).await.unwrap();
        assert_eq!(chat.len(), 1, "{name}");
        assert_eq!(chat[0].content, "hello", "{name}");
        // a change after the import counts on top of it
        let c = like(&*s, u1.id, v.id, u1.id, true).await;
        assert_eq!(c.video.favorite_count, 2, "{name}");
        assert_eq!(s.count_likers(v.id).await.unwrap(), 2, "{name}");
    }
}

#[tokio::test]
async fn migrate_runs_once_from_many_at_once_and_serve_refuses_an_old_schema() {
    if !cql_enabled() {
        return; // the embedded store has no schema to migrate
    }
    let dir = tempfile::Builder::new()
        .prefix("migrate-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let cfg = cql_config(&dir);
    // a keyspace nobody migrated: the store will not serve from it
    let err = match CqlStore::connect(&cfg).await {
        Ok(_) => panic!("connected to a keyspace that does not exist"),
        Err(e) => e,
    };
    assert!(err.contains("keyspace") || err.contains("cql"), "{err}");
    let three =
        futures_util::future::join_all((0..3).map(|_| douyin_lite::store::cql::migrate(&cfg)))
            .await;
    let applied: Vec<Vec<String>> = three.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        applied.iter().filter(|a| !a.is_empty()).count(),
        1,
        "exactly one migrator applied: {applied:?}"
    );
    assert!(douyin_lite::store::cql::migrate(&cfg)
        .await
        .unwrap()
        .is_empty());
    CqlStore::connect(&cfg)
        .await
        .expect("a migrated keyspace serves");
}
