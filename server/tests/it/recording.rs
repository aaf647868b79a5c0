//! The WebM writer of INDIVIDUAL recordings, checked with the real ffprobe: a stream made by
//! ffmpeg, cut into RTP packets as a browser sends them, written, then probed whole and after
//! being cut short as a killed process would leave it.

use camerata_server::recording::webm::{Tracks, WebmWriter};
use rtc::rtp::packetizer::Payloader;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// ffmpeg and ffprobe, which the test command installs; elsewhere the test is skipped.
fn have_ffmpeg() -> bool {
    let ok = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("ffmpeg must be installed in CI (tests/run-all.sh installs it)");
    }
    ok
}

fn ffmpeg(args: &[&str]) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {args:?}");
}

fn probe(file: &Path) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// RTP packets of `seconds` of 640x480 VP8 and Opus, with the offset each is sent at.
fn packets(dir: &Path, seconds: u32) -> Vec<(Duration, bool, rtc::rtp::Packet)> {
    let video = dir.join("v.ivf");
    let audio = dir.join("a.ogg");
    let t = seconds.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x480:rate=30",
        "-t",
        &t,
        "-c:v",
        "libvpx",
        "-b:v",
        "500k",
        "-g",
        "60",
        "-deadline",
        "realtime",
        "-f",
        "ivf",
        video.to_str().expect("path"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &t,
        "-c:a",
        "libopus",
        "-frame_duration",
        "20",
        "-page_duration",
        "20000",
        "-f",
        "ogg",
        audio.to_str().expect("path"),
    ]);
    let mut out = Vec::new();
    let (mut ivf, header) = rtc::media::io::ivf_reader::IVFReader::new(std::io::BufReader::new(
        std::fs::File::open(&video).expect("ivf"),
    ))
    .expect("ivf header");
    let frame_ms =
        1000 * u64::from(header.timebase_numerator) / u64::from(header.timebase_denominator);
    let mut payloader = rtc::rtp::codec::vp8::Vp8Payloader::default();
    let mut seq = 1000u16;
    let mut n = 0u64;
    while let Ok((frame, _)) = ivf.parse_next_frame() {
        let parts = payloader.payload(1200, &frame.freeze()).expect("payloads");
        let last = parts.len() - 1;
        for (i, payload) in parts.into_iter().enumerate() {
            seq = seq.wrapping_add(1);
            out.push((
                Duration::from_millis(n * frame_ms),
                true,
                rtc::rtp::Packet {
                    header: rtc::rtp::Header {
                        version: 2,
                        marker: i == last,
                        payload_type: 96,
                        sequence_number: seq,
                        timestamp: 7_000 + (n * frame_ms * 90) as u32,
                        ssrc: 1,
                        ..Default::default()
                    },
                    payload,
                },
            ));
        }
        n += 1;
    }
    let (mut ogg, _) = rtc::media::io::ogg_reader::OggReader::new(
        std::io::BufReader::new(std::fs::File::open(&audio).expect("ogg")),
        true,
    )
    .expect("ogg header");
    let mut granule = 0u64;
    while let Ok((page, h)) = ogg.parse_next_page() {
        if page.starts_with(b"OpusHead") || page.starts_with(b"OpusTags") {
            continue;
        }
        seq = seq.wrapping_add(1);
        out.push((
            Duration::from_micros(granule * 1_000_000 / 48_000),
            false,
            rtc::rtp::Packet {
                header: rtc::rtp::Header {
                    version: 2,
                    payload_type: 111,
                    sequence_number: seq,
                    timestamp: 900 + granule as u32,
                    ssrc: 2,
                    ..Default::default()
                },
                payload: page.freeze(),
            },
        ));
        granule = h.granule_position;
    }
    out.sort_by_key(|(at, _, _)| *at);
    out
}

#[test]
fn a_stream_is_written_as_webm_that_ffprobe_reads_whole_and_cut_short() {
    if !have_ffmpeg() {
        eprintln!("skipping: ffmpeg is not installed");
        return;
    }
    let dir = crate::support::TempDir::new();
    let seconds = 4;
    let stream = packets(&dir.0, seconds);
    let file = dir.0.join("str_CAM_test.webm");
    let mut writer = WebmWriter::new(
        std::fs::File::create(&file).expect("file"),
        Tracks {
            video: true,
            audio: true,
            ..Tracks::default()
        },
    );
    let base = Instant::now();
    let mut video_seq_skip = None;
    for (at, video, packet) in &stream {
        // One lost video packet in the middle: its frame is dropped, and video resumes at
        // the next keyframe.
        if *video && video_seq_skip.is_none() && *at > Duration::from_millis(1500) {
            video_seq_skip = Some(packet.header.sequence_number);
            continue;
        }
        if *video {
            writer.video(packet, base + *at).expect("written");
        } else {
            writer.audio(packet, base + *at).expect("written");
        }
    }
    let written = writer.finish().expect("finished");
    let p = probe(&file);
    let streams = p["streams"].as_array().expect("streams");
    let codec = |kind: &str| {
        streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .unwrap_or_else(|| panic!("a {kind} stream: {p}"))
    };
    assert_eq!(codec("video")["codec_name"], "vp8");
    assert_eq!(codec("video")["width"], 640);
    assert_eq!(codec("video")["height"], 480);
    assert_eq!(codec("audio")["codec_name"], "opus");
    let duration: f64 = p["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("a duration: {p}"));
    assert!(
        (duration - f64::from(seconds)).abs() < 1.0,
        "duration {duration} s for {seconds} s of media (writer said {written})"
    );

    // The whole file decodes without a single error, though a packet was lost on the way:
    // the broken frame and what depends on it were left out.
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        decoded.status.success() && decoded.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );

    // A process killed mid-recording leaves the file cut anywhere: still readable.
    let bytes = std::fs::read(&file).expect("read");
    let cut = dir.0.join("cut.webm");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).expect("write");
    let p = probe(&cut);
    let kinds: Vec<&str> = p["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert!(kinds.contains(&"video") && kinds.contains(&"audio"), "{p}");
    // ffmpeg decodes what is there without error.
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&cut)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
}
