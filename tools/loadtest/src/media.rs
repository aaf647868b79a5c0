//! The prerecorded stream: made once with ffmpeg (640x480, 30 fps, about 1 Mbps VP8 with a
//! keyframe every 2 s, and Opus), read back and cut into RTP payloads ahead of time, so
//! sending is only pacing and writing. Also what subscribers need to read a packet: whether
//! it starts a VP8 keyframe, and a hash of its payload (the key of its send time).

use anyhow::{Context, bail};
use bytes::Bytes;
use camerata_server::media::{VideoChoice, starts_keyframe};
use rtc::rtp::packetizer::Payloader;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One RTP payload of the stream, with where it sits in time.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The payload.
    pub payload: Bytes,
    /// Offset from the start of the stream.
    pub at: Duration,
    /// RTP timestamp offset from the start (90 kHz video, 48 kHz audio).
    pub timestamp: u32,
}

/// The whole stream, cut into payloads.
pub struct Stream {
    /// Video payloads in sending order.
    pub video: Vec<Chunk>,
    /// Each video frame's payloads (a range of `video`).
    pub frames: Vec<std::ops::Range<usize>>,
    /// The frames that are keyframes.
    pub keyframes: Vec<usize>,
    /// Audio payloads in sending order.
    pub audio: Vec<Chunk>,
    /// How long the stream plays before it loops.
    pub length: Duration,
}

/// Makes the stream files under `dir` with ffmpeg unless they are there.
pub fn prepare(dir: &Path, seconds: u32) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let video = dir.join(format!("video-{seconds}s.ivf"));
    let audio = dir.join(format!("audio-{seconds}s.ogg"));
    if !video.exists() {
        let t = seconds.to_string();
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x480:rate=30"])
            .args(["-t", &t, "-c:v", "libvpx", "-b:v", "1M", "-minrate", "1M"])
            .args(["-maxrate", "1M", "-g", "60", "-keyint_min", "60"])
            .args(["-deadline", "realtime", "-cpu-used", "8", "-f", "ivf"])
            .arg(&video)
            .status()
            .context("ffmpeg (apt install ffmpeg)")?;
        if !status.success() {
            bail!("ffmpeg could not make {}", video.display());
        }
    }
    if !audio.exists() {
        let t = seconds.to_string();
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.05"])
            .args(["-filter_complex", "amix=inputs=2", "-t", &t])
            .args(["-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20"])
            .args(["-page_duration", "20000", "-f", "ogg"])
            .arg(&audio)
            .status()
            .context("ffmpeg (apt install ffmpeg)")?;
        if !status.success() {
            bail!("ffmpeg could not make {}", audio.display());
        }
    }
    Ok((video, audio))
}

/// Reads and cuts the stream files.
pub fn load(video: &Path, audio: &Path) -> anyhow::Result<Stream> {
    use rtc::media::io::ivf_reader::IVFReader;
    use rtc::media::io::ogg_reader::OggReader;
    let (mut ivf, header) = IVFReader::new(std::io::BufReader::new(std::fs::File::open(video)?))?;
    let frame_time = Duration::from_secs_f64(
        f64::from(header.timebase_numerator) / f64::from(header.timebase_denominator),
    );
    let mut payloader = rtc::rtp::codec::vp8::Vp8Payloader::default();
    payloader.enable_picture_id = true;
    let mut video_chunks = Vec::new();
    let mut ranges = Vec::new();
    let mut keyframes = Vec::new();
    let mut frames = 0u32;
    while let Ok((frame, _)) = ivf.parse_next_frame() {
        let at = frame_time * frames;
        let timestamp = (at.as_secs_f64() * 90_000.0) as u32;
        let parts = payloader.payload(1200, &frame.freeze())?;
        let n = parts.len();
        if parts
            .first()
            .is_some_and(|p| starts_keyframe(p, VideoChoice::Vp8))
        {
            keyframes.push(ranges.len());
        }
        ranges.push(video_chunks.len()..video_chunks.len() + n);
        for payload in parts {
            video_chunks.push(Chunk {
                payload,
                at,
                timestamp,
            });
        }
        frames += 1;
    }
    let (mut ogg, _) = OggReader::new(std::io::BufReader::new(std::fs::File::open(audio)?), true)?;
    let mut audio_chunks = Vec::new();
    let mut last_granule = 0u64;
    while let Ok((page, page_header)) = ogg.parse_next_page() {
        // Opus head and tags pages carry no audio.
        if page.starts_with(b"OpusHead") || page.starts_with(b"OpusTags") {
            continue;
        }
        let at = Duration::from_micros(last_granule * 1_000_000 / 48_000);
        audio_chunks.push(Chunk {
            payload: page.freeze(),
            at,
            timestamp: last_granule as u32,
        });
        last_granule = page_header.granule_position;
    }
    if video_chunks.is_empty() || audio_chunks.is_empty() || keyframes.is_empty() {
        bail!("the stream files hold no media");
    }
    Ok(Stream {
        video: video_chunks,
        frames: ranges,
        keyframes,
        audio: audio_chunks,
        length: frame_time * frames,
    })
}

/// A cheap 64-bit hash of a payload (FNV-1a over at most its first 64 bytes and its length).
pub fn payload_key(payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in payload.iter().take(64).chain(payload.iter().rev().take(16)) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ (payload.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
