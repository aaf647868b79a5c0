//! The VideoRoom plugin's words: its error codes and texts, the typed reading of request
//! bodies with Janus's validation messages, and a room's settings as the Janus door keeps
//! them with the room.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A failed VideoRoom request: Janus answers these as plugin data, not as Janus errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrError {
    /// The plugin's error code (421–437, 499).
    pub code: u16,
    /// Its text.
    pub text: String,
}

impl VrError {
    fn new(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    /// 429: a mandatory element is missing.
    pub fn missing(element: &str) -> Self {
        Self::new(429, format!("Missing mandatory element ({element})"))
    }

    /// 430: an element of the wrong JSON type.
    pub fn bad_type(element: &str, should_be: &str) -> Self {
        Self::new(
            430,
            format!("Invalid element type ({element} should be {should_be})"),
        )
    }

    /// 430: an element whose value is not allowed.
    pub fn bad_value(text: impl Into<String>) -> Self {
        Self::new(430, text)
    }

    /// 423: a request the plugin does not know.
    pub fn unknown(request: &str) -> Self {
        Self::new(423, format!("Unknown request '{request}'"))
    }

    /// 423: a request Janus serves and Camerata does not (named in the README).
    pub fn unsupported(request: &str) -> Self {
        Self::new(
            423,
            format!("Unsupported request '{request}' (not served by Camerata)"),
        )
    }

    /// 424: anything but a join on a fresh handle.
    pub fn join_first() -> Self {
        Self::new(424, "Invalid request on unconfigured participant")
    }

    /// 425: the handle already has a role.
    pub fn already_in(role: &str) -> Self {
        Self::new(425, format!("Already in as a {role} on this handle"))
    }

    /// 425: the handle left its room.
    pub fn not_in_room() -> Self {
        Self::new(425, "Not in a room (create a new handle)")
    }

    /// 426 as Janus answers a handle whose participant left or was put out (no id in it).
    pub fn gone() -> Self {
        Self::new(426, "No such room")
    }

    /// 426: no room with that id.
    pub fn no_room(room: u64) -> Self {
        Self::new(426, format!("No such room ({room})"))
    }

    /// 427: the room id is taken.
    pub fn room_exists(room: u64) -> Self {
        Self::new(427, format!("Room {room} already exists"))
    }

    /// 428: no active publisher with that id.
    pub fn no_feed(feed: u64) -> Self {
        Self::new(428, format!("No such feed ({feed})"))
    }

    /// 428: the publisher has no stream with that mid.
    pub fn no_mid(mid: &str, feed: u64) -> Self {
        Self::new(428, format!("No such mid '{mid}' in feed ({feed})"))
    }

    /// 428: the publisher publishes no stream with that mid.
    pub fn no_feed_mid(mid: &str) -> Self {
        Self::new(428, format!("No such mid '{mid}' published"))
    }

    /// 428: the subscription has no stream with that mid.
    pub fn no_sub_mid(mid: &str) -> Self {
        Self::new(428, format!("No such mid '{mid}' in subscription"))
    }

    /// 428: no participant with that id.
    pub fn no_user(user: u64, room: u64) -> Self {
        Self::new(428, format!("No such user {user} in room {room}"))
    }

    /// 431: an SDP of the wrong type for the request.
    pub fn sdp_type(text: impl Into<String>) -> Self {
        Self::new(431, text)
    }

    /// 432: the room has its maximum of publishers.
    pub fn publishers_full(max: u32) -> Self {
        Self::new(
            432,
            format!("Maximum number of publishers ({max}) already reached"),
        )
    }

    /// 433: a secret, pin, token or private id that does not open the room.
    pub fn unauthorized(what: &str) -> Self {
        Self::new(433, format!("Unauthorized ({what})"))
    }

    /// 433 with Janus's own text.
    pub fn unauthorized_text(text: &str) -> Self {
        Self::new(433, text)
    }

    /// 434: publishing twice.
    pub fn already_published() -> Self {
        Self::new(434, "Can't publish, already published")
    }

    /// 435: unpublishing without publishing.
    pub fn not_published() -> Self {
        Self::new(435, "Can't unpublish, not published")
    }

    /// 436: the participant id is taken.
    pub fn id_exists(user: u64) -> Self {
        Self::new(436, format!("User ID {user} already exists"))
    }

    /// 437: an SDP that cannot be used.
    pub fn bad_sdp(text: impl Into<String>) -> Self {
        Self::new(437, text)
    }

    /// 499: anything else.
    pub fn other(text: impl Into<String>) -> Self {
        Self::new(499, text)
    }

    /// The plugin data Janus sends for it.
    pub fn data(&self) -> Value {
        json!({ "videoroom": "event", "error_code": self.code, "error": self.text })
    }
}

/// A request body, read with Janus's validation rules and texts.
pub struct Body<'a>(pub &'a Map<String, Value>);

impl Body<'_> {
    /// An optional string.
    pub fn str(&self, key: &str) -> Result<Option<&str>, VrError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(VrError::bad_type(key, "a string")),
        }
    }

    /// A mandatory string.
    pub fn req_str(&self, key: &str) -> Result<&str, VrError> {
        self.str(key)?.ok_or_else(|| VrError::missing(key))
    }

    /// An optional boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, VrError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(VrError::bad_type(key, "a boolean")),
        }
    }

    /// An optional integer ≥ 0.
    pub fn uint(&self, key: &str) -> Result<Option<u64>, VrError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| VrError::bad_type(key, "a positive integer")),
            Some(_) => Err(VrError::bad_type(key, "a positive integer")),
        }
    }

    /// A mandatory integer ≥ 0.
    pub fn req_uint(&self, key: &str) -> Result<u64, VrError> {
        self.uint(key)?.ok_or_else(|| VrError::missing(key))
    }

    /// An optional integer ≥ 0 that fits 32 bits.
    pub fn u32(&self, key: &str) -> Result<Option<u32>, VrError> {
        self.uint(key)?
            .map(|v| u32::try_from(v).map_err(|_| VrError::bad_value(format!("Invalid {key}"))))
            .transpose()
    }

    /// An optional array of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, VrError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        VrError::bad_value(format!(
                            "Invalid element in the {key} array (not a string)"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(VrError::bad_type(key, "an array")),
        }
    }

    /// An optional array of objects.
    pub fn objects(&self, key: &str) -> Result<Option<Vec<&Map<String, Value>>>, VrError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_object()
                        .ok_or_else(|| VrError::bad_type(key, "an array of objects"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(VrError::bad_type(key, "an array")),
        }
    }

    /// The room id (a mandatory integer ≥ 0, as Janus without `string_ids`).
    pub fn room(&self) -> Result<u64, VrError> {
        self.req_uint("room")
    }

    /// Checks a room credential (`secret` or `pin`): a room that has one needs it given
    /// (429 when absent, 433 when wrong).
    pub fn credential(&self, key: &str, expected: Option<&str>) -> Result<(), VrError> {
        let Some(expected) = expected else {
            return Ok(());
        };
        let given = self.str(key)?.ok_or_else(|| VrError::missing(key))?;
        if given == expected {
            Ok(())
        } else {
            Err(VrError::unauthorized(&format!("wrong {key}")))
        }
    }
}

/// The audio codec names Janus's validator accepts.
const AUDIO_CODECS: [&str; 10] = [
    "opus",
    "multiopus",
    "red",
    "g722",
    "pcmu",
    "pcma",
    "isac32",
    "isac16",
    "l16",
    "l16-48",
];
/// The video codec names Janus's validator accepts.
const VIDEO_CODECS: [&str; 5] = ["vp8", "vp9", "h264", "av1", "h265"];

/// Reads a comma list of codecs (at most 5 kept, as Janus), each a known name.
pub fn codec_list(text: &str, known: &[&str], refused: &str) -> Result<Vec<String>, VrError> {
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim) {
        let lower = name.to_ascii_lowercase();
        if !known.contains(&lower.as_str()) {
            return Err(VrError::bad_value(refused));
        }
        if out.len() < 5 && !out.contains(&lower) {
            out.push(lower);
        }
    }
    Ok(out)
}

/// The audio codecs of a room, as given to `create`.
pub fn audio_codecs(text: &str) -> Result<Vec<String>, VrError> {
    codec_list(
        text,
        &AUDIO_CODECS,
        "Invalid element (audiocodec can only be or contain opus, isac32, isac16, pcmu, pcma or g722)",
    )
}

/// The video codecs of a room, as given to `create`.
pub fn video_codecs(text: &str) -> Result<Vec<String>, VrError> {
    codec_list(
        text,
        &VIDEO_CODECS,
        "Invalid element (videocodec can only be or contain vp8, vp9, av1, h264 or h265)",
    )
}

/// What the Janus door keeps with a room beyond the neutral options (its description,
/// publisher limit and bitrate cap live there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JanusRoom {
    /// Needed by edit, destroy, kick, moderate, allowed, listforwarders.
    pub secret: Option<String>,
    /// Needed by join.
    pub pin: Option<String>,
    /// Hidden from `list`.
    pub is_private: bool,
    /// The tokens a publisher may join with; `None`: no ACL.
    pub allowed: Option<Vec<String>>,
    /// Subscribers must give a valid private id.
    pub require_pvtid: bool,
    /// The bitrate cap exactly as given, in bits per second (0: none).
    pub bitrate: u64,
    /// The cap also limits a publisher's own `configure` bitrate.
    pub bitrate_cap: bool,
    /// Seconds between keyframe requests to publishers (0: off).
    pub fir_freq: u64,
    /// Allowed audio codecs, in preference order.
    pub audiocodec: Vec<String>,
    /// Allowed video codecs, in preference order.
    pub videocodec: Vec<String>,
    /// Opus forward error correction.
    pub opus_fec: bool,
    /// Opus discontinuous transmission.
    pub opus_dtx: bool,
    /// Announce participants that do not publish.
    pub notify_joining: bool,
    /// Publishers must negotiate end-to-end encryption.
    pub require_e2ee: bool,
    /// The room was created `permanent`.
    pub permanent: bool,
    /// Recording state changes need the secret.
    pub lock_record: bool,
    /// The audio-level header extension is negotiated.
    pub audiolevel_ext: bool,
    /// `talking` events are sent.
    pub audiolevel_event: bool,
    /// Packets over which audio activity is averaged.
    pub audio_active_packets: u64,
    /// The level (dBov) under which a publisher is talking.
    pub audio_level_average: u64,
    /// The video-orientation extension is negotiated.
    pub videoorient_ext: bool,
    /// The playout-delay extension is negotiated.
    pub playoutdelay_ext: bool,
    /// The transport-wide congestion control extension is negotiated.
    pub transport_wide_cc_ext: bool,
}

impl Default for JanusRoom {
    fn default() -> Self {
        Self {
            secret: None,
            pin: None,
            is_private: false,
            allowed: None,
            require_pvtid: false,
            bitrate: 0,
            bitrate_cap: false,
            fir_freq: 0,
            audiocodec: vec!["opus".into()],
            videocodec: vec!["vp8".into()],
            opus_fec: true,
            opus_dtx: false,
            notify_joining: false,
            require_e2ee: false,
            permanent: false,
            lock_record: false,
            audiolevel_ext: true,
            audiolevel_event: false,
            audio_active_packets: 100,
            audio_level_average: 25,
            videoorient_ext: true,
            playoutdelay_ext: true,
            transport_wide_cc_ext: true,
        }
    }
}

/// The least bitrate cap Janus keeps (lower non-zero values are raised to it).
pub const MIN_BITRATE: u64 = 64_000;

/// Janus's publisher limit when `create` names none.
pub const DEFAULT_PUBLISHERS: u32 = 3;

impl JanusRoom {
    /// Reads the room parameters of a `create` body.
    pub fn from_create(b: &Body<'_>) -> Result<Self, VrError> {
        let mut s = Self::default();
        let non_empty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_owned);
        s.secret = non_empty(b.str("secret")?);
        s.pin = non_empty(b.str("pin")?);
        s.is_private = b.bool("is_private")?.unwrap_or(false);
        s.allowed = b.strings("allowed")?;
        s.require_pvtid = b.bool("require_pvtid")?.unwrap_or(false);
        s.bitrate = b.uint("bitrate")?.map_or(0, floor_bitrate);
        s.bitrate_cap = b.bool("bitrate_cap")?.unwrap_or(false);
        s.fir_freq = b.uint("fir_freq")?.unwrap_or(0);
        if let Some(a) = b.str("audiocodec")? {
            s.audiocodec = audio_codecs(a)?;
        }
        if let Some(v) = b.str("videocodec")? {
            s.videocodec = video_codecs(v)?;
        }
        s.opus_fec =
            b.bool("opus_fec")?.unwrap_or(true) && s.audiocodec.iter().any(|c| c == "opus");
        s.opus_dtx = b.bool("opus_dtx")?.unwrap_or(false);
        s.notify_joining = b.bool("notify_joining")?.unwrap_or(false);
        s.require_e2ee = b.bool("require_e2ee")?.unwrap_or(false);
        s.permanent = b.bool("permanent")?.unwrap_or(false);
        s.lock_record = b.bool("lock_record")?.unwrap_or(false);
        s.audiolevel_ext = b.bool("audiolevel_ext")?.unwrap_or(true);
        s.audiolevel_event = b.bool("audiolevel_event")?.unwrap_or(false);
        s.audio_active_packets = b.uint("audio_active_packets")?.unwrap_or(100);
        s.audio_level_average = b.uint("audio_level_average")?.unwrap_or(25);
        s.videoorient_ext = b.bool("videoorient_ext")?.unwrap_or(true);
        s.playoutdelay_ext = b.bool("playoutdelay_ext")?.unwrap_or(true);
        s.transport_wide_cc_ext = b.bool("transport_wide_cc_ext")?.unwrap_or(true);
        Ok(s)
    }
}

/// A bitrate cap as Janus keeps it: values from 1 to 63999 become 64000.
pub fn floor_bitrate(bps: u64) -> u64 {
    if bps > 0 && bps < MIN_BITRATE {
        MIN_BITRATE
    } else {
        bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_with_janus_texts() {
        let m = json!({"room": "x", "n": -1, "s": 3, "ok": true, "list": ["a", 1]});
        let b = Body(m.as_object().expect("object"));
        assert_eq!(
            b.room().expect_err("refused").text,
            "Invalid element type (room should be a positive integer)"
        );
        assert_eq!(b.uint("n").expect_err("refused").code, 430);
        assert_eq!(
            b.str("s").expect_err("refused").text,
            "Invalid element type (s should be a string)"
        );
        assert_eq!(b.bool("ok"), Ok(Some(true)));
        assert_eq!(b.strings("list").expect_err("refused").code, 430);
        assert_eq!(
            b.req_str("absent").expect_err("refused"),
            VrError::missing("absent")
        );
        assert_eq!(b.credential("secret", None), Ok(()));
        assert_eq!(
            b.credential("secret", Some("x")).expect_err("refused").code,
            429
        );
        let m = json!({"secret": "y"});
        assert_eq!(
            Body(m.as_object().expect("object"))
                .credential("secret", Some("x"))
                .expect_err("refused")
                .text,
            "Unauthorized (wrong secret)"
        );
    }

    #[test]
    fn room_parameters_follow_janus_rules() {
        let m = json!({"bitrate": 1000, "videocodec": "H264,vp8,h264", "audiocodec": "pcmu"});
        let s = JanusRoom::from_create(&Body(m.as_object().expect("object"))).expect("valid");
        assert_eq!(s.bitrate, MIN_BITRATE);
        assert_eq!(s.videocodec, vec!["h264", "vp8"]);
        assert!(!s.opus_fec, "no Opus, no FEC");
        let m = json!({"videocodec": "vp8,theora"});
        assert_eq!(
            JanusRoom::from_create(&Body(m.as_object().expect("object")))
                .expect_err("refused")
                .code,
            430
        );
        assert_eq!(
            VrError::no_room(9).data(),
            json!({"videoroom": "event", "error_code": 426, "error": "No such room (9)"})
        );
    }
}
