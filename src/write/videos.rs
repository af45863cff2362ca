//! Videos: publishing a staged upload (probe, cover, media store, record) or a video hosted
//! elsewhere, and counting a play.

use super::outbox;
use crate::error::AppError;
use crate::media::probe;
use crate::state::AppState;
use crate::store::{OutboxOp, VideoRecord};
use std::path::Path;

/// Publishes the video file at `file` (a staging file, consumed) for `author`: checks it with
/// ffprobe, makes a cover with ffmpeg, stores both, writes the record durably, then updates
/// Redis. Shared by the upload endpoint and `seed`.
pub async fn publish_file(
    st: &AppState,
    author: i64,
    title: String,
    desc: String,
    file: &Path,
) -> Result<i64, AppError> {
    let info = probe::probe(&st.cfg.media.ffprobe, file).await?;
    let id = st.ids.next_id();
    let video_key = format!("videos/{id}.{}", info.ext);
    let cover_key = format!("covers/{id}.jpg");
    let cover_tmp = tempfile::Builder::new()
        .suffix(".jpg")
        .tempfile_in(st.staging.dir())
        .map_err(|e| AppError::Unavailable(format!("staging: {e}")))?;
    probe::make_cover(&st.cfg.media.ffmpeg, file, cover_tmp.path()).await?;
    let stored = async {
        st.media.put_file(&cover_key, cover_tmp.path()).await?;
        st.media.put_file(&video_key, file).await
    }
    .await;
    if let Err(e) = stored {
        // both, whichever failed: a put that timed out may still land (the reaper removes
        // what this delete misses)
        forget(st, &video_key, &cover_key);
        return Err(e);
    }
    let rec = VideoRecord {
        id,
        author_id: author,
        title,
        desc,
        play: video_key.clone(),
        cover: cover_key.clone(),
        created_ms: crate::ids::time_ms(id),
    };
    save_video(st, &rec)
        .await
        .inspect_err(|_| forget(st, &video_key, &cover_key))?;
    tracing::info!(
        video = id,
        author,
        duration = info.duration_secs,
        "published"
    );
    Ok(id)
}

/// Deletes the media of a publish that failed, in the background.
fn forget(st: &AppState, video_key: &str, cover_key: &str) {
    let media = st.media.clone();
    let keys = [video_key.to_string(), cover_key.to_string()];
    ntex::rt::spawn(async move {
        for k in keys {
            if let Err(e) = media.delete(&k).await {
                tracing::warn!(key = %k, error = %e, "media of a failed publish not deleted; the reaper will");
            }
        }
    });
}

/// Publishes a video hosted elsewhere (`url`, optional `cover` URL, both checked by the
/// caller). Returns its id.
pub async fn publish_url(
    st: &AppState,
    author: i64,
    url: String,
    cover: String,
    title: String,
    desc: String,
) -> Result<i64, AppError> {
    let id = st.ids.next_id();
    let rec = VideoRecord {
        id,
        author_id: author,
        title,
        desc,
        play: url,
        cover,
        created_ms: crate::ids::time_ms(id),
    };
    save_video(st, &rec).await?;
    Ok(id)
}

/// Writes a video record durably, then installs it in Redis (feed, author's list).
pub async fn save_video(st: &AppState, rec: &VideoRecord) -> Result<(), AppError> {
    let entry = outbox::entry(
        st,
        OutboxOp::VideoPublished {
            video_id: rec.id,
            author_id: rec.author_id,
        },
    );
    st.store.put_video(rec, &entry).await?;
    outbox::finish(st, &entry, st.cache.video_published(rec)).await;
    Ok(())
}

/// Counts `viewer` as a distinct viewer of video `video_id`: the durable record first, then
/// the video's HyperLogLog in Redis.
pub async fn record_play(st: &AppState, video_id: i64, viewer: &str) -> Result<(), AppError> {
    st.store.add_play(video_id, viewer).await?;
    st.cache.play_recorded(video_id, viewer).await
}
