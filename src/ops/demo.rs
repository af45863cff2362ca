//! Demo content: a few users and short videos, made with ffmpeg and published through the same
//! code path as a real upload, so that a newcomer's feed is never empty.

use crate::error::AppError;
use crate::state::AppState;
use crate::write::accounts::NewUser;

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
        let uid = crate::write::accounts::create_user(
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
                .tempfile_in(st.staging.dir())
                .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?
                .into_temp_path();
            let hue = ((i * VIDEOS_PER_USER + j) * 53 % 360) as u32;
            crate::media::probe::generate_sample(&st.cfg.media.ffmpeg, &tmp, 3, hue).await?;
            let title = format!("{name} clip {}", j + 1);
            crate::write::videos::publish_file(st, uid, title, "demo video".into(), &tmp).await?;
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
