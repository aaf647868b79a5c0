//! OpenVidu's JSON: enum spellings, and the Session, Connection and Token documents built
//! from core state with exactly the keys OpenVidu 2.32 writes.

use crate::recording::StopReason;
use crate::room::{
    Dimensions, EndReason, MediaLimits, MediaMode, OptionsError, OutputMode, Participant,
    ParticipantState, RecordingDefaults, RecordingLayout, RecordingMode, RecordingValueError, Role,
    Room, StreamChange, VideoCodec, VideoSource,
};
use serde_json::{Map, Value, json};

pub use crate::spelling::WireEnum;
use crate::wire_enum;

wire_enum!(MediaMode { "ROUTED" => MediaMode::Routed, "RELAYED" => MediaMode::Relayed });
wire_enum!(RecordingMode { "ALWAYS" => RecordingMode::Always, "MANUAL" => RecordingMode::Manual });
wire_enum!(VideoCodec {
    "MEDIA_SERVER_PREFERRED" => VideoCodec::MediaServerPreferred,
    "NONE" => VideoCodec::None,
    "VP8" => VideoCodec::Vp8,
    "VP9" => VideoCodec::Vp9,
    "H264" => VideoCodec::H264,
});
wire_enum!(OutputMode {
    "COMPOSED" => OutputMode::Composed,
    "COMPOSED_QUICK_START" => OutputMode::ComposedQuickStart,
    "INDIVIDUAL" => OutputMode::Individual,
});
wire_enum!(RecordingLayout {
    "BEST_FIT" => RecordingLayout::BestFit,
    "PICTURE_IN_PICTURE" => RecordingLayout::PictureInPicture,
    "VERTICAL_PRESENTATION" => RecordingLayout::VerticalPresentation,
    "HORIZONTAL_PRESENTATION" => RecordingLayout::HorizontalPresentation,
    "CUSTOM" => RecordingLayout::Custom,
});
wire_enum!(Role {
    "SUBSCRIBER" => Role::Subscriber,
    "PUBLISHER" => Role::Publisher,
    "MODERATOR" => Role::Moderator,
    "PUBLISHER_ONLY" => Role::PublisherOnly,
});

wire_enum!(VideoSource {
    "CAMERA" => VideoSource::Camera,
    "SCREEN" => VideoSource::Screen,
    "CUSTOM" => VideoSource::Custom,
    "IPCAM" => VideoSource::IpCamera,
});

/// `videoDimensions` as OpenVidu carries it: JSON text `{"width":W,"height":H}`; empty when
/// unknown.
pub fn dimensions_text(d: Option<Dimensions>) -> String {
    d.map(|d| json!({ "width": d.width, "height": d.height }).to_string())
        .unwrap_or_default()
}

/// The dimensions in a `videoDimensions` text; `None` when it names none.
pub fn parse_dimensions(text: &str) -> Option<Dimensions> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    // Some clients encode the JSON text once more.
    if let Value::String(inner) = &v {
        v = serde_json::from_str(inner).ok()?;
    }
    let side = |k: &str| v.get(k)?.as_u64().and_then(|n| u32::try_from(n).ok());
    Some(Dimensions {
        width: side("width")?,
        height: side("height")?,
    })
}

/// `frameRate` as OpenVidu carries it: -1 when unknown.
pub fn frame_rate_value(f: Option<u32>) -> i64 {
    f.map_or(-1, i64::from)
}

/// A `streamPropertyChanged` request's property and `newValue`, as a typed change; `None`
/// for a property OpenVidu does not define or a value it cannot carry.
pub fn stream_change(property: &str, value: &Value) -> Option<StreamChange> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match property {
        "audioActive" => Some(StreamChange::AudioActive(text == "true")),
        "videoActive" => Some(StreamChange::VideoActive(text == "true")),
        "videoDimensions" => parse_dimensions(&text).map(StreamChange::Dimensions),
        "videoTrack" | "audioTrack" => Some(StreamChange::TrackReplaced {
            video: property == "videoTrack",
            detail: text,
        }),
        _ => None,
    }
}

/// The property name and `newValue` of a `streamPropertyChanged` notification: booleans as
/// the strings "true"/"false", dimensions as JSON text inside a string (the browser decodes
/// each property so).
pub fn stream_change_wire(change: &StreamChange) -> (&'static str, Value) {
    match change {
        StreamChange::AudioActive(on) => ("audioActive", Value::String(on.to_string())),
        StreamChange::VideoActive(on) => ("videoActive", Value::String(on.to_string())),
        StreamChange::Dimensions(d) => (
            "videoDimensions",
            Value::String(Value::String(dimensions_text(Some(*d))).to_string()),
        ),
        StreamChange::TrackReplaced { video, detail } => (
            if *video { "videoTrack" } else { "audioTrack" },
            Value::String(detail.clone()),
        ),
    }
}

/// The kind of an OpenVidu connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionType {
    /// A browser or mobile client.
    Webrtc,
    /// An IP camera pulled by the server.
    Ipcam,
}
wire_enum!(ConnectionType { "WEBRTC" => ConnectionType::Webrtc, "IPCAM" => ConnectionType::Ipcam });

/// `defaultRecordingProperties`: only the keys that apply to its mode.
pub fn recording_defaults_json(d: &RecordingDefaults) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), d.name.clone().into());
    m.insert("hasAudio".into(), d.has_audio.into());
    m.insert("hasVideo".into(), d.has_video.into());
    m.insert("outputMode".into(), d.output_mode.name().into());
    if d.output_mode != OutputMode::Individual && d.has_video {
        m.insert("recordingLayout".into(), d.layout.name().into());
        m.insert("resolution".into(), d.resolution.clone().into());
        m.insert("frameRate".into(), d.frame_rate.into());
        m.insert("shmSize".into(), d.compositor_memory.into());
        if d.layout == RecordingLayout::Custom {
            m.insert("customLayout".into(), d.custom_layout.clone().into());
        }
    }
    if d.output_mode == OutputMode::Individual {
        m.insert("ignoreFailedStreams".into(), d.ignore_failed_streams.into());
    }
    if let Some(node) = &d.node_hint {
        m.insert("mediaNode".into(), json!({ "id": node }));
    }
    Value::Object(m)
}

/// The Session document; pending connections are listed only when asked for.
pub fn session_json(room: &Room, with_pending: bool) -> Value {
    let o = room.options();
    let content: Vec<Value> = room
        .participants()
        .filter(|p| with_pending || p.is_active())
        .map(|p| connection_json(room.id().as_str(), p))
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), room.id().as_str().into());
    m.insert("object".into(), "session".into());
    m.insert("sessionId".into(), room.id().as_str().into());
    m.insert("createdAt".into(), room.created_at().into());
    m.insert("recording".into(), false.into());
    m.insert("broadcasting".into(), false.into());
    m.insert("mediaMode".into(), o.media_mode.name().into());
    m.insert("recordingMode".into(), o.recording_mode.name().into());
    m.insert(
        "defaultRecordingProperties".into(),
        recording_defaults_json(&o.recording_defaults),
    );
    m.insert("customSessionId".into(), o.custom_id.clone().into());
    if let Some(node) = &o.node_hint {
        m.insert("mediaNode".into(), json!({ "id": node }));
    }
    m.insert(
        "forcedVideoCodec".into(),
        o.forced_video_codec.name().into(),
    );
    m.insert("allowTranscoding".into(), o.allow_transcoding.into());
    m.insert(
        "connections".into(),
        json!({ "numberOfElements": content.len(), "content": content }),
    );
    Value::Object(m)
}

/// `kurentoOptions`: only the keys that were set.
pub fn limits_json(l: &MediaLimits) -> Value {
    let mut m = Map::new();
    let pairs = [
        ("videoMaxRecvBandwidth", l.video_max_recv_kbps),
        ("videoMinRecvBandwidth", l.video_min_recv_kbps),
        ("videoMaxSendBandwidth", l.video_max_send_kbps),
        ("videoMinSendBandwidth", l.video_min_send_kbps),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            m.insert(k.into(), v.into());
        }
    }
    if !l.allowed_filters.is_empty() {
        m.insert("allowedFilters".into(), l.allowed_filters.clone().into());
    }
    Value::Object(m)
}

/// `customIceServers`: `{url, username?, credential?}` per server.
pub fn ice_servers_json(p: &Participant) -> Value {
    p.ice_servers
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("url".into(), s.url.clone().into());
            if let Some(u) = s.username.as_ref().filter(|u| !u.is_empty()) {
                m.insert("username".into(), u.clone().into());
            }
            if let Some(c) = s.credential.as_ref().filter(|c| !c.is_empty()) {
                m.insert("credential".into(), c.clone().into());
            }
            Value::Object(m)
        })
        .collect()
}

/// A stream's media flags as OpenVidu writes them: audio fields only with audio, video
/// fields only with video, and an empty filter.
pub fn media_options(s: &crate::room::StreamInfo) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("hasAudio".into(), s.has_audio.into());
    if s.has_audio {
        m.insert("audioActive".into(), s.audio_active.into());
    }
    m.insert("hasVideo".into(), s.has_video.into());
    if s.has_video {
        m.insert("videoActive".into(), s.video_active.into());
        m.insert("typeOfVideo".into(), s.video_source.name().into());
        m.insert("frameRate".into(), frame_rate_value(s.frame_rate).into());
        m.insert(
            "videoDimensions".into(),
            dimensions_text(s.dimensions).into(),
        );
    }
    m.insert("filter".into(), json!({}));
    m
}

/// A publisher entry of a Connection document.
fn publisher_json(s: &crate::room::StreamInfo) -> Value {
    json!({ "createdAt": s.created_at, "streamId": s.id, "mediaOptions": media_options(s) })
}

/// The Connection document, pending or active.
pub fn connection_json(session_id: &str, p: &Participant) -> Value {
    let (status, active_at, location, ip, platform, client_data, publishers, subscribers) =
        match &p.state {
            ParticipantState::Pending => (
                "pending",
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ),
            ParticipantState::Active(a) => (
                "active",
                a.joined_at.into(),
                "unknown".into(),
                a.ip.clone().into(),
                a.platform.clone().into(),
                a.client_data.clone().into(),
                a.streams
                    .iter()
                    .map(publisher_json)
                    .collect::<Vec<_>>()
                    .into(),
                a.subscriptions
                    .iter()
                    .map(|s| json!({ "createdAt": s.created_at, "streamId": s.stream }))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        };
    json!({
        "id": p.id.as_str(),
        "object": "connection",
        "status": status,
        "connectionId": p.id.as_str(),
        "sessionId": session_id,
        "createdAt": p.created_at,
        "activeAt": active_at,
        "location": location,
        "ip": ip,
        "platform": platform,
        "token": p.grant,
        "type": "WEBRTC",
        "record": p.record,
        "role": p.role.name(),
        "kurentoOptions": p.limits.as_ref().map(limits_json),
        "customIceServers": ice_servers_json(p),
        "rtspUri": null,
        "adaptativeBitrate": null,
        "onlyPlayWithSubscribers": null,
        "networkCache": null,
        "serverData": p.data,
        "clientData": client_data,
        "publishers": publishers,
        "subscribers": subscribers,
    })
}

/// The Token document of the deprecated `POST /tokens`.
pub fn token_json(session_id: &str, p: &Participant) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), p.grant.clone().into());
    m.insert("token".into(), p.grant.clone().into());
    m.insert("createdAt".into(), p.created_at.into());
    m.insert("connectionId".into(), p.id.as_str().into());
    m.insert("session".into(), session_id.into());
    m.insert("data".into(), p.data.clone().into());
    m.insert("role".into(), p.role.name().into());
    if let Some(l) = &p.limits {
        m.insert("kurentoOptions".into(), limits_json(l));
    }
    Value::Object(m)
}

/// The name OpenVidu gives an end reason, in notifications and events.
pub fn reason_name(r: EndReason) -> &'static str {
    match r {
        EndReason::Left => "disconnect",
        EndReason::EvictedByModerator => "forceDisconnectByUser",
        EndReason::EvictedByApi => "forceDisconnectByServer",
        EndReason::LastParticipantLeft => "lastParticipantLeft",
        EndReason::ClosedByApi => "sessionClosedByServer",
        EndReason::ConnectionLost => "networkDisconnect",
        EndReason::ServerStopped => "openviduServerStopped",
        EndReason::NodeCrashed => "nodeCrashed",
        EndReason::Unpublished => "unpublish",
        EndReason::UnpublishedByModerator => "forceUnpublishByUser",
        EndReason::UnpublishedByApi => "forceUnpublishByServer",
        EndReason::RecordingEnded => "automaticStop",
    }
}

/// Why session properties contradict each other, in OpenVidu's words.
pub fn options_message(e: &OptionsError) -> String {
    match e {
        OptionsError::AlwaysRecordingNeedsRouted => {
            "recordingMode ALWAYS needs mediaMode ROUTED: a relayed session cannot be recorded"
                .into()
        }
        OptionsError::E2eeWithRelayed => {
            "end-to-end encryption (e2ee) cannot be used with mediaMode RELAYED".into()
        }
        OptionsError::E2eeWithAlwaysRecording => {
            "end-to-end encryption (e2ee) cannot be used with recordingMode ALWAYS".into()
        }
        OptionsError::RecordingDefaults(e) => {
            format!("defaultRecordingProperties: {}", recording_value_message(e))
        }
    }
}

/// Why recording properties are out of range, in OpenVidu's words.
pub fn recording_value_message(e: &RecordingValueError) -> String {
    match e {
        RecordingValueError::NothingToRecord => {
            "cannot record with both hasAudio and hasVideo false".into()
        }
        RecordingValueError::Resolution(r) => {
            format!("resolution '{r}' is not WIDTHxHEIGHT with each side from 100 to 1999")
        }
        RecordingValueError::FrameRate(f) => format!("frameRate {f} is outside 1 to 120"),
        RecordingValueError::CompositorMemory(m) => {
            format!("shmSize {m} is below the minimum of 134217728")
        }
    }
}

/// OpenVidu's name of why a recording stopped.
pub fn stop_reason_name(r: StopReason) -> &'static str {
    match r {
        StopReason::StoppedByServer => "recordingStoppedByServer",
        StopReason::AutomaticStop => "automaticStop",
        StopReason::LastParticipantLeft => "lastParticipantLeft",
        StopReason::SessionClosedByServer => "sessionClosedByServer",
        StopReason::ServerStopped => "openviduServerStopped",
        StopReason::NodeCrashed => "nodeCrashed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_exact_and_case_sensitive() {
        assert_eq!(MediaMode::parse("ROUTED"), Some(MediaMode::Routed));
        assert_eq!(MediaMode::parse("routed"), None);
        assert_eq!(Role::parse("PUBLISHER_ONLY"), Some(Role::PublisherOnly));
        assert_eq!(VideoCodec::H264.name(), "H264");
        for (name, v) in OutputMode::TABLE {
            assert_eq!(OutputMode::parse(name), Some(*v));
        }
    }

    #[test]
    fn recording_defaults_keep_only_relevant_keys() {
        let d = RecordingDefaults::default();
        let v = recording_defaults_json(&d);
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 8, "{keys:?}");
        let ind = RecordingDefaults {
            output_mode: OutputMode::Individual,
            ..RecordingDefaults::default()
        };
        let v = recording_defaults_json(&ind);
        assert!(v.get("resolution").is_none());
        assert_eq!(v["ignoreFailedStreams"], json!(false));
    }
}
