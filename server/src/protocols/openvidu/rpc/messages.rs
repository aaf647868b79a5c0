//! The JSON-RPC wire types of OpenVidu's signaling: one struct per request's params and per
//! reply, and the one error table ([`RpcError`]) every failure goes through.

use crate::calls::CallError;
use crate::room::{MediaError, SignalError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Params of `joinRoom`.
#[derive(Deserialize)]
pub struct JoinRoom {
    /// The whole token URL the backend handed out.
    pub token: String,
    /// The session id the client names.
    #[serde(default)]
    pub session: String,
    /// The client's description of itself.
    pub platform: Option<String>,
    /// Client data shown to the others.
    pub metadata: Option<String>,
}

/// Params of `connect` (resume on a new socket).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connect {
    /// The JSON-RPC session id `joinRoom` gave.
    pub session_id: String,
}

/// Params of `sendMessage`.
#[derive(Deserialize)]
pub struct SendMessage {
    /// The signal, as JSON text.
    pub message: String,
}

/// The signal inside `sendMessage.message`.
#[derive(Deserialize)]
pub struct Signal {
    /// Recipient connection ids; none = everybody.
    #[serde(default)]
    pub to: Option<Vec<String>>,
    /// The signal's type, with or without the `signal:` prefix.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The payload.
    pub data: Option<String>,
}

/// Params of `forceDisconnect`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForceDisconnect {
    /// The connection to put out.
    pub connection_id: String,
}

/// Params of `forceUnpublish`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForceUnpublish {
    /// The stream to stop.
    pub stream_id: String,
}

/// Params of `publishVideo`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishVideo {
    /// The browser's offer.
    pub sdp_offer: String,
    /// Loopback publishing (not served).
    pub do_loopback: Option<bool>,
    /// The stream carries audio (default true).
    pub has_audio: Option<bool>,
    /// The stream carries video (default true).
    pub has_video: Option<bool>,
    /// Audio starts unmuted (default true).
    pub audio_active: Option<bool>,
    /// Video starts unmuted (default true).
    pub video_active: Option<bool>,
    /// `CAMERA`, `SCREEN`, `CUSTOM` or `IPCAM`.
    pub type_of_video: Option<String>,
    /// Frames per second asked for.
    pub frame_rate: Option<f64>,
    /// `{"width":W,"height":H}` as JSON text.
    pub video_dimensions: Option<String>,
}

/// Params of `receiveVideoFrom`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveVideoFrom {
    /// The stream id.
    pub sender: String,
    /// The browser's offer (the browser offers: `mediaServer` "kurento").
    pub sdp_offer: Option<String>,
    /// The browser's answer to the server's offer (`mediaServer` "mediasoup").
    pub sdp_answer: Option<String>,
}

/// Params of `prepareReceiveVideoFrom` (the server offers).
#[derive(Deserialize)]
pub struct PrepareReceiveVideoFrom {
    /// The stream id.
    pub sender: String,
}

/// The reply to `prepareReceiveVideoFrom`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Offered {
    /// The server's offer, its candidates included.
    pub sdp_offer: String,
}

/// Params of `unsubscribeFromVideo`.
#[derive(Deserialize)]
pub struct UnsubscribeFromVideo {
    /// The publisher's connection id.
    pub sender: String,
}

/// Params of `streamPropertyChanged`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamPropertyChanged {
    /// The property.
    pub property: String,
    /// Its new value (a string, a boolean, or JSON text).
    pub new_value: Option<Value>,
    /// Why, as the browser says.
    #[serde(default)]
    pub reason: String,
}

/// Params of `reconnectStream`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconnectStream {
    /// The stream to reconnect.
    pub stream: String,
    /// The publisher's new offer.
    pub sdp_string: Option<String>,
    /// A subscriber's new offer.
    pub sdp_offer: Option<String>,
}

/// Params of `onIceCandidate`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnIceCandidate {
    /// The publisher connection of the peer connection (the caller's own for its publisher).
    pub endpoint_name: String,
    /// The candidate line; empty at the end of candidates.
    #[serde(default)]
    pub candidate: String,
    /// Its media id.
    pub sdp_mid: Option<String>,
    /// Its m-line.
    #[serde(rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u64>,
}

/// The reply to `joinRoom`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The connection id.
    pub id: String,
    /// A user id shown by OpenVidu's tools.
    pub final_user_id: String,
    /// When it joined, ms.
    pub created_at: i64,
    /// Its metadata as the others see it.
    pub metadata: String,
    /// The others in the room.
    pub value: Vec<Value>,
    /// The session id.
    pub session: String,
    /// The server's version.
    pub version: &'static str,
    /// Who makes the subscriber offers: "kurento" = the browser.
    pub media_server: &'static str,
    /// Simulcast is off.
    pub video_simulcast: bool,
    /// Whether its streams are recorded.
    pub record: bool,
    /// Its role.
    pub role: &'static str,
    /// The JSON-RPC session id to resume with.
    pub session_id: String,
    /// TURN/STUN servers given by its backend (only when there are some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_ice_servers: Option<Value>,
}

/// The reply to `publishVideo` and a publisher's `reconnectStream`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The server's answer.
    pub sdp_answer: String,
    /// The stream id.
    pub id: String,
    /// When the stream was published, ms.
    pub created_at: i64,
}

/// The reply to `receiveVideoFrom`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscribed {
    /// The server's answer.
    pub sdp_answer: String,
}

/// A failed request, as the browser reads it: every failure of the signaling is one of
/// these, and [`RpcError::code`] is OpenVidu's code for it.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The frame is not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// The frame is JSON but no request.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// No such method.
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// The params do not fit the method.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The method needs a joined session.
    #[error("'{0}' needs a joined session: call joinRoom first")]
    NotJoined(String),
    /// This socket already joined.
    #[error("this socket has already joined a session")]
    AlreadyJoined,
    /// The token is malformed, forged, foreign or used.
    #[error("Token {0} is not valid")]
    TokenInvalid(String),
    /// The token expired.
    #[error("Token {0} has expired")]
    TokenExpired(String),
    /// The token is valid but for another session.
    #[error("Token {0} is for another session")]
    TokenForOtherSession(String),
    /// The session does not exist.
    #[error("Session {0} not found")]
    SessionNotFound(String),
    /// The session closed while joining.
    #[error("Session {0} is closed")]
    SessionClosed(String),
    /// The session closed under a joined participant.
    #[error("session closed")]
    RoomGone,
    /// Nothing to resume under that JSON-RPC session id.
    #[error("reconnection error")]
    Reconnection,
    /// The role forbids the call.
    #[error("{0}")]
    Forbidden(String),
    /// The participant, connection or peer connection named is unknown.
    #[error("{0}")]
    UserNotFound(String),
    /// The stream named is not published.
    #[error("{0}")]
    NotPublishing(String),
    /// The participant already publishes (one stream per connection in OpenVidu).
    #[error("{0}")]
    AlreadyPublishing(String),
    /// The SDP could not be negotiated.
    #[error("{0}")]
    Media(String),
    /// The signal's JSON is malformed.
    #[error("message is not JSON: {0}")]
    SignalNotJson(String),
    /// The signal cannot be sent.
    #[error("{0}")]
    Signal(String),
    /// Filters are not served.
    #[error("filters are not supported by Camerata")]
    FilterUnsupported,
    /// Filter methods are not served.
    #[error("filters are not supported by Camerata")]
    FilterMethodUnsupported,
    /// Speech to text is not served.
    #[error("speech to text is not supported by Camerata")]
    SpeechToTextUnsupported,
    /// The store failed.
    #[error("store failure: {0}")]
    Store(String),
    /// The server is stopping and admits nobody.
    #[error("the server is stopping: join again on another server or after its restart")]
    Stopping,
}

impl RpcError {
    /// OpenVidu's code for the failure.
    pub fn code(&self) -> i64 {
        match self {
            RpcError::Parse(_) => -32700,
            RpcError::InvalidRequest(_) => -32600,
            RpcError::MethodNotFound(_) => -32601,
            RpcError::InvalidParams(_) => -32602,
            RpcError::NotJoined(_) => 803,
            RpcError::AlreadyJoined | RpcError::FilterMethodUnsupported => 400,
            RpcError::TokenInvalid(_)
            | RpcError::TokenExpired(_)
            | RpcError::TokenForOtherSession(_)
            | RpcError::Forbidden(_) => 401,
            RpcError::SessionNotFound(_) | RpcError::RoomGone => 202,
            RpcError::SessionClosed(_) => 203,
            RpcError::Reconnection => 40007,
            RpcError::UserNotFound(_) => 102,
            RpcError::NotPublishing(_) => 105,
            RpcError::AlreadyPublishing(_) => 106,
            RpcError::Media(_) => 302,
            RpcError::SignalNotJson(_) => 600,
            RpcError::Signal(_) => 601,
            RpcError::FilterUnsupported => 406,
            RpcError::SpeechToTextUnsupported => 997,
            RpcError::Store(_) => 500,
            RpcError::Stopping => 503,
        }
    }
}

impl From<CallError> for RpcError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::RoomGone => RpcError::RoomGone,
            CallError::RoleForbids(role) => {
                RpcError::Forbidden(format!("the role {role:?} does not allow this"))
            }
            CallError::Room(e) => e.into(),
            CallError::Negotiation(m) => RpcError::Media(m),
            CallError::NoEndpoint(_) | CallError::NotInRoom(_) | CallError::Rooms(_) => {
                RpcError::UserNotFound(e.to_string())
            }
            CallError::StreamNotPublished(_) => RpcError::NotPublishing(e.to_string()),
            CallError::Signal(e) => e.into(),
        }
    }
}

impl From<MediaError> for RpcError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::RoleForbids(role) => {
                RpcError::Forbidden(format!("the role {role:?} does not allow this"))
            }
            MediaError::AlreadyPublishing(_) | MediaError::DuplicateStream(_) => {
                RpcError::AlreadyPublishing(e.to_string())
            }
            MediaError::NotPublishing(_) | MediaError::StreamNotFound(_) => {
                RpcError::NotPublishing(e.to_string())
            }
            MediaError::NotJoined(_) | MediaError::NotSubscribed(_) => {
                RpcError::UserNotFound(e.to_string())
            }
            MediaError::PublishersFull(_) => RpcError::Media(e.to_string()),
        }
    }
}

impl From<SignalError> for RpcError {
    fn from(e: SignalError) -> Self {
        RpcError::Signal(e.to_string())
    }
}

/// Reads a method's params into its struct; the error names what does not fit.
pub fn params<T: serde::de::DeserializeOwned>(params: &Value) -> Result<T, RpcError> {
    let params = if params.is_null() {
        &Value::Object(serde_json::Map::new())
    } else {
        params
    };
    T::deserialize(params).map_err(|e| RpcError::InvalidParams(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_name_what_does_not_fit() {
        let e = params::<PublishVideo>(&json!({"hasAudio": true})).err();
        assert!(
            matches!(&e, Some(RpcError::InvalidParams(m)) if m.contains("sdpOffer")),
            "{e:?}"
        );
        let e = params::<ForceDisconnect>(&json!({"connectionId": 7})).err();
        assert_eq!(e.map(|e| e.code()), Some(-32602));
        let ok = params::<OnIceCandidate>(
            &json!({"endpointName": "con_a", "candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}),
        )
        .expect("a candidate");
        assert_eq!(ok.sdp_m_line_index, Some(0));
    }

    #[test]
    fn every_call_failure_has_openvidus_code() {
        use crate::room::{ParticipantId, Role, StreamId};
        let cases: Vec<(RpcError, i64)> = vec![
            (CallError::RoomGone.into(), 202),
            (CallError::RoleForbids(Role::Subscriber).into(), 401),
            (
                CallError::Room(MediaError::AlreadyPublishing(ParticipantId::new("a"))).into(),
                106,
            ),
            (
                CallError::StreamNotPublished(StreamId::new("s")).into(),
                105,
            ),
            (CallError::NotInRoom(ParticipantId::new("x")).into(), 102),
            (CallError::Negotiation("bad sdp".into()).into(), 302),
            (SignalError::NobodyConnected.into(), 601),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
        }
    }
}
