//! Participants of a room: their role, their grant, and whether they have joined.

use super::{ParticipantId, StreamId};
use serde::{Deserialize, Serialize};

/// The most characters of server data a participant may carry.
pub const MAX_DATA_CHARS: usize = 1000;

/// What a participant may do in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Receives streams, never publishes.
    Subscriber,
    /// Publishes and receives.
    Publisher,
    /// Publishes, receives, and may force others out or unpublish them.
    Moderator,
    /// Publishes, never receives.
    PublisherOnly,
}

impl Role {
    /// Whether the role may publish streams.
    pub fn can_publish(self) -> bool {
        !matches!(self, Role::Subscriber)
    }
    /// Whether the role may receive streams.
    pub fn can_subscribe(self) -> bool {
        !matches!(self, Role::PublisherOnly)
    }
    /// Whether the role may force other participants out or unpublish them.
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Moderator)
    }
}

/// Bandwidth limits and filters granted to one participant (kbps; `None` = server default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaLimits {
    /// Most video kbps the server receives from this participant.
    pub video_max_recv_kbps: Option<i64>,
    /// Least video kbps the server receives from this participant.
    pub video_min_recv_kbps: Option<i64>,
    /// Most video kbps the server sends to this participant.
    pub video_max_send_kbps: Option<i64>,
    /// Least video kbps the server sends to this participant.
    pub video_min_send_kbps: Option<i64>,
    /// Filters this participant may apply.
    pub allowed_filters: Vec<String>,
}

/// A STUN or TURN server handed to one participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URL.
    pub url: String,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<String>,
}

/// What a stream's video shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoSource {
    /// A camera.
    #[default]
    Camera,
    /// A captured screen or window.
    Screen,
    /// Any other source the client chose (a canvas, a file).
    Custom,
    /// A network camera the server pulls.
    IpCamera,
}

/// The size of a stream's video, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A stream a participant publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// Its id, new on every publish.
    pub id: StreamId,
    /// When it was published, ms since the epoch.
    pub created_at: i64,
    /// It carries audio.
    pub has_audio: bool,
    /// It carries video.
    pub has_video: bool,
    /// Its audio is not muted.
    pub audio_active: bool,
    /// Its video is not muted.
    pub video_active: bool,
    /// What its video shows.
    #[serde(default)]
    pub video_source: VideoSource,
    /// Frames per second asked for, when the client said.
    #[serde(default)]
    pub frame_rate: Option<u32>,
    /// The size of its video, when known.
    #[serde(default)]
    pub dimensions: Option<Dimensions>,
}

/// A change of a published stream's properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamChange {
    /// Its audio was muted (`false`) or unmuted.
    AudioActive(bool),
    /// Its video was muted (`false`) or unmuted.
    VideoActive(bool),
    /// Its video changed size.
    Dimensions(Dimensions),
    /// The client replaced one of its tracks; `detail` is relayed as the client gave it.
    TrackReplaced {
        /// The video track (else the audio track).
        video: bool,
        /// The client's description of the new track.
        detail: String,
    },
}

impl StreamInfo {
    /// Applies `change` to the stream's properties.
    pub fn apply(&mut self, change: &StreamChange) {
        match change {
            StreamChange::AudioActive(on) => self.audio_active = *on,
            StreamChange::VideoActive(on) => self.video_active = *on,
            StreamChange::Dimensions(d) => self.dimensions = Some(*d),
            StreamChange::TrackReplaced { .. } => {}
        }
    }
}

/// A stream a participant receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The stream.
    pub stream: StreamId,
    /// The participant publishing it.
    pub publisher: ParticipantId,
    /// When the subscription started, ms since the epoch.
    pub created_at: i64,
}

/// What is known of a participant once it has joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveInfo {
    /// When it joined, ms since the epoch.
    pub joined_at: i64,
    /// Where it joined from.
    pub ip: String,
    /// The client's own description of itself.
    pub platform: String,
    /// Data the client attached when joining.
    pub client_data: String,
    /// The door it came through (`openvidu`, `janus`, …), for metrics and logs.
    #[serde(default)]
    pub door: String,
    /// What it publishes, in the order it started.
    #[serde(default)]
    pub streams: Vec<StreamInfo>,
    /// What it receives.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

/// Whether a participant has joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantState {
    /// Granted, not yet joined: its grant may still be used once.
    Pending,
    /// Joined.
    Active(ActiveInfo),
}

/// One participant of a room, pending or active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Its id, unique in the room.
    pub id: ParticipantId,
    /// What it may do.
    pub role: Role,
    /// Data given by the backend that created it.
    pub data: String,
    /// Whether its streams are recorded by individual recordings.
    pub record: bool,
    /// When it was created, ms since the epoch.
    pub created_at: i64,
    /// When its grant stops being accepted, ms since the epoch.
    pub expires_at: i64,
    /// The credential as issued to the client (opaque to the core).
    pub grant: String,
    /// Bandwidth limits and filters.
    pub limits: Option<MediaLimits>,
    /// ICE servers handed to it.
    pub ice_servers: Vec<IceServer>,
    /// Pending or active.
    pub state: ParticipantState,
    /// What a door keeps with the participant, by door name, opaque to the core (stored
    /// and returned as given).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub door_data: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Participant {
    /// Whether it has joined.
    pub fn is_active(&self) -> bool {
        matches!(self.state, ParticipantState::Active(_))
    }

    /// What it knows once joined.
    pub fn active(&self) -> Option<&ActiveInfo> {
        match &self.state {
            ParticipantState::Active(a) => Some(a),
            ParticipantState::Pending => None,
        }
    }

    /// The streams it publishes, in the order they started.
    pub fn streams(&self) -> &[StreamInfo] {
        self.active().map_or(&[], |a| a.streams.as_slice())
    }

    /// One stream it publishes.
    pub fn stream(&self, id: &StreamId) -> Option<&StreamInfo> {
        self.streams().iter().find(|s| &s.id == id)
    }

    /// What it receives.
    pub fn subscriptions(&self) -> &[Subscription] {
        self.active().map_or(&[], |a| a.subscriptions.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn role_grants() {
        assert!(!Role::Subscriber.can_publish());
        assert!(Role::Subscriber.can_subscribe());
        assert!(Role::PublisherOnly.can_publish());
        assert!(!Role::PublisherOnly.can_subscribe());
        assert!(Role::Publisher.can_publish() && Role::Publisher.can_subscribe());
        assert!(!Role::Publisher.can_moderate());
        assert!(Role::Moderator.can_moderate());
    }
}
