//! Demo content: a few users and short videos, made with ffmpeg and published through the same
//! code path as a real upload, so that a newcomer's feed is never empty.

use crate::app::AppState;
use crate::error::AppError;
use crate::user::NewUser;
use std::sync::Arc;

/// Demo accounts: (username, signature). Their password is [`DEMO_PASSWORD`].
pub const DEMO_USERS: [(&str, &str); 3] = [
    ("demo_alice", "Sunsets and test patterns"),
    ("demo_bob", "Colour bars enthusiast"),
    ("demo_carol", "Short clips, long stories"),
];
/// Password of the demo accounts (demo data only; change or delete them in production).
pub const DEMO_PASSWORD: &str = "douyin-demo";
const VIDEOS_PER_USER: usize = 2;

/// Creates the demo users (those missing) and their videos. Returns (users, videos) created.
pub async fn seed_demo(st: &AppState) -> Result<(usize, usize), AppError> {
    let (mut users, mut videos) = (0, 0);
    for (i, (name, sig)) in DEMO_USERS.iter().enumerate() {
        if st.store.user_id_by_name(name).await?.is_some() {
            continue;
        }
        let uid = crate::user::create_user(
            st,
            NewUser {
                username: name.to_string(),
                password: DEMO_PASSWORD.into(),
                avatar: String::new(),
                background_image: String::new(),
                signature: sig.to_string(),
            },
        )
        .await?;
        users += 1;
        for j in 0..VIDEOS_PER_USER {
            let tmp = tempfile::Builder::new()
                .suffix(".mp4")
                .tempfile_in(&st.tmp_dir)
                .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?
                .into_temp_path();
            let hue = ((i * VIDEOS_PER_USER + j) * 53 % 360) as u32;
            crate::media::probe::generate_sample(&st.cfg.media.ffmpeg, &tmp, 3, hue).await?;
            let title = format!("{name} clip {}", j + 1);
            crate::publish::publish_file(st, uid, title, "demo video".into(), &tmp).await?;
            videos += 1;
        }
    }
    Ok((users, videos))
}

/// Seeds only an install with no users at all (`serve --demo`).
pub async fn seed_if_empty(st: &AppState) -> Result<Option<(usize, usize)>, AppError> {
    if !st.store.scan_users(0, 1).await?.is_empty() {
        return Ok(None);
    }
    seed_demo(st).await.map(Some)
}

/// The size of the benchmark data set (`seed --bench`).
#[derive(Clone, Copy, Debug)]
pub struct BenchSpec {
    pub users: usize,
    pub videos: usize,
    pub likes: usize,
    pub follows: usize,
    pub comments: usize,
    pub messages: usize,
}

impl Default for BenchSpec {
    /// 10,000 users, 100,000 videos, 1,000,000 likes, 200,000 follows, 100,000 comments and
    /// 100,000 messages.
    fn default() -> Self {
        Self {
            users: 10_000,
            videos: 100_000,
            likes: 1_000_000,
            follows: 200_000,
            comments: 100_000,
            messages: 100_000,
        }
    }
}

/// Password of every bench user (bench data only).
pub const BENCH_PASSWORD: &str = "bench-password";
/// The last tenth of the bench users like nothing in the data set, so that a benchmark can
/// count the likes it adds exactly.
pub fn bench_fresh_users(users: usize) -> usize {
    (users / 10).max(1)
}

/// What `seed --bench` wrote, for the benchmark scripts.
#[derive(Debug, Default)]
pub struct BenchSeeded {
    pub users: Vec<i64>,
    /// Video ids, most popular first.
    pub videos_by_popularity: Vec<i64>,
    /// Mutual-follow pairs (a, b), a < b.
    pub friends: Vec<(i64, i64)>,
    pub likes: usize,
    pub follows: usize,
    pub comments: usize,
    pub messages: usize,
}

/// A skewed index in 0..n: small indexes (the popular ones) come up far more often, roughly
/// as a power law (the top 1% of items draw about a fifth of the picks at `skew` 3).
fn skewed(rng: &mut impl rand::Rng, n: usize, skew: f64) -> usize {
    let r: f64 = rng.random();
    ((r.powf(skew) * n as f64) as usize).min(n - 1)
}

/// An id issued at Unix millisecond `ms` for entity class `class` (1..=15), distinct from
/// every other class's ids and below anything the live generator will issue later.
fn synthetic_id(ms: i64, class: i64) -> i64 {
    crate::ids::floor_for_ms(ms) | class
}

/// Loads the benchmark data set straight into the durable store (one bulk import), with a skew
/// like a real app: a few authors write most videos, a few videos get most likes and comments,
/// a few users have most followers. Deterministic for a given `seed`. The store must hold no
/// users yet. Redis is filled on demand afterwards (or by `rebuild-cache`).
pub async fn seed_bench(
    st: &AppState,
    spec: BenchSpec,
    seed: u64,
) -> Result<BenchSeeded, AppError> {
    use crate::store::{
        CommentRecord, Import, MessageRecord, UserCounters, UserRecord, VideoCounters, VideoRecord,
    };
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use std::collections::{HashMap, HashSet};

    if spec.users < 2 || spec.videos < 1 {
        return Err(AppError::param(
            "seed --bench needs at least 2 users and 1 video",
        ));
    }
    if !st.store.scan_users(0, 1).await?.is_empty() {
        return Err(AppError::param(
            "seed --bench loads an empty store only; use a fresh --data-dir",
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let now = crate::ids::now_ms() - 60_000;
    let day = 86_400_000i64;
    // times spread over the past, oldest first, each class on its own id bits
    let span = |n: usize, days: i64| -> Vec<i64> {
        let step = ((days * day) / n.max(1) as i64).max(1);
        (0..n as i64).map(|i| now - days * day + i * step).collect()
    };
    let hash = st.auth.hash_password(BENCH_PASSWORD.to_string()).await?;

    let user_ids: Vec<i64> = span(spec.users, 400)
        .into_iter()
        .map(|ms| synthetic_id(ms, 1))
        .collect();
    let users: Vec<UserRecord> = user_ids
        .iter()
        .enumerate()
        .map(|(i, id)| UserRecord {
            id: *id,
            name: format!("bench_{i}"),
            password_hash: hash.clone(),
            avatar: format!("https://picsum.photos/seed/u{i}/200/200"),
            background_image: String::new(),
            signature: format!("bench user {i}"),
            created_ms: crate::ids::time_ms(*id),
        })
        .collect();
    // popularity rank -> user (a shuffled order, so popular users are not the oldest)
    let mut by_rank = user_ids.clone();
    by_rank.shuffle(&mut rng);
    let fresh = bench_fresh_users(spec.users);
    let likers = spec.users - fresh;

    let mut videos = Vec::with_capacity(spec.videos);
    for (i, ms) in span(spec.videos, 365).into_iter().enumerate() {
        let id = synthetic_id(ms, 2);
        let author = by_rank[skewed(&mut rng, spec.users, 2.5)];
        videos.push(VideoRecord {
            id,
            author_id: author,
            title: format!("bench video {i}"),
            desc: "generated by seed --bench".into(),
            play: format!("videos/bench-{}.mp4", i % 100),
            cover: format!("covers/bench-{}.jpg", i % 100),
            created_ms: ms,
        });
    }
    let author_of: HashMap<i64, i64> = videos.iter().map(|v| (v.id, v.author_id)).collect();
    let mut vid_rank: Vec<i64> = videos.iter().map(|v| v.id).collect();
    vid_rank.shuffle(&mut rng);

    let mut ucount: HashMap<i64, UserCounters> = HashMap::with_capacity(spec.users);
    let mut vcount: HashMap<i64, VideoCounters> = HashMap::with_capacity(spec.videos);

    // likes: users among the first nine tenths, videos skewed
    let like_times = span(spec.likes, 300);
    let mut seen = HashSet::with_capacity(spec.likes);
    let mut likes = Vec::with_capacity(spec.likes);
    let mut attempts = 0usize;
    while likes.len() < spec.likes && attempts < spec.likes * 4 {
        attempts += 1;
        let u = user_ids[rng.random_range(0..likers)];
        let v = vid_rank[skewed(&mut rng, spec.videos, 3.0)];
        if seen.insert((u, v)) {
            likes.push((u, v, synthetic_id(like_times[likes.len()], 3)));
            let c = ucount.entry(u).or_default();
            c.favorite_count += 1;
            c.like_version += 1;
            let a = ucount.entry(author_of[&v]).or_default();
            a.total_favorited += 1;
            a.received_version += 1;
            let vc = vcount.entry(v).or_default();
            vc.favorite_count += 1;
            vc.favorite_version += 1;
        }
    }
    drop(seen);

    // follows: followers uniform, followees skewed; a fifth of them followed back (friends)
    let follow_times = span(spec.follows, 300);
    let mut fseen = HashSet::with_capacity(spec.follows);
    let mut follows = Vec::with_capacity(spec.follows);
    let mut friends = Vec::new();
    attempts = 0;
    while follows.len() < spec.follows && attempts < spec.follows * 4 {
        attempts += 1;
        let a = user_ids[rng.random_range(0..spec.users)];
        let b = by_rank[skewed(&mut rng, spec.users, 2.0)];
        let mut pairs = vec![(a, b)];
        if rng.random_range(0..5) == 0 {
            pairs.push((b, a));
        }
        if a == b || pairs.iter().any(|p| fseen.contains(p)) {
            continue;
        }
        if pairs.len() == 2 {
            if follows.len() + 2 > spec.follows {
                continue;
            }
            friends.push((a.min(b), a.max(b)));
        }
        for (x, y) in pairs {
            fseen.insert((x, y));
            follows.push((x, y, synthetic_id(follow_times[follows.len()], 4)));
            let c = ucount.entry(x).or_default();
            c.follow_count += 1;
            c.follow_version += 1;
            let c = ucount.entry(y).or_default();
            c.follower_count += 1;
            c.follower_version += 1;
        }
    }
    drop(fseen);

    // comments on skewed videos by anyone
    let comment_times = span(spec.comments, 300);
    let mut comments = Vec::with_capacity(spec.comments);
    for (i, ms) in comment_times.into_iter().enumerate() {
        let v = vid_rank[skewed(&mut rng, spec.videos, 3.0)];
        comments.push(CommentRecord {
            id: synthetic_id(ms, 5),
            video_id: v,
            user_id: user_ids[rng.random_range(0..spec.users)],
            content: format!("bench comment {i}"),
            reply_id: 0,
            created_ms: ms,
        });
        let vc = vcount.entry(v).or_default();
        vc.comment_count += 1;
        vc.comment_version += 1;
    }

    // messages between friends (or any two users when there are none)
    let mut messages = Vec::with_capacity(spec.messages);
    for (i, ms) in span(spec.messages, 60).into_iter().enumerate() {
        let (a, b) = if friends.is_empty() {
            (user_ids[0], user_ids[1])
        } else {
            friends[skewed(&mut rng, friends.len(), 1.5)]
        };
        let (from, to) = if rng.random() { (a, b) } else { (b, a) };
        messages.push(MessageRecord {
            id: synthetic_id(ms, 6),
            from_user_id: from,
            to_user_id: to,
            content: format!("bench message {i}"),
            created_ms: ms,
        });
    }

    let out = BenchSeeded {
        users: user_ids.clone(),
        videos_by_popularity: vid_rank,
        friends,
        likes: likes.len(),
        follows: follows.len(),
        comments: comments.len(),
        messages: messages.len(),
    };
    st.store
        .import(Import {
            users,
            user_counters: ucount.into_iter().collect(),
            videos,
            video_counters: vcount.into_iter().collect(),
            likes,
            follows,
            comments,
            messages,
        })
        .await?;
    // a feed cached before the import would hide the new videos
    st.cache.drop_feed().await?;
    st.cache.near.clear();
    Ok(out)
}

/// `seed --bench`: loads the data set scaled by `scale` and writes, under `out`,
/// `users.txt` (`<id> <token>` per line, the fresh users last, after a `# fresh` line),
/// `videos.txt` (video ids, most popular first), `friends.txt` (`<a> <b>` per line) and
/// `feed_pages.txt` (the `latest_time` of each feed page, newest first; 0 for the first).
pub async fn seed_bench_cli(
    st: &Arc<AppState>,
    out: &std::path::Path,
    scale: f64,
) -> Result<(), AppError> {
    let full = BenchSpec::default();
    let sc = |n: usize| ((n as f64 * scale).round() as usize).max(2);
    let spec = BenchSpec {
        users: sc(full.users),
        videos: sc(full.videos),
        likes: sc(full.likes),
        follows: sc(full.follows),
        comments: sc(full.comments),
        messages: sc(full.messages),
    };
    let started = std::time::Instant::now();
    let seeded = seed_bench(st, spec, 42).await?;
    let io = |e: std::io::Error| AppError::Internal(format!("bench files: {e}"));
    std::fs::create_dir_all(out).map_err(io)?;
    let fresh_from = seeded.users.len() - bench_fresh_users(seeded.users.len());
    let mut users = String::with_capacity(seeded.users.len() * 200);
    for (i, id) in seeded.users.iter().enumerate() {
        if i == fresh_from {
            users.push_str("# fresh\n");
        }
        users.push_str(&format!("{id} {}\n", st.auth.issue(*id)?));
    }
    std::fs::write(out.join("users.txt"), users).map_err(io)?;
    let videos: String = seeded
        .videos_by_popularity
        .iter()
        .map(|v| format!("{v}\n"))
        .collect();
    std::fs::write(out.join("videos.txt"), videos).map_err(io)?;
    let friends: String = seeded
        .friends
        .iter()
        .map(|(a, b)| format!("{a} {b}\n"))
        .collect();
    std::fs::write(out.join("friends.txt"), friends).map_err(io)?;
    // latest_time of each feed page, newest first: what a client paging with next_time sends
    let mut newest_first = seeded.videos_by_popularity.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    let page = st.cfg.server.feed_page_size;
    let pages: String = std::iter::once("0\n".to_string())
        .chain(
            newest_first
                .iter()
                .skip(page - 1)
                .step_by(page)
                .take(5000)
                .map(|id| format!("{}\n", crate::ids::time_ms(*id))),
        )
        .collect();
    std::fs::write(out.join("feed_pages.txt"), pages).map_err(io)?;
    println!(
        "seeded {} users, {} videos, {} likes, {} follows, {} comments, {} messages in {:.1} s; files in {}",
        seeded.users.len(),
        seeded.videos_by_popularity.len(),
        seeded.likes,
        seeded.follows,
        seeded.comments,
        seeded.messages,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The outcome of [`check`].
#[derive(Debug, Default)]
pub struct CheckReport {
    pub users: usize,
    pub videos: usize,
    /// Active like records.
    pub likes: usize,
    /// Sum of the videos' durable favorite counts.
    pub video_favorites: i64,
    pub mismatches: usize,
    /// The first few disagreements, for people.
    pub examples: Vec<String>,
}

impl CheckReport {
    fn bad(&mut self, what: String) {
        self.mismatches += 1;
        if self.examples.len() < 20 {
            self.examples.push(what);
        }
    }

    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct J<'a> {
            users: usize,
            videos: usize,
            likes: usize,
            video_favorites: i64,
            mismatches: usize,
            examples: &'a [String],
        }
        simd_json::to_string(&J {
            users: self.users,
            videos: self.videos,
            likes: self.likes,
            video_favorites: self.video_favorites,
            mismatches: self.mismatches,
            examples: &self.examples,
        })
        .unwrap_or_default()
    }
}

/// Checks every user's and video's counters against the records they count in the durable
/// store, and the counters cached in Redis against the durable ones: lost or double-counted
/// updates show up as mismatches.
pub async fn check(st: &AppState) -> Result<CheckReport, AppError> {
    use std::collections::HashMap;
    let mut r = CheckReport::default();
    // likes given and received, counted from the like records
    let mut given: HashMap<i64, i64> = HashMap::new();
    let mut per_video: HashMap<i64, i64> = HashMap::new();
    let mut after = (0, 0);
    loop {
        let batch = st.store.scan_likes(after, 10_000).await?;
        let Some(last) = batch.last() else { break };
        after = *last;
        for (u, v) in &batch {
            *given.entry(*u).or_default() += 1;
            *per_video.entry(*v).or_default() += 1;
        }
        r.likes += batch.len();
    }
    let mut received: HashMap<i64, i64> = HashMap::new();
    let mut after = 0;
    loop {
        let batch = st.store.scan_videos(after, 1000).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let ids: Vec<i64> = batch.iter().map(|v| v.id).collect();
        let cached = st.cache.cached_video_counters(&ids).await?;
        for (v, redis) in batch.iter().zip(cached) {
            r.videos += 1;
            let c = st.store.video_counters(v.id).await?;
            let likes = per_video.get(&v.id).copied().unwrap_or(0);
            *received.entry(v.author_id).or_default() += likes;
            r.video_favorites += c.favorite_count;
            if c.favorite_count != likes {
                r.bad(format!(
                    "video {}: favorite_count {} but {} like records",
                    v.id, c.favorite_count, likes
                ));
            }
            let comments = st.store.comment_ids_by_video(v.id).await?.len() as i64;
            if c.comment_count != comments {
                r.bad(format!(
                    "video {}: comment_count {} but {} comments",
                    v.id, c.comment_count, comments
                ));
            }
            if let Some((f, cm)) = redis {
                if (f, cm) != (c.favorite_count, c.comment_count) {
                    r.bad(format!(
                        "video {}: redis has favorites/comments {f}/{cm}, durable {}/{}",
                        v.id, c.favorite_count, c.comment_count
                    ));
                }
            }
        }
    }
    let mut after = 0;
    loop {
        let batch = st.store.scan_users(after, 1000).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let ids: Vec<i64> = batch.iter().map(|u| u.id).collect();
        let cached = st.cache.cached_user_counters(&ids).await?;
        for (u, redis) in batch.iter().zip(cached) {
            r.users += 1;
            let c = st.store.user_counters(u.id).await?;
            let following = st.store.following(u.id).await?.len() as i64;
            let followers = st.store.followers(u.id).await?.len() as i64;
            let want = [
                ("favorite_count", given.get(&u.id).copied().unwrap_or(0)),
                ("total_favorited", received.get(&u.id).copied().unwrap_or(0)),
                ("follow_count", following),
                ("follower_count", followers),
            ];
            let have = [
                c.favorite_count,
                c.total_favorited,
                c.follow_count,
                c.follower_count,
            ];
            for ((name, w), h) in want.iter().zip(have) {
                if *w != h {
                    r.bad(format!("user {}: {name} {h} but {w} records", u.id));
                }
            }
            if let Some(cached) = redis {
                if cached != have {
                    r.bad(format!(
                        "user {}: redis has {cached:?}, durable {have:?} (favorite_count, total_favorited, follow_count, follower_count)",
                        u.id
                    ));
                }
            }
        }
    }
    Ok(r)
}
