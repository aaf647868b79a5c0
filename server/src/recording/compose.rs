//! The final files of a recording, made from its stream files: INDIVIDUAL, a zip of them
//! with OpenVidu's sync file; COMPOSED, one grid video made by an ffmpeg child process
//! (H.264 + AAC in MP4, or Opus in WebM for audio alone). Blocking code: run it off the
//! runtime. Final files are written under a temporary name and renamed, so a crash while
//! making one leaves the stream files for the next start to try again.

use super::Recording;
use crate::room::{OutputMode, Participant, StreamInfo, VideoSource};
use crate::spelling::WireEnum;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

/// What the recording knows of one stream file, kept next to it as `.stream.<file>` while
/// the recording runs (OpenVidu's per-stream metadata) so a restart can finish it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct StreamMeta {
    /// The file's name in the recording's folder.
    pub file: String,
    /// Who published it.
    pub participant: Participant,
    /// The stream.
    pub stream: StreamInfo,
    /// The file has a video track.
    pub video: bool,
    /// The file has an audio track.
    pub audio: bool,
}

impl StreamMeta {
    /// Writes the `.stream.<file>` file.
    pub fn save(&self, folder: &Path) -> std::io::Result<()> {
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(folder.join(format!(".stream.{}", self.file)), body)
    }
}

/// One stream file of a stopped recording.
#[derive(Clone, Debug)]
pub(super) struct Part {
    /// The stream.
    pub meta: StreamMeta,
    /// Its first packet, ms after the recording started.
    pub start_ms: i64,
    /// Its last packet, ms after the recording started.
    pub end_ms: i64,
    /// Bytes.
    pub size: u64,
}

/// The stream files a crashed run left in `folder`, with their times read back by ffprobe.
pub(super) fn salvage(folder: &Path, created_at: i64) -> Vec<Part> {
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(file) = name.strip_prefix(".stream.") else {
            continue;
        };
        let Ok(text) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(meta) = serde_json::from_slice::<StreamMeta>(&text) else {
            continue;
        };
        let path = folder.join(file);
        let Some(seconds) = probe_duration(&path) else {
            continue;
        };
        // The file ends where the writer was stopped: remuxed, it gets its duration and
        // index back (kept as it is when ffmpeg cannot).
        remux(&path);
        let Ok(size) = std::fs::metadata(&path).map(|m| m.len()) else {
            continue;
        };
        // The stream was published at `created_at` of its own; it cannot have started
        // before the recording did.
        let start_ms = (meta.stream.created_at - created_at).max(0);
        parts.push(Part {
            meta,
            start_ms,
            end_ms: start_ms + (seconds * 1000.0) as i64,
            size,
        });
    }
    parts.sort_by_key(|p| p.start_ms);
    parts
}

/// Rewrites a cut-short WebM whole (same streams, no transcoding).
fn remux(path: &Path) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fixed = path.with_file_name(format!(".fix.{name}"));
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(path)
        .args(["-c", "copy", "-f"])
        .arg(if name.ends_with(".mkv") {
            "matroska"
        } else {
            "webm"
        })
        .arg(&fixed)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _ = std::fs::rename(&fixed, path);
    } else {
        let _ = std::fs::remove_file(&fixed);
    }
}

/// The duration ffprobe reads from a media file (a cut-short WebM included: it reads the
/// clusters there are).
fn probe_duration(path: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .fold(None, |max: Option<f64>, t| {
            Some(max.map_or(t, |m| m.max(t)))
        })
}

/// Makes the final file of `meta` from `parts` in `folder`; removes what it was made from.
/// Returns the final file's size.
pub(super) fn finish(
    folder: &Path,
    meta: &Recording,
    parts: &[Part],
    duration: f64,
) -> std::io::Result<u64> {
    let final_name = meta.file_name();
    let tmp = folder.join(format!(".tmp.{final_name}"));
    let made = if meta.mode() == OutputMode::Individual {
        zip_individual(folder, meta, parts, &tmp)
    } else {
        compose(folder, meta, parts, duration, &tmp)
    };
    if let Err(e) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let target = folder.join(&final_name);
    std::fs::rename(&tmp, &target)?;
    let size = std::fs::metadata(&target)?.len();
    // What the final file was made of goes: the stream files and their metadata.
    for entry in std::fs::read_dir(folder)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != final_name && !name.starts_with(".recording.") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(size)
}

/// Frees space in a recording's folder: unfinished final files, and with `parts` the stream
/// files too (the metadata file stays).
pub(super) fn clear(folder: &Path, parts: bool) {
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp.")
            || name.starts_with(".fix.")
            || (parts && !name.starts_with(".recording."))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// OpenVidu's sync file of an INDIVIDUAL recording.
fn sync_json(meta: &Recording, parts: &[Part]) -> serde_json::Value {
    let files: Vec<serde_json::Value> = parts
        .iter()
        .map(|p| {
            let s = &p.meta.stream;
            let mut f = serde_json::json!({
                "name": p.meta.file,
                "connectionId": p.meta.participant.id.as_str(),
                "streamId": s.id,
                "size": p.size,
                "clientData": p.meta.participant.active().map(|a| a.client_data.as_str()).unwrap_or(""),
                "serverData": p.meta.participant.data,
                "hasAudio": p.meta.audio,
                "hasVideo": p.meta.video,
                "startTimeOffset": p.start_ms,
                "endTimeOffset": p.end_ms,
            });
            if p.meta.video {
                f["typeOfVideo"] = s.video_source.name().into();
            }
            f
        })
        .collect();
    serde_json::json!({
        "createdAt": meta.created_at,
        "id": meta.id,
        "name": meta.name,
        "sessionId": meta.session_id,
        "files": files,
    })
}

fn zip_individual(
    folder: &Path,
    meta: &Recording,
    parts: &[Part],
    out: &Path,
) -> std::io::Result<()> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(out)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    // WebM is compressed already: the files are stored as they are.
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for p in parts {
        zip.start_file(p.meta.file.as_str(), options)
            .map_err(std::io::Error::other)?;
        let mut f = std::fs::File::open(folder.join(&p.meta.file))?;
        std::io::copy(&mut f, &mut zip)?;
    }
    zip.start_file(format!("{}.json", meta.name), options)
        .map_err(std::io::Error::other)?;
    zip.write_all(
        serde_json::to_string_pretty(&sync_json(meta, parts))
            .map_err(std::io::Error::other)?
            .as_bytes(),
    )?;
    let mut inner = zip.finish().map_err(std::io::Error::other)?;
    inner.flush()?;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// Parses `WIDTHxHEIGHT`.
fn resolution(meta: &Recording) -> (u32, u32) {
    meta.resolution
        .as_deref()
        .and_then(|r| r.split_once('x'))
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .unwrap_or((1280, 720))
}

/// Where each of `n` videos goes in a `w`x`h` picture, as `(x, y, width, height)` with even
/// sides, the featured (first) video first. BEST_FIT (and CUSTOM, which would need a web
/// page) is a grid; PICTURE_IN_PICTURE puts the others small over the featured one's bottom
/// right; VERTICAL_PRESENTATION gives the featured one the left three quarters and stacks
/// the others on the right; HORIZONTAL_PRESENTATION gives it the top three quarters and
/// lines the others up below.
fn cells(layout: &str, n: u32, w: u32, h: u32) -> Vec<(u32, u32, u32, u32)> {
    let even = |v: u32| v & !1;
    let rest = n.saturating_sub(1).max(1);
    match layout {
        _ if n <= 1 => vec![(0, 0, even(w), even(h))],
        "PICTURE_IN_PICTURE" => {
            let (sw, sh) = (even(w / 4), even(h / 4));
            let margin = even(w / 40).max(2);
            let mut c = vec![(0, 0, even(w), even(h))];
            for k in 0..n - 1 {
                let x = w.saturating_sub((k + 1) * (sw + margin));
                c.push((even(x), even(h - sh - margin), sw, sh));
            }
            c
        }
        "VERTICAL_PRESENTATION" => {
            let main = even(w * 3 / 4);
            let side = even(w - main);
            let each = even(h / rest);
            let mut c = vec![(0, 0, main, even(h))];
            c.extend((0..n - 1).map(|k| (main, k * each, side, each)));
            c
        }
        "HORIZONTAL_PRESENTATION" => {
            let main = even(h * 3 / 4);
            let below = even(h - main);
            let each = even(w / rest);
            let mut c = vec![(0, 0, even(w), main)];
            c.extend((0..n - 1).map(|k| (k * each, main, each, below)));
            c
        }
        _ => {
            let cols = (f64::from(n)).sqrt().ceil() as u32;
            let rows = n.div_ceil(cols);
            let (cw, ch) = (even(w / cols), even(h / rows));
            // Centred, so a grid narrower than the picture has even black borders.
            let (ox, oy) = (even((w - cw * cols) / 2), even((h - ch * rows) / 2));
            (0..n)
                .map(|k| (ox + (k % cols) * cw, oy + (k / cols) * ch, cw, ch))
                .collect()
        }
    }
}

/// The ffmpeg arguments that compose `parts` into `out`: a grid of the videos (each placed
/// in its cell from the moment it started, black before and after), all audio mixed.
fn compose_args(
    folder: &Path,
    meta: &Recording,
    parts: &[Part],
    duration: f64,
    out: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-y"]
        .map(String::from)
        .to_vec();
    // Each file is opened once for its video and once more for its audio: with one input
    // feeding both halves of the graph, ffmpeg 5.1 can deadlock when one half stops
    // reading before the other (seen with two streams 0.3 s apart, a 2.6 s recording).
    let copies = if meta.has_video && meta.has_audio {
        2
    } else {
        1
    };
    for _ in 0..copies {
        for p in parts {
            args.push("-i".into());
            args.push(folder.join(&p.meta.file).to_string_lossy().into_owned());
        }
    }
    let audio_input = |i: usize| if copies == 2 { parts.len() + i } else { i };
    let duration = duration.max(0.1);
    let fps = meta.frame_rate.unwrap_or(25).max(1);
    let mut filters = Vec::new();
    let mut maps = Vec::new();
    let secs = |ms: i64| ms.max(0) as f64 / 1000.0;
    if meta.has_video {
        let (w, h) = resolution(meta);
        let videos: Vec<(usize, &Part)> = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.meta.video)
            .collect();
        let n = videos.len();
        if n == 0 {
            filters.push(format!(
                "color=c=black:s={w}x{h}:r={fps}:d={duration:.3}[vout]"
            ));
        } else {
            // The featured stream of the presentation layouts: a screen share if there is
            // one, else the first to start.
            let mut videos = videos;
            if let Some(k) = videos
                .iter()
                .position(|(_, p)| p.meta.stream.video_source == VideoSource::Screen)
            {
                let featured = videos.remove(k);
                videos.insert(0, featured);
            }
            let layout = meta.recording_layout.as_deref().unwrap_or("BEST_FIT");
            let cells = cells(layout, n as u32, w, h);
            filters.push(format!(
                "color=c=black:s={w}x{h}:r={fps}:d={duration:.3}[base]"
            ));
            let mut below = "base".to_owned();
            for (k, ((i, p), (x, y, cw, ch))) in videos.iter().zip(cells).enumerate() {
                filters.push(format!(
                    "[{i}:v]setpts=PTS-STARTPTS,scale={cw}:{ch}:force_original_aspect_ratio=decrease,\
                     pad={cw}:{ch}:(ow-iw)/2:(oh-ih)/2:black,setsar=1,fps={fps},\
                     tpad=start_duration={:.3}:stop_mode=add:stop_duration={duration:.3}:color=black,\
                     trim=duration={duration:.3}[v{k}]",
                    secs(p.start_ms)
                ));
                filters.push(format!(
                    "[{below}][v{k}]overlay={x}:{y}:eof_action=pass[o{k}]"
                ));
                below = format!("o{k}");
            }
            filters.push(format!("[{below}]format=yuv420p[vout]"));
        }
        maps.push("[vout]".to_owned());
    }
    if meta.has_audio {
        let audios: Vec<(usize, &Part)> = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.meta.audio)
            .collect();
        if audios.is_empty() {
            filters.push(format!(
                "anullsrc=r=48000:cl=stereo,atrim=duration={duration:.3}[aout]"
            ));
        } else {
            for (k, (i, p)) in audios.iter().enumerate() {
                filters.push(format!(
                    "[{}:a]aresample=48000,adelay={}:all=1[a{k}]",
                    audio_input(*i),
                    p.start_ms.max(0)
                ));
            }
            let inputs: String = (0..audios.len()).map(|k| format!("[a{k}]")).collect();
            filters.push(format!(
                "{inputs}amix=inputs={}:duration=longest:dropout_transition=0:normalize=0,\
                 apad,atrim=duration={duration:.3}[aout]",
                audios.len()
            ));
        }
        maps.push("[aout]".to_owned());
    }
    args.push("-filter_complex".into());
    args.push(filters.join(";"));
    for m in maps {
        args.push("-map".into());
        args.push(m);
    }
    if meta.has_video {
        args.extend(
            [
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-r",
            ]
            .map(String::from),
        );
        args.push(fps.to_string());
        if meta.has_audio {
            args.extend(["-c:a", "aac", "-b:a", "128k"].map(String::from));
        }
        args.extend(["-movflags", "+faststart", "-f", "mp4"].map(String::from));
    } else {
        args.extend(["-c:a", "libopus", "-b:a", "64k", "-f", "webm"].map(String::from));
    }
    args.push("-t".into());
    args.push(format!("{duration:.3}"));
    args.push(out.to_string_lossy().into_owned());
    args
}

fn compose(
    folder: &Path,
    meta: &Recording,
    parts: &[Part],
    duration: f64,
    out: &Path,
) -> std::io::Result<()> {
    use std::io::Read as _;
    // ffmpeg composes far faster than real time; one that runs past this is stuck, and is
    // killed so the recording fails with a reason instead of staying `stopped` forever.
    let limit = std::time::Duration::from_secs_f64(60.0 + 10.0 * duration);
    let mut child = Command::new("ffmpeg")
        .args(compose_args(folder, meta, parts, duration, out))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::other(format!("cannot run ffmpeg: {e}")))?;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let err = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        failed => {
            let _ = std::fs::remove_file(out);
            let why = match failed {
                None => format!("ffmpeg ran past {} s and was stopped", limit.as_secs()),
                Some(_) => format!(
                    "ffmpeg failed: {}",
                    err.lines().last().unwrap_or("no message")
                ),
            };
            Err(std::io::Error::other(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cells;

    #[test]
    fn every_layout_keeps_its_cells_inside_the_picture_with_even_sides() {
        for layout in [
            "BEST_FIT",
            "PICTURE_IN_PICTURE",
            "VERTICAL_PRESENTATION",
            "HORIZONTAL_PRESENTATION",
            "CUSTOM",
        ] {
            for n in 1..=9 {
                let c = cells(layout, n, 1280, 720);
                assert_eq!(c.len(), n as usize, "{layout} with {n}");
                for &(x, y, w, h) in &c {
                    assert!(
                        x + w <= 1280 && y + h <= 720,
                        "{layout} {n}: {x},{y} {w}x{h}"
                    );
                    assert!(w > 0 && h > 0 && w % 2 == 0 && h % 2 == 0);
                }
            }
        }
    }

    #[test]
    fn the_featured_video_is_largest_in_presentations() {
        assert_eq!(cells("BEST_FIT", 4, 640, 480)[3], (320, 240, 320, 240));
        assert_eq!(
            cells("PICTURE_IN_PICTURE", 2, 640, 480)[0],
            (0, 0, 640, 480)
        );
        let v = cells("VERTICAL_PRESENTATION", 3, 640, 480);
        assert_eq!(v[0], (0, 0, 480, 480));
        assert_eq!(v[2], (480, 240, 160, 240));
        let h = cells("HORIZONTAL_PRESENTATION", 3, 640, 480);
        assert_eq!(h[0], (0, 0, 640, 360));
        assert_eq!(h[1], (0, 360, 320, 120));
    }
}
