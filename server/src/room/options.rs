//! Room options chosen at creation, with the rules that tie them together.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// How media flows between participants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaMode {
    /// Through the server's SFU.
    Routed,
    /// Peer to peer, the server only relays signaling.
    Relayed,
}

/// Whether recording starts by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordingMode {
    /// Recordings are started and stopped by API calls.
    Manual,
    /// A recording starts when the first stream is published.
    Always,
}

/// The video codec a room forces on its publishers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoCodec {
    /// Whatever the media server prefers (VP8 for Camerata).
    MediaServerPreferred,
    /// No codec is forced.
    None,
    /// VP8.
    Vp8,
    /// VP9.
    Vp9,
    /// H.264.
    H264,
}

/// What a recording writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputMode {
    /// One file with every stream composed in a grid.
    Composed,
    /// Composed, with the compositor kept warm for a quick start.
    ComposedQuickStart,
    /// One file per published stream.
    Individual,
}

/// The layout of a composed recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordingLayout {
    /// A grid that fits every stream.
    BestFit,
    /// One stream large, another small in a corner.
    PictureInPicture,
    /// A presentation with the others in a column.
    VerticalPresentation,
    /// A presentation with the others in a row.
    HorizontalPresentation,
    /// A layout page given by the operator.
    Custom,
}

/// The recording settings a room applies when a recording call does not say otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingDefaults {
    /// Recording name; empty means "use the recording id".
    pub name: String,
    /// Record audio.
    pub has_audio: bool,
    /// Record video.
    pub has_video: bool,
    /// Composed or individual.
    pub output_mode: OutputMode,
    /// Layout of composed recordings.
    pub layout: RecordingLayout,
    /// `WIDTHxHEIGHT` of composed recordings.
    pub resolution: String,
    /// Frames per second of composed recordings.
    pub frame_rate: u32,
    /// Memory a compositor may share for its frames, in bytes.
    #[serde(alias = "shm_size")]
    pub compositor_memory: u64,
    /// Relative path or URL of a custom layout.
    pub custom_layout: String,
    /// Individual recordings go on when one stream fails.
    pub ignore_failed_streams: bool,
    /// The node the caller asked the recording to run on (kept and echoed).
    #[serde(alias = "media_node")]
    pub node_hint: Option<String>,
}

impl Default for RecordingDefaults {
    fn default() -> Self {
        Self {
            name: String::new(),
            has_audio: true,
            has_video: true,
            output_mode: OutputMode::Composed,
            layout: RecordingLayout::BestFit,
            resolution: "1280x720".to_owned(),
            frame_rate: 25,
            compositor_memory: 536_870_912,
            custom_layout: String::new(),
            ignore_failed_streams: false,
            node_hint: None,
        }
    }
}

/// A recording setting whose value is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingValueError {
    /// Neither audio nor video would be recorded.
    #[error("neither audio nor video would be recorded")]
    NothingToRecord,
    /// The resolution is not `WxH` with sides from 100 to 1999.
    #[error("resolution '{0}' is not WIDTHxHEIGHT with each side from 100 to 1999")]
    Resolution(String),
    /// The frame rate is outside 1..=120.
    #[error("frame rate {0} is outside 1 to 120")]
    FrameRate(i64),
    /// The compositor's memory is below its minimum.
    #[error("compositor memory {0} is below the minimum of 134217728 bytes")]
    CompositorMemory(i64),
}

/// The least memory a compositor is given, in bytes.
pub const MIN_COMPOSITOR_MEMORY: u64 = 134_217_728;

impl RecordingDefaults {
    /// Checks the value ranges that a recording needs.
    pub fn check_values(&self) -> Result<(), RecordingValueError> {
        if !self.has_audio && !self.has_video {
            return Err(RecordingValueError::NothingToRecord);
        }
        if self.output_mode == OutputMode::Individual || !self.has_video {
            return Ok(());
        }
        if !resolution_ok(&self.resolution) {
            return Err(RecordingValueError::Resolution(self.resolution.clone()));
        }
        if !(1..=120).contains(&self.frame_rate) {
            return Err(RecordingValueError::FrameRate(self.frame_rate.into()));
        }
        if self.compositor_memory < MIN_COMPOSITOR_MEMORY {
            return Err(RecordingValueError::CompositorMemory(
                i64::try_from(self.compositor_memory).unwrap_or(i64::MAX),
            ));
        }
        Ok(())
    }
}

/// `WxH` where each side is 100 to 1999 with no leading zero.
fn resolution_ok(text: &str) -> bool {
    let side_ok = |s: &str| {
        let b = s.as_bytes();
        b.iter().all(u8::is_ascii_digit)
            && match b.len() {
                3 => b[0] != b'0',
                4 => b[0] == b'1',
                _ => false,
            }
    };
    match text.split_once('x') {
        Some((w, h)) => side_ok(w) && side_ok(h),
        None => false,
    }
}

/// Everything chosen when a room is created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomOptions {
    /// Routed through the SFU or relayed peer to peer.
    pub media_mode: MediaMode,
    /// Manual or automatic recording.
    pub recording_mode: RecordingMode,
    /// The id the creator asked for, or empty when it was generated.
    pub custom_id: String,
    /// The codec forced on publishers.
    pub forced_video_codec: VideoCodec,
    /// Whether the server may transcode to honour the forced codec.
    pub allow_transcoding: bool,
    /// Recording settings used when a recording call gives none.
    pub recording_defaults: RecordingDefaults,
    /// The node the creator asked the room to run on, echoed back.
    #[serde(alias = "media_node")]
    pub node_hint: Option<String>,
    /// End-to-end encryption of media between browsers.
    pub e2ee: bool,
    /// Where the creator would like the media to be handled.
    pub location_hint: Option<Ipv4Addr>,
    /// The room stays open with nobody in it and is never swept as unused: only an explicit
    /// close ends it (rooms that outlive their calls, as Janus's do).
    #[serde(default)]
    pub persistent: bool,
    /// The most streams published at once; `None`: no limit.
    #[serde(default)]
    pub max_publishers: Option<u32>,
    /// The most video kbps the server takes from any publisher of the room (the lower of
    /// this and the participant's own limit applies); `None`: no room limit.
    #[serde(default)]
    pub max_publish_kbps: Option<u32>,
    /// A human description of the room, shown by doors that have one.
    #[serde(default)]
    pub description: Option<String>,
    /// Settings a door keeps with the room, by door name, opaque to the core (stored and
    /// returned as given).
    #[serde(default)]
    pub door_settings: std::collections::BTreeMap<String, serde_json::Value>,
    /// Moderation: the audio of every stream published from now on is muted by the server
    /// as it starts (a "mute everyone, newcomers too" that a moderator lifts).
    #[serde(default)]
    pub mute_new_audio: bool,
}

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            media_mode: MediaMode::Routed,
            recording_mode: RecordingMode::Manual,
            custom_id: String::new(),
            forced_video_codec: VideoCodec::MediaServerPreferred,
            allow_transcoding: false,
            recording_defaults: RecordingDefaults::default(),
            node_hint: None,
            e2ee: false,
            location_hint: None,
            persistent: false,
            max_publishers: None,
            max_publish_kbps: None,
            description: None,
            door_settings: std::collections::BTreeMap::new(),
            mute_new_audio: false,
        }
    }
}

/// Room options that contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// Automatic recording needs the media to pass through the server.
    #[error("automatic recording needs routed media: relayed media cannot be recorded")]
    AlwaysRecordingNeedsRouted,
    /// End-to-end encryption is refused for relayed media.
    #[error("end-to-end encryption cannot be used with relayed media")]
    E2eeWithRelayed,
    /// End-to-end encrypted media cannot be recorded.
    #[error("end-to-end encryption cannot be used with automatic recording")]
    E2eeWithAlwaysRecording,
    /// The default recording settings are out of range.
    #[error("default recording settings: {0}")]
    RecordingDefaults(#[from] RecordingValueError),
}

impl RoomOptions {
    /// Checks the rules that tie the options together.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.recording_mode == RecordingMode::Always && self.media_mode == MediaMode::Relayed {
            return Err(OptionsError::AlwaysRecordingNeedsRouted);
        }
        if self.e2ee && self.media_mode == MediaMode::Relayed {
            return Err(OptionsError::E2eeWithRelayed);
        }
        if self.e2ee && self.recording_mode == RecordingMode::Always {
            return Err(OptionsError::E2eeWithAlwaysRecording);
        }
        self.recording_defaults.check_values()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_rules() {
        for ok in ["1280x720", "100x100", "1999x1999", "640x480"] {
            assert!(resolution_ok(ok), "{ok}");
        }
        for bad in [
            "2000x720", "99x100", "0640x480", "640X480", "640x", "x", "", "640x4800",
        ] {
            assert!(!resolution_ok(bad), "{bad}");
        }
    }

    #[test]
    fn option_rules() {
        let mut o = RoomOptions::default();
        assert_eq!(o.validate(), Ok(()));
        o.recording_mode = RecordingMode::Always;
        o.media_mode = MediaMode::Relayed;
        assert_eq!(o.validate(), Err(OptionsError::AlwaysRecordingNeedsRouted));
        o.recording_mode = RecordingMode::Manual;
        o.e2ee = true;
        assert_eq!(o.validate(), Err(OptionsError::E2eeWithRelayed));
        o.media_mode = MediaMode::Routed;
        o.recording_mode = RecordingMode::Always;
        assert_eq!(o.validate(), Err(OptionsError::E2eeWithAlwaysRecording));
        o.e2ee = false;
        o.recording_defaults.has_audio = false;
        o.recording_defaults.has_video = false;
        assert_eq!(
            o.validate(),
            Err(OptionsError::RecordingDefaults(
                RecordingValueError::NothingToRecord
            ))
        );
    }

    #[test]
    fn recording_values_only_checked_where_they_apply() {
        let mut d = RecordingDefaults {
            frame_rate: 0,
            ..RecordingDefaults::default()
        };
        assert_eq!(d.check_values(), Err(RecordingValueError::FrameRate(0)));
        d.output_mode = OutputMode::Individual;
        assert_eq!(d.check_values(), Ok(()));
        d.output_mode = OutputMode::Composed;
        d.frame_rate = 30;
        d.compositor_memory = 1;
        assert_eq!(
            d.check_values(),
            Err(RecordingValueError::CompositorMemory(1))
        );
    }
}
