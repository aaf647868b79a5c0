//! Recording: the recordings of live rooms, their files and their status.
//!
//! A recording copies each published stream of its room from the media loop (a tap) to a
//! WebM file (Matroska for H.264) written as it arrives, without transcoding (`webm`), by one writer thread per
//! stream so that disk I/O never touches the media loop or the runtime. INDIVIDUAL
//! recordings end as a zip of those files and a sync file; COMPOSED ones are made from the
//! same files by ffmpeg after the stop (`compose`), into one grid MP4 (H.264 + AAC) or, for
//! audio alone, a WebM (Opus). Files and folders follow OpenVidu's layout (one folder per
//! recording, its metadata in `.recording.<id>`), which is also how the list is kept: the
//! folder is the source of truth, so recordings outlive restarts without the database.
//!
//! Invariants: a recording's status only moves forward (starting, started, stopped, then
//! ready or failed) and each move is written to its metadata file before anyone hears of it;
//! a media file is always playable up to its last complete cluster, so a killed process
//! loses seconds, not the recording; after a restart no recording is left `starting`,
//! `started` or `stopped` (`Recorder::recover` finishes or fails each one); the registry
//! lock is never held across an `.await` or any I/O.

mod compose;
pub mod webm;

use crate::media::{Media, StreamOut, TapPacket, VideoChoice};
use crate::room::{OutputMode, Participant, RecordingDefaults, RecordingLayout, StreamInfo};
use crate::spelling::WireEnum;

use compose::StreamMeta;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use webm::{Tracks, WebmWriter};

/// Where a recording is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The start call has not returned yet.
    Starting,
    /// Streams are being written.
    Started,
    /// Writing ended; the final file is being made.
    Stopped,
    /// The final file is there.
    Ready,
    /// Something failed; `reason` says what.
    Failed,
}

/// Why a recording stopped, in the recorder's words; each door names it in its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A stop call of an API.
    StoppedByServer,
    /// Nobody published for the auto-stop time.
    AutomaticStop,
    /// The room closed because its last participant left.
    LastParticipantLeft,
    /// The room was closed through an API.
    SessionClosedByServer,
    /// The server stopped.
    ServerStopped,
    /// The server died while recording; the files were settled at the next start.
    NodeCrashed,
}

// The spellings the metadata file keeps (files of earlier versions stay readable).
crate::wire_enum!(StopReason {
    "recordingStoppedByServer" => StopReason::StoppedByServer,
    "automaticStop" => StopReason::AutomaticStop,
    "lastParticipantLeft" => StopReason::LastParticipantLeft,
    "sessionClosedByServer" => StopReason::SessionClosedByServer,
    "openviduServerStopped" => StopReason::ServerStopped,
    "nodeCrashed" => StopReason::NodeCrashed,
});

/// One recording as its metadata file keeps it: OpenVidu's Recording JSON plus the unique
/// session id and, when it failed or was recovered, why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    /// The recording id.
    pub id: String,
    /// Always `"recording"`.
    pub object: String,
    /// Its name (the id when none was given).
    pub name: String,
    /// `INDIVIDUAL`, `COMPOSED` or `COMPOSED_QUICK_START`.
    pub output_mode: String,
    /// `WIDTHxHEIGHT` (composed with video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Frames per second (composed with video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<u32>,
    /// Layout (composed with video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_layout: Option<String>,
    /// Custom layout (composed with video and layout `CUSTOM` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_layout: Option<String>,
    /// The session recorded.
    pub session_id: String,
    /// The media node asked for, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_node: Option<String>,
    /// When it was started, ms since the epoch.
    pub created_at: i64,
    /// Bytes of the final file (0 until ready).
    pub size: u64,
    /// Seconds recorded (0 until ready).
    pub duration: f64,
    /// Where the final file is served (set when ready or failed).
    pub url: Option<String>,
    /// Audio recorded.
    pub has_audio: bool,
    /// Video recorded.
    pub has_video: bool,
    /// Where it is in its life.
    pub status: Status,
    /// `<sessionId>_<createdAt>` of the session's life it recorded.
    pub unique_session_id: String,
    /// Why it stopped: a [`StopReason`] as the file spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What went wrong, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The cluster node that records it (none alone): after a crash, only that node at its
    /// restart, or the node that took it over, settles it from its files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Recording {
    /// The mode it records in.
    pub fn mode(&self) -> OutputMode {
        OutputMode::parse(&self.output_mode).unwrap_or(OutputMode::Composed)
    }

    /// Why it stopped, once it did.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.reason.as_deref().and_then(StopReason::parse)
    }

    /// The name of its final file: its name with anything but letters, digits and
    /// `_-~:.` made `_` (a name given through an API may hold any text), at most 200
    /// characters, never hidden.
    pub fn file_name(&self) -> String {
        let ext = match (self.mode(), self.has_video) {
            (OutputMode::Individual, _) => "zip",
            (_, true) => "mp4",
            (_, false) => "webm",
        };
        let mut stem: String = self
            .name
            .chars()
            .take(200)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-~:.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if stem.starts_with('.') || stem.is_empty() {
            stem.insert(0, '_');
        }
        format!("{stem}.{ext}")
    }
}

/// What a recording change tells the rest of the server: events for webhooks and CDR,
/// notices for the room's browsers. Implemented by the protocol adapter.
pub trait RecordingListener: Send + Sync {
    /// `recording` moved to a new status (`started`, `stopped`, `ready` or `failed`).
    fn status_changed(&self, recording: &Recording, room_created_at: i64);
}

/// A recording operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// No such recording.
    #[error("recording '{0}' not found")]
    NotFound(String),
    /// The session is being recorded already.
    #[error("session '{0}' is already being recorded")]
    AlreadyRecording(String),
    /// The recording is still starting.
    #[error("recording '{0}' is starting")]
    Starting(String),
    /// The recording is not started (it is stopped, ready or failed).
    #[error("recording '{0}' is not started")]
    NotStarted(String),
    /// The recording is in progress (it cannot be deleted).
    #[error("recording '{0}' is in progress")]
    InProgress(String),
    /// Writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One stream being written.
struct StreamJob {
    meta: StreamMeta,
    /// Stops the copy when dropped.
    tap: crate::media::TapGuard,
    writer: std::thread::JoinHandle<std::io::Result<Written>>,
}

/// What a writer thread made.
#[derive(Clone, Copy, Debug, Default)]
struct Written {
    /// Offset of the first packet from the recording's start, ms.
    start_ms: i64,
    /// Offset of the last packet, ms.
    end_ms: i64,
    size: u64,
    /// Whether anything was written.
    any: bool,
}

/// A recording in progress.
struct Live {
    meta: Recording,
    started: Instant,
    room_created_at: i64,
    streams: Vec<StreamJob>,
    /// How many files each stream id has had (`<streamId>-N.webm` on a re-publish).
    files: HashMap<String, u32>,
    ignore_failed_streams: bool,
}

/// Settings of the recording module.
#[derive(Clone, Debug)]
pub struct RecorderSettings {
    /// The folder of recordings (`OPENVIDU_RECORDING_PATH`).
    pub path: PathBuf,
    /// The URL recordings are served under, ending in `/` (`<publicURL>openvidu/recordings/`).
    pub url: String,
    /// This node's name in a cluster (none alone): its recordings carry it.
    pub node: Option<String>,
}

/// The recordings of this server (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RecorderSettings,
    media: Media,
    listener: Option<Arc<dyn RecordingListener>>,
    live: Mutex<HashMap<String, Live>>,
    /// Recordings being finished (stopped, their final file in the making).
    finishing: Mutex<HashMap<String, Recording>>,
}

/// The resolved properties of a recording to start.
#[derive(Clone, Debug)]
pub struct Start {
    /// The session (room) id.
    pub session: String,
    /// When the room was created, ms (for the unique session id).
    pub room_created_at: i64,
    /// The properties: the call's, else the session's defaults, else the built-in ones.
    pub properties: RecordingDefaults,
    /// The room's active participants, for the streams they publish now.
    pub publishers: Vec<(Participant, StreamInfo, StreamOut)>,
    /// The room's video codec (VP8 and H.264 are written; VP9 video is left out).
    pub video: VideoChoice,
}

/// Writes `meta` to its folder's metadata file, whole or not at all (a temporary file
/// renamed over the old one, synced).
fn write_meta(folder: &Path, meta: &Recording) -> std::io::Result<()> {
    let path = folder.join(format!(".recording.{}", meta.id));
    let tmp = folder.join(format!(".recording.{}.tmp", meta.id));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(meta).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

fn read_meta(folder: &Path) -> Option<Recording> {
    let entries = std::fs::read_dir(folder).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".recording.") && !name.ends_with(".tmp") {
            let text = std::fs::read(entry.path()).ok()?;
            return serde_json::from_slice(&text).ok();
        }
    }
    None
}

/// Whether a name from a request is one plain, visible entry of a folder (no path, no
/// hidden file): the only names looked up on disk.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

/// The `{"width":W,"height":H}` a publisher announced.
/// Copies a stream's packets into a WebM file until the copy ends; `t0` is the recording's
/// start.
fn write_stream(
    mut packets: mpsc::Receiver<TapPacket>,
    path: PathBuf,
    tracks: Tracks,
    t0: Instant,
) -> std::io::Result<Written> {
    let file = std::fs::File::create(&path)?;
    let mut writer = WebmWriter::new(BufWriter::new(file), tracks);
    let mut written = Written::default();
    let offset = |at: Instant| i64::try_from(at.duration_since(t0).as_millis()).unwrap_or(0);
    while let Some(p) = packets.blocking_recv() {
        if !written.any {
            written.any = true;
            written.start_ms = offset(p.at);
        }
        written.end_ms = offset(p.at);
        if p.video {
            writer.video(&p.packet, p.at)?;
        } else {
            writer.audio(&p.packet, p.at)?;
        }
    }
    writer.finish()?;
    written.size = std::fs::metadata(&path)?.len();
    Ok(written)
}

impl Recorder {
    /// The recorder over `settings.path` (created when missing); `listener` hears of status
    /// changes.
    pub fn new(
        settings: RecorderSettings,
        media: Media,
        listener: Option<Arc<dyn RecordingListener>>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&settings.path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                media,
                listener,
                live: Mutex::new(HashMap::new()),
                finishing: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn folder(&self, id: &str) -> PathBuf {
        self.inner.settings.path.join(id)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finishing(&self) -> std::sync::MutexGuard<'_, HashMap<String, Recording>> {
        self.inner
            .finishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn announce(&self, meta: &Recording, room_created_at: i64) {
        if let Some(l) = &self.inner.listener {
            l.status_changed(meta, room_created_at);
        }
    }

    /// The recording in progress of `session`, if any.
    pub fn recording_of(&self, session: &str) -> Option<Recording> {
        self.live()
            .values()
            .find(|l| l.meta.session_id == session)
            .map(|l| l.meta.clone())
    }

    /// Starts recording a session: its folder and metadata, a writer for each stream it
    /// publishes now. Returns the recording, `started`.
    pub async fn start(&self, start: Start) -> Result<Recording, RecordingError> {
        let p = &start.properties;
        let id = {
            let live = self.live();
            if live.values().any(|l| l.meta.session_id == start.session) {
                return Err(RecordingError::AlreadyRecording(start.session));
            }
            let mut id = start.session.clone();
            let mut n = 0;
            while live.contains_key(&id) || self.folder(&id).exists() {
                n += 1;
                id = format!("{}~{n}", start.session);
            }
            id
        };
        let composed_video = p.output_mode != OutputMode::Individual && p.has_video;
        let meta = Recording {
            id: id.clone(),
            object: "recording".into(),
            name: if p.name.is_empty() {
                id.clone()
            } else {
                p.name.clone()
            },
            output_mode: p.output_mode.name().into(),
            resolution: composed_video.then(|| p.resolution.clone()),
            frame_rate: composed_video.then_some(p.frame_rate),
            recording_layout: composed_video.then(|| p.layout.name().into()),
            custom_layout: (composed_video
                && p.layout == RecordingLayout::Custom
                && !p.custom_layout.is_empty())
            .then(|| p.custom_layout.clone()),
            session_id: start.session.clone(),
            media_node: p.node_hint.clone(),
            created_at: crate::rooms::now_ms(),
            size: 0,
            duration: 0.0,
            url: None,
            has_audio: p.has_audio,
            has_video: p.has_video,
            status: Status::Starting,
            unique_session_id: format!("{}_{}", start.session, start.room_created_at),
            reason: None,
            error: None,
            node: self.inner.settings.node.clone(),
        };
        let folder = self.folder(&id);
        std::fs::create_dir_all(&folder)?;
        if let Err(e) = write_meta(&folder, &meta) {
            let _ = std::fs::remove_dir_all(&folder);
            return Err(e.into());
        }
        self.live().insert(
            id.clone(),
            Live {
                meta: meta.clone(),
                started: Instant::now(),
                room_created_at: start.room_created_at,
                streams: Vec::new(),
                files: HashMap::new(),
                ignore_failed_streams: p.ignore_failed_streams,
            },
        );
        for (participant, stream, out) in start.publishers {
            if let Err(e) = self
                .add_stream(&start.session, participant, stream, &out, start.video)
                .await
            {
                tracing::warn!(recording = %id, error = %e, "a stream could not be recorded");
            }
        }
        let started = {
            let mut live = self.live();
            let Some(l) = live.get_mut(&id) else {
                return Err(RecordingError::NotFound(id));
            };
            l.meta.status = Status::Started;
            l.meta.clone()
        };
        write_meta(&folder, &started)?;
        self.announce(&started, start.room_created_at);
        Ok(started)
    }

    /// Changes the layout a live composed recording is composed with (its file is composed
    /// when it stops); a recording without composed video has no layout to change.
    pub fn set_layout(
        &self,
        id: &str,
        layout: RecordingLayout,
        custom: &str,
    ) -> Result<(), RecordingError> {
        let meta = {
            let mut live = self.live();
            match live.get_mut(id) {
                Some(l) if l.meta.recording_layout.is_some() => {
                    l.meta.recording_layout = Some(layout.name().into());
                    l.meta.custom_layout = (layout == RecordingLayout::Custom
                        && !custom.is_empty())
                    .then(|| custom.to_owned());
                    Some(l.meta.clone())
                }
                Some(_) => return Ok(()),
                None => None,
            }
        };
        match meta {
            Some(meta) => Ok(write_meta(&self.folder(id), &meta)?),
            None if self.get(id).is_some() => Err(RecordingError::NotStarted(id.into())),
            None => Err(RecordingError::NotFound(id.into())),
        }
    }

    /// Adds a stream a participant of `session` publishes to the session's recording, if it
    /// is being recorded (and the participant's streams are to be recorded).
    pub async fn add_stream(
        &self,
        session: &str,
        participant: Participant,
        stream: StreamInfo,
        out: &StreamOut,
        video: VideoChoice,
    ) -> Result<(), RecordingError> {
        if !participant.record {
            return Ok(());
        }
        let Some((id, has_audio, has_video, t0)) = self
            .live()
            .values()
            .find(|l| l.meta.session_id == session)
            .map(|l| {
                (
                    l.meta.id.clone(),
                    l.meta.has_audio,
                    l.meta.has_video,
                    l.started,
                )
            })
        else {
            return Ok(());
        };
        let tracks = Tracks {
            video: has_video && stream.has_video && video != VideoChoice::Vp9,
            audio: has_audio && stream.has_audio,
            h264: video == VideoChoice::H264,
            size: stream
                .dimensions
                .and_then(|d| Some((u16::try_from(d.width).ok()?, u16::try_from(d.height).ok()?))),
        };
        if !tracks.video && !tracks.audio {
            return Ok(());
        }
        let tap = self
            .inner
            .media
            .record(out)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (guard, packets) = tap.split();
        let mut live = self.live();
        let Some(l) = live.get_mut(&id) else {
            return Ok(());
        };
        let n = l.files.entry(stream.id.as_str().to_owned()).or_insert(0);
        // H.264 goes in Matroska; VP8 (and audio alone) in WebM.
        let ext = if tracks.video && tracks.h264 {
            "mkv"
        } else {
            "webm"
        };
        let file = if *n == 0 {
            format!("{}.{ext}", stream.id)
        } else {
            format!("{}-{n}.{ext}", stream.id)
        };
        *n += 1;
        let folder = self.folder(&id);
        let meta = StreamMeta {
            file,
            participant,
            stream,
            video: tracks.video,
            audio: tracks.audio,
        };
        meta.save(&folder)?;
        let path = folder.join(&meta.file);
        let writer = std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || write_stream(packets, path, tracks, t0))?;
        l.streams.push(StreamJob {
            meta,
            tap: guard,
            writer,
        });
        Ok(())
    }

    /// Stops a started recording: its writers end, then its final file is made. INDIVIDUAL
    /// recordings come back `ready` (or `failed`); COMPOSED ones `stopped`, their file made
    /// by ffmpeg in the background. `reason` goes to the events.
    pub async fn stop(&self, id: &str, reason: StopReason) -> Result<Recording, RecordingError> {
        let mut l = {
            let mut live = self.live();
            match live.get(id).map(|l| l.meta.status) {
                Some(Status::Starting) => return Err(RecordingError::Starting(id.into())),
                Some(_) => live.remove(id).expect("present"),
                None => {
                    drop(live);
                    return match self.get(id) {
                        Some(_) => Err(RecordingError::NotStarted(id.into())),
                        None => Err(RecordingError::NotFound(id.into())),
                    };
                }
            }
        };
        l.meta.status = Status::Stopped;
        l.meta.reason = Some(reason.name().to_owned());
        let folder = self.folder(id);
        self.finishing().insert(id.to_owned(), l.meta.clone());
        let _ = write_meta(&folder, &l.meta);
        self.announce(&l.meta, l.room_created_at);
        let duration = l.started.elapsed().as_secs_f64();
        let streams = std::mem::take(&mut l.streams);
        let stopped = l.meta.clone();
        let individual = stopped.mode() == OutputMode::Individual;
        // The rest runs on its own, so a caller that goes away (a dropped request, an
        // aborted timer) cannot leave the recording half finished.
        let this = self.clone();
        let finishing = tokio::task::spawn_blocking(move || {
            let files = streams
                .into_iter()
                .map(|job| {
                    drop(job.tap);
                    let result = job
                        .writer
                        .join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")));
                    (job.meta, result)
                })
                .collect::<Vec<_>>();
            let done = this.finish(l.meta, files, duration, l.ignore_failed_streams);
            this.announce(&done, l.room_created_at);
            done
        });
        if !individual {
            // Composing takes a while: the stop answers `stopped`, `ready` follows.
            return Ok(stopped);
        }
        Ok(finishing.await.map_err(std::io::Error::other)?)
    }

    /// Makes the final file of a stopped recording from its stream files and writes its
    /// final status. Blocking.
    fn finish(
        &self,
        mut meta: Recording,
        files: Vec<(StreamMeta, std::io::Result<Written>)>,
        duration: f64,
        ignore_failed_streams: bool,
    ) -> Recording {
        let folder = self.folder(&meta.id);
        let mut good = Vec::new();
        let mut failure = None;
        for (stream, result) in files {
            match result {
                Ok(w) if w.any => good.push(compose::Part {
                    meta: stream,
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                    size: w.size,
                }),
                Ok(_) => {
                    let _ = std::fs::remove_file(folder.join(&stream.file));
                }
                Err(e) => {
                    tracing::warn!(recording = %meta.id, file = stream.file, error = %e, "a stream failed");
                    failure.get_or_insert_with(|| format!("stream {}: {e}", stream.stream.id));
                }
            }
        }
        let made = match failure {
            Some(f) if !ignore_failed_streams || good.is_empty() => Err(std::io::Error::other(f)),
            _ => compose::finish(&folder, &meta, &good, duration),
        };
        match made {
            Ok(size) => {
                meta.status = Status::Ready;
                meta.size = size;
                meta.duration = (duration * 100.0).round() / 100.0;
            }
            Err(e) => {
                tracing::warn!(recording = %meta.id, error = %e, "recording failed");
                meta.status = Status::Failed;
                meta.error = Some(e.to_string());
            }
        }
        meta.url = Some(format!(
            "{}{}/{}",
            self.inner.settings.url,
            meta.id,
            meta.file_name()
        ));
        if let Err(e) = write_meta(&folder, &meta) {
            // A full disk: what was being made goes, then what it was made of, so the final
            // status gets written rather than leaving the recording "started" on disk.
            tracing::warn!(recording = %meta.id, error = %e, "metadata not written; freeing space");
            compose::clear(&folder, false);
            if write_meta(&folder, &meta).is_err() {
                compose::clear(&folder, true);
                if let Err(e) = write_meta(&folder, &meta) {
                    tracing::error!(recording = %meta.id, error = %e, "metadata not written");
                }
            }
        }
        self.finishing().remove(&meta.id);
        meta
    }

    /// Stops the recording of `session`, if any (the session closed).
    pub async fn stop_session(&self, session: &str, reason: StopReason) {
        if let Some(id) = self.recording_of(session).map(|r| r.id)
            && let Err(e) = self.stop(&id, reason).await
        {
            tracing::warn!(recording = %id, error = %e, "stopping with the session failed");
        }
    }

    /// Stops every recording in progress (the server is stopping) and waits for their
    /// files, composed ones included.
    pub async fn stop_all(&self, reason: StopReason) {
        let ids: Vec<String> = self.live().keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.stop(&id, reason).await {
                tracing::warn!(recording = %id, error = %e, "stopping at shutdown failed");
            }
        }
        while !self.finishing().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// One recording: live, being finished, or from its folder.
    pub fn get(&self, id: &str) -> Option<Recording> {
        if let Some(l) = self.live().get(id) {
            return Some(l.meta.clone());
        }
        if let Some(m) = self.finishing().get(id) {
            return Some(m.clone());
        }
        plain_name(id)
            .then(|| read_meta(&self.folder(id)))
            .flatten()
    }

    /// Every recording in the folder, newest first.
    pub fn list(&self) -> Vec<Recording> {
        let mut all: Vec<Recording> = std::fs::read_dir(&self.inner.settings.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()))
            .collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        all
    }

    /// Deletes a recording that is not in progress, folder and all.
    pub fn delete(&self, id: &str) -> Result<(), RecordingError> {
        if self.live().contains_key(id) || self.finishing().contains_key(id) {
            return Err(RecordingError::InProgress(id.into()));
        }
        if self.get(id).is_none() {
            return Err(RecordingError::NotFound(id.into()));
        }
        std::fs::remove_dir_all(self.folder(id))?;
        Ok(())
    }

    /// The path of a recording's file `name`, when it exists and is its to serve.
    pub fn file(&self, id: &str, name: &str) -> Option<PathBuf> {
        if !plain_name(id) || !plain_name(name) {
            return None;
        }
        let path = self.folder(id).join(name);
        path.is_file().then_some(path)
    }

    /// After a restart: finishes every recording the last run left unfinished from the
    /// stream files it wrote (they are playable up to their last cluster), or marks it failed
    /// when nothing can be made. Returns the recordings it settled.
    pub fn recover(&self) -> Vec<Recording> {
        self.recover_of(self.inner.settings.node.as_deref())
    }

    /// `recover` for the unfinished recordings of the cluster node `node` only (this node's
    /// at its start; a dead node's, in a folder the nodes share, when this one took it over).
    /// Recordings of other nodes are theirs to finish, even in a shared folder.
    pub fn recover_of(&self, node: Option<&str>) -> Vec<Recording> {
        let mut settled = Vec::new();
        let folders = std::fs::read_dir(&self.inner.settings.path)
            .into_iter()
            .flatten()
            .flatten();
        for entry in folders {
            let folder = entry.path();
            let Some(meta) = read_meta(&folder) else {
                continue;
            };
            if matches!(meta.status, Status::Ready | Status::Failed) || meta.node.as_deref() != node
            {
                continue;
            }
            let mut meta = meta;
            meta.status = Status::Stopped;
            meta.reason = Some(StopReason::NodeCrashed.name().into());
            let parts = compose::salvage(&folder, meta.created_at);
            let duration = parts
                .iter()
                .map(|p| p.end_ms as f64 / 1000.0)
                .fold(0.0, f64::max);
            let files = parts
                .into_iter()
                .map(|p| {
                    let w = Written {
                        start_ms: p.start_ms,
                        end_ms: p.end_ms,
                        size: p.size,
                        any: true,
                    };
                    (p.meta, Ok(w))
                })
                .collect();
            self.announce(&meta, 0);
            let done = self.finish(meta, files, duration, true);
            self.announce(&done, 0);
            tracing::info!(recording = %done.id, status = ?done.status, "recovered after a restart");
            settled.push(done);
        }
        settled
    }
}
