//! ffprobe and ffmpeg: is this upload a real video, and what does its first frame look like.
//!
//! Both run as child processes (never on the event loop's thread), with a time limit, and are
//! killed when the request goes away.

use crate::error::AppError;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const COVER_TIMEOUT: Duration = Duration::from_secs(60);

/// What ffprobe found in an upload we accept.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// File extension for the stored copy.
    pub ext: &'static str,
    pub duration_secs: f64,
    pub width: i64,
    pub height: i64,
}

async fn run(
    cmd: &mut Command,
    limit: Duration,
    what: &str,
) -> Result<std::process::Output, AppError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| AppError::Unavailable(format!("{what} could not start: {e}")))?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(AppError::Unavailable(format!("{what}: {e}"))),
        Err(_) => Err(AppError::InvalidMedia(format!(
            "{what} timed out on this file"
        ))),
    }
}

/// Checks that `path` holds a playable video in a container we serve (MP4/MOV, WebM, Matroska).
pub async fn probe(ffprobe: &str, path: &Path) -> Result<VideoInfo, AppError> {
    let out = run(
        Command::new(ffprobe)
            .args([
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
                "--",
            ])
            .arg(path),
        PROBE_TIMEOUT,
        "ffprobe",
    )
    .await?;
    let not_video = || AppError::InvalidMedia("the uploaded file is not a video".into());
    if !out.status.success() {
        return Err(not_video());
    }
    use simd_json::prelude::*;
    let mut buf = out.stdout;
    let v: simd_json::OwnedValue = simd_json::to_owned_value(&mut buf).map_err(|_| not_video())?;
    let format = v.get("format").ok_or_else(not_video)?;
    let format_name = format
        .get("format_name")
        .and_then(|f| f.as_str())
        .unwrap_or("");
    let duration: f64 = format
        .get("duration")
        .and_then(|d| d.as_str())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let streams = v
        .get("streams")
        .and_then(|s| s.as_array())
        .ok_or_else(not_video)?;
    let video = streams.iter().find(|s| {
        s.get("codec_type").and_then(|c| c.as_str()) == Some("video")
            && s.get("disposition")
                .and_then(|d| d.get("attached_pic"))
                .and_then(|a| a.as_i64())
                .unwrap_or(0)
                == 0
    });
    let video = video.ok_or_else(not_video)?;
    let codec = video
        .get("codec_name")
        .and_then(|c| c.as_str())
        .unwrap_or("");
    let formats: Vec<&str> = format_name.split(',').collect();
    let ext = if formats.iter().any(|f| *f == "mp4" || *f == "mov") {
        "mp4"
    } else if formats.contains(&"matroska") || formats.contains(&"webm") {
        if matches!(codec, "vp8" | "vp9" | "av1") {
            "webm"
        } else {
            "mkv"
        }
    } else {
        return Err(AppError::InvalidMedia(format!(
            "unsupported video format {format_name:?}: upload MP4, MOV, WebM or MKV"
        )));
    };
    if duration.is_nan() || duration <= 0.0 {
        return Err(AppError::InvalidMedia("the video has no duration".into()));
    }
    Ok(VideoInfo {
        ext,
        duration_secs: duration,
        width: video.get("width").and_then(|w| w.as_i64()).unwrap_or(0),
        height: video.get("height").and_then(|h| h.as_i64()).unwrap_or(0),
    })
}

/// Writes a JPEG of the video's first frame (at most 720 px wide) to `out`.
pub async fn make_cover(ffmpeg: &str, video: &Path, out: &Path) -> Result<(), AppError> {
    let res = run(
        Command::new(ffmpeg)
            .args(["-v", "error", "-y", "-i"])
            .arg(video)
            .args([
                "-frames:v",
                "1",
                "-vf",
                "scale='min(720,iw)':-2",
                "-q:v",
                "4",
                "-f",
                "image2",
            ])
            .arg(out),
        COVER_TIMEOUT,
        "ffmpeg",
    )
    .await?;
    if !res.status.success()
        || tokio::fs::metadata(out)
            .await
            .map(|m| m.len() == 0)
            .unwrap_or(true)
    {
        return Err(AppError::InvalidMedia(
            "could not read a frame from the video".into(),
        ));
    }
    Ok(())
}

/// Makes a short test-pattern MP4 (demo content and tests): `seconds` long, with `label` drawn
/// as a colour so that videos differ.
pub async fn generate_sample(
    ffmpeg: &str,
    out: &Path,
    seconds: u32,
    hue: u32,
) -> Result<(), AppError> {
    let src = format!("testsrc2=duration={seconds}:size=320x240:rate=15,hue=h={hue}");
    for codec in [
        &["-c:v", "libx264", "-preset", "ultrafast"][..],
        &["-c:v", "mpeg4"][..],
    ] {
        let res = run(
            Command::new(ffmpeg)
                .args(["-v", "error", "-y", "-f", "lavfi", "-i", &src])
                .args(codec)
                .args([
                    "-pix_fmt",
                    "yuv420p",
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                ])
                .arg(out),
            COVER_TIMEOUT,
            "ffmpeg",
        )
        .await?;
        if res.status.success() {
            return Ok(());
        }
    }
    Err(AppError::Internal(
        "ffmpeg could not generate a sample video".into(),
    ))
}
