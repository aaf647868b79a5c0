//! The OpenVidu JSON-RPC signaling that openvidu-browser speaks over a WebSocket at
//! `/openvidu`: keep-alive, join with a token, leave, signals, moderation, publishing and
//! subscribing, and resuming a participant on a new socket within a grace period.
//!
//! This door only translates: each request is read into its params struct
//! (`messages`), carried out by the call layer (`crate::calls`), and answered with its reply
//! struct or an [`RpcError`] from the one error table; room notices are rendered here into
//! OpenVidu's notifications.

mod messages;

use super::rest::RestState;
use super::wire;
use crate::calls::{Admission, Candidates, Kinds, Leg, Member};
use crate::media::Description;
use crate::room::{
    ActiveInfo, Participant, ParticipantId, RoomId, StreamId, StreamInfo, VideoSource,
};
use crate::rooms::{AdmitError, Notice, SINK_CAPACITY, SignalRequest};
use crate::spelling::WireEnum;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use messages::{RpcError, params};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// The largest frame accepted from a client (SDP offers are a few KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The read buffer each signaling socket starts with.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Requests one socket may send per second on average, and in a burst; beyond, it is closed.
pub const RATE_PER_SECOND: f64 = 50.0;
/// See [`RATE_PER_SECOND`].
pub const RATE_BURST: f64 = 200.0;

/// The version reported to browsers (they compare it with their own).
const VERSION: &str = "2.32.2";

/// `GET /openvidu`: the WebSocket upgrade.
pub async fn upgrade(
    State(state): State<RestState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    via: Option<axum::Extension<crate::calls::Via>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // tungstenite reserves 128 KiB per socket for reading by default; signaling frames are
        // small, and the buffer grows for a large one.
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            Connection {
                state,
                peer,
                via: via.map(|axum::Extension(v)| v),
                joined: None,
                notices: None,
                bucket: RATE_BURST,
                refilled: Instant::now(),
                after: Vec::new(),
            }
            .run(socket)
        })
}

/// The participant this socket speaks for: its JSON-RPC session id (the key it is resumed
/// by) and the epoch at which this socket took it over.
struct Joined {
    rpc_id: String,
    member: Member,
    epoch: u64,
}

struct Connection {
    state: RestState,
    peer: SocketAddr,
    /// The cluster node that passed this connection on, when another did.
    via: Option<crate::calls::Via>,
    joined: Option<Joined>,
    notices: Option<mpsc::Receiver<Arc<Notice>>>,
    bucket: f64,
    refilled: Instant,
    /// Frames to send right after the current reply (the server's trickled candidates).
    after: Vec<String>,
}

type Reply = Result<Map<String, Value>, RpcError>;

/// A reply struct as the result object.
fn reply<T: Serialize>(value: T) -> Reply {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Ok(Map::new()),
    }
}

/// What other browsers see as a connection's data: client data, server data, or both
/// joined with `%/%`.
fn metadata(p: &Participant) -> String {
    let client = p.active().map_or("", |a| a.client_data.as_str());
    match (client.is_empty(), p.data.is_empty()) {
        (false, false) => format!("{client}%/%{}", p.data),
        (false, true) => client.to_owned(),
        (true, _) => p.data.clone(),
    }
}

fn joined_at(p: &Participant) -> i64 {
    p.active().map_or(p.created_at, |a| a.joined_at)
}

/// A stream object as `joinRoom.value[].streams[]` and `participantPublished` show it.
fn stream_json(s: &StreamInfo) -> Value {
    let mut m = wire::media_options(s);
    m.insert("id".into(), s.id.as_str().into());
    m.insert("createdAt".into(), s.created_at.into());
    Value::Object(m)
}

/// A remote connection as `joinRoom.value[]` and `participantJoined` show it (never a role).
fn remote_json(p: &Participant) -> Value {
    let mut v = json!({ "id": p.id.as_str(), "createdAt": joined_at(p), "metadata": metadata(p) });
    if !p.streams().is_empty() {
        v["streams"] = p.streams().iter().map(stream_json).collect();
    }
    v
}

fn rpc_session_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut rng = rand::rng();
    (0..26)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn notification(method: &str, params: Value) -> String {
    json!({ "jsonrpc": "2.0", "method": method, "params": params }).to_string()
}

/// Methods that need a joined session (the others: `ping`, `joinRoom`, `connect`).
const JOINED_METHODS: &[&str] = &[
    "leaveRoom",
    "sendMessage",
    "forceDisconnect",
    "forceUnpublish",
    "publishVideo",
    "receiveVideoFrom",
    "prepareReceiveVideoFrom",
    "unpublishVideo",
    "streamPropertyChanged",
    "reconnectStream",
    "unsubscribeFromVideo",
    "onIceCandidate",
    "videoData",
    "echo",
    "applyFilter",
    "removeFilter",
    "execFilterMethod",
    "addFilterEventListener",
    "removeFilterEventListener",
    "subscribeToSpeechToText",
    "unsubscribeFromSpeechToText",
];

impl Connection {
    async fn run(mut self, mut socket: WebSocket) {
        let stop = stopped(self.state.stopping());
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1001,
                            reason: Utf8Bytes::from_static("server stopping"),
                        })))
                        .await;
                    // The participant stays stored as it was; nothing to resume in-process.
                    self.joined = None;
                    break;
                }
                frame = socket.recv() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if !self.allow() {
                            let _ = socket
                                .send(Message::Close(Some(CloseFrame {
                                    code: 1008,
                                    reason: Utf8Bytes::from_static("too many requests"),
                                })))
                                .await;
                            break;
                        }
                        if let Some(reply) = self.handle(text.as_str()).await
                            && socket.send(Message::Text(reply.into())).await.is_err()
                        {
                            break;
                        }
                        let mut failed = false;
                        for frame in std::mem::take(&mut self.after) {
                            if socket.send(Message::Text(frame.into())).await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        if failed {
                            break;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = RpcError::Parse("binary frames are not JSON-RPC".into());
                        let reply = error_frame(&Value::Null, &e);
                        if socket.send(Message::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                notice = next_notice(&mut self.notices) => match notice {
                    Some(notice) => {
                        let text = self.render(&notice);
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    // The room dropped this socket's queue (it fell behind): close, so the
                    // client reconnects and attaches a fresh one.
                    None => break,
                },
            }
        }
        self.hang_up();
    }

    /// A token bucket per socket: false when the client sends faster than allowed.
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.bucket = (self.bucket + elapsed * RATE_PER_SECOND).min(RATE_BURST);
        if self.bucket < 1.0 {
            return false;
        }
        self.bucket -= 1.0;
        true
    }

    /// The socket is gone while its participant is still in the room: the call layer keeps
    /// it for a reconnect.
    fn hang_up(&mut self) {
        if let Some(joined) = self.joined.take() {
            self.state
                .calls()
                .connection_lost(joined.rpc_id, joined.epoch);
        }
    }

    fn render(&mut self, notice: &Notice) -> String {
        match notice {
            Notice::Joined(p) => notification("participantJoined", remote_json(p)),
            Notice::Left(id, reason) => notification(
                "participantLeft",
                json!({ "connectionId": id.as_str(), "reason": wire::reason_name(*reason) }),
            ),
            Notice::Evicted(id, reason) => {
                let me = self
                    .joined
                    .as_ref()
                    .is_some_and(|j| &j.member.participant == id);
                if me {
                    // Put out: the browser closes the socket itself; nothing to resume.
                    if let Some(j) = self.joined.take() {
                        self.state.calls().forget(&j.rpc_id);
                    }
                    self.notices = None;
                }
                notification(
                    "participantEvicted",
                    json!({ "connectionId": id.as_str(), "reason": wire::reason_name(*reason) }),
                )
            }
            Notice::Published(p, s) => notification(
                "participantPublished",
                json!({ "id": p.as_str(), "streams": [stream_json(s)] }),
            ),
            Notice::Unpublished(id, _, reason) => notification(
                "participantUnpublished",
                json!({ "connectionId": id.as_str(), "reason": wire::reason_name(*reason) }),
            ),
            Notice::StreamChanged {
                participant,
                stream,
                change,
                reason,
            } => {
                let (property, new_value) = wire::stream_change_wire(change);
                notification(
                    "streamPropertyChanged",
                    json!({ "connectionId": participant.as_str(), "streamId": stream.as_str(),
                            "property": property, "newValue": new_value, "reason": reason }),
                )
            }
            Notice::RoleChanged(role) => notification(
                "connectionPropertyChanged",
                json!({ "property": "role", "newValue": role.name() }),
            ),
            Notice::RecordChanged(record) => notification(
                "connectionPropertyChanged",
                json!({ "property": "record", "newValue": record.to_string() }),
            ),
            Notice::RecordingStarted { id, name } => {
                notification("recordingStarted", json!({ "id": id, "name": name }))
            }
            Notice::RecordingStopped { id, name, reason } => notification(
                "recordingStopped",
                json!({ "id": id, "name": name,
                        "reason": reason.map(wire::stop_reason_name).unwrap_or_default() }),
            ),
            Notice::Signal { from, kind, data } => {
                let mut params = Map::new();
                if let Some(d) = data {
                    params.insert("data".into(), d.clone().into());
                }
                if let Some(k) = kind {
                    params.insert("type".into(), k.clone().into());
                }
                if let Some(f) = from {
                    params.insert("from".into(), f.as_str().into());
                }
                notification("sendMessage", Value::Object(params))
            }
        }
    }

    /// Handles one frame; the reply to send, if any (notifications get none).
    async fn handle(&mut self, text: &str) -> Option<String> {
        let request: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Some(error_frame(&Value::Null, &RpcError::Parse(e.to_string()))),
        };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = request.get("method").and_then(Value::as_str) else {
            return Some(error_frame(&id, &RpcError::InvalidRequest("no method")));
        };
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        if !params.is_null() && !params.is_object() {
            let e = RpcError::InvalidParams("params must be an object".into());
            return Some(error_frame(&id, &e));
        }
        let result = self.dispatch(method, &params).await;
        if id.is_null() {
            return None;
        }
        let frame = match result {
            Ok(mut result) => {
                if let Some(j) = &self.joined {
                    result
                        .entry("sessionId")
                        .or_insert_with(|| j.rpc_id.clone().into());
                }
                json!({ "id": id, "result": result, "jsonrpc": "2.0" })
            }
            Err(e) => return Some(error_frame(&id, &e)),
        };
        Some(frame.to_string())
    }

    async fn dispatch(&mut self, method: &str, p: &Value) -> Reply {
        match method {
            "ping" => return reply(json!({ "value": "pong" })),
            "joinRoom" => return self.join_room(params(p)?).await,
            "connect" => return self.connect(params(p)?).await,
            _ => {}
        }
        if !JOINED_METHODS.contains(&method) {
            return Err(RpcError::MethodNotFound(method.to_owned()));
        }
        let Some(joined) = &self.joined else {
            return Err(RpcError::NotJoined(method.to_owned()));
        };
        let m = joined.member.clone();
        let calls = self.state.calls().clone();
        match method {
            "leaveRoom" => self.leave_room(&m).await,
            "sendMessage" => self.send_message(&m, params(p)?).await,
            "forceDisconnect" => {
                let q: messages::ForceDisconnect = params(p)?;
                let target = ParticipantId::new(q.connection_id);
                calls.force_disconnect(&m, &target).await?;
                Ok(Map::new())
            }
            "forceUnpublish" => {
                let q: messages::ForceUnpublish = params(p)?;
                calls
                    .force_unpublish(&m, &StreamId::new(q.stream_id))
                    .await?;
                Ok(Map::new())
            }
            "publishVideo" => self.publish_video(&m, params(p)?).await,
            "receiveVideoFrom" => self.receive_video_from(&m, params(p)?).await,
            "prepareReceiveVideoFrom" => {
                let q: messages::PrepareReceiveVideoFrom = params(p)?;
                let stream = StreamId::new(q.sender);
                // The candidates ride in the offer: the browser applies them with it.
                let (_, offer) = calls
                    .offer_subscription(&m, &stream, Kinds::ALL, Candidates::InSdp)
                    .await?;
                reply(messages::Offered {
                    sdp_offer: offer.sdp,
                })
            }
            "unpublishVideo" => {
                calls.unpublish(&m, &own_stream(&calls, &m).await?).await?;
                Ok(Map::new())
            }
            "streamPropertyChanged" => {
                let q: messages::StreamPropertyChanged = params(p)?;
                let value = q.new_value.ok_or_else(|| {
                    RpcError::InvalidParams("parameter 'newValue' is missing".into())
                })?;
                let change = wire::stream_change(&q.property, &value).ok_or_else(|| {
                    RpcError::InvalidParams(format!(
                        "unknown stream property '{}' or a value it cannot take",
                        q.property
                    ))
                })?;
                let stream = own_stream(&calls, &m).await?;
                calls.change_stream(&m, &stream, change, q.reason).await?;
                Ok(Map::new())
            }
            "reconnectStream" => self.reconnect_stream(&m, params(p)?).await,
            "unsubscribeFromVideo" => {
                let q: messages::UnsubscribeFromVideo = params(p)?;
                let from = ParticipantId::new(q.sender);
                let stream = calls
                    .participant(&m)
                    .await
                    .and_then(|me| {
                        me.subscriptions()
                            .iter()
                            .find(|s| s.publisher == from)
                            .map(|s| s.stream.clone())
                    })
                    .ok_or_else(|| RpcError::UserNotFound(format!("not subscribed to '{from}'")))?;
                calls.unsubscribe(&m, &stream).await?;
                Ok(Map::new())
            }
            "onIceCandidate" => {
                let q: messages::OnIceCandidate = params(p)?;
                // The endpoint is named by its publisher's connection: the caller's own id
                // for its publisher connection.
                let publisher = ParticipantId::new(q.endpoint_name);
                let leg = if publisher == m.participant {
                    Leg::FirstPublished
                } else {
                    Leg::FirstFrom(publisher)
                };
                let index = q.sdp_m_line_index.and_then(|i| u16::try_from(i).ok());
                calls
                    .add_candidate(&m, leg, q.candidate, q.sdp_mid, index)
                    .await?;
                Ok(Map::new())
            }
            "videoData" | "echo" => Ok(Map::new()),
            "applyFilter" => Err(RpcError::FilterUnsupported),
            "removeFilter"
            | "execFilterMethod"
            | "addFilterEventListener"
            | "removeFilterEventListener" => Err(RpcError::FilterMethodUnsupported),
            "subscribeToSpeechToText" | "unsubscribeFromSpeechToText" => {
                Err(RpcError::SpeechToTextUnsupported)
            }
            other => Err(RpcError::MethodNotFound(other.to_owned())),
        }
    }

    async fn join_room(&mut self, q: messages::JoinRoom) -> Reply {
        if self.joined.is_some() {
            return Err(RpcError::AlreadyJoined);
        }
        let token = q.token.as_str();
        let session = q.session.as_str();
        let invalid = || RpcError::TokenInvalid(token.to_owned());
        // The token URL's `token`: this server's grant (`tok_` + JWT), or a credential a
        // backend SDK minted (an OpenTok token), percent-decoded only: a base64 `+` stays.
        let credential = token
            .split_once('?')
            .map(|(_, q)| q)
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
            .filter(|t| !t.is_empty())
            .ok_or_else(invalid)?;
        let credential = percent_encoding::percent_decode_str(credential).decode_utf8_lossy();
        let admission = match credential.strip_prefix("tok_") {
            Some(jwt) => Admission::Signed(jwt),
            None => Admission::Credential(&credential),
        };
        let info = ActiveInfo {
            joined_at: crate::rooms::now_ms(),
            ip: self.peer.ip().to_string(),
            platform: q.platform.clone().unwrap_or_else(|| "unknown".to_owned()),
            client_data: q.metadata.clone().unwrap_or_default(),
            door: "openvidu".to_owned(),
            streams: Vec::new(),
            subscriptions: Vec::new(),
        };
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let calls = self.state.calls().clone();
        let room = RoomId::new(session);
        let (mut member, me, others) = match calls.join(&room, admission, info, tx).await {
            Ok(admitted) => admitted,
            Err(AdmitError::RoomNotFound) => {
                return Err(RpcError::SessionNotFound(session.to_owned()));
            }
            Err(AdmitError::Join(crate::room::JoinError::RoomClosed)) => {
                return Err(RpcError::SessionClosed(session.to_owned()));
            }
            Err(AdmitError::Store(e)) => return Err(RpcError::Store(e.to_string())),
            Err(AdmitError::Grant(crate::grant::GrantError::Expired))
            | Err(AdmitError::Join(crate::room::JoinError::GrantExpired(_))) => {
                return Err(RpcError::TokenExpired(token.to_owned()));
            }
            Err(AdmitError::Draining) => return Err(RpcError::Stopping),
            Err(AdmitError::WrongRoom) => {
                return Err(RpcError::TokenForOtherSession(token.to_owned()));
            }
            Err(e) => {
                tracing::debug!(room = %session, error = %e, "join refused");
                return Err(invalid());
            }
        };
        if let Some(via) = &self.via {
            calls.serve_via(&mut member, via);
        }
        let rpc_id = rpc_session_id();
        calls.keep_resumable(&rpc_id, &member);
        self.notices = Some(rx);
        self.joined = Some(Joined {
            rpc_id: rpc_id.clone(),
            member,
            epoch: 0,
        });
        reply(messages::Joined {
            id: me.id.as_str().to_owned(),
            final_user_id: rpc_id[..16].to_uppercase(),
            created_at: joined_at(&me),
            metadata: metadata(&me),
            value: others.iter().map(remote_json).collect(),
            session: session.to_owned(),
            version: VERSION,
            media_server: if self.state.settled().config.server_offers {
                "mediasoup"
            } else {
                "kurento"
            },
            video_simulcast: false,
            record: me.record,
            role: me.role.name(),
            session_id: rpc_id,
            // Only a non-empty list: the browser takes an empty one as "none given" anyway.
            custom_ice_servers: (!me.ice_servers.is_empty()).then(|| wire::ice_servers_json(&me)),
        })
    }

    async fn connect(&mut self, q: messages::Connect) -> Reply {
        let rpc_id = q.session_id;
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let Some((member, epoch)) = self
            .state
            .calls()
            .resume(&rpc_id, tx, self.via.as_ref())
            .await
        else {
            return Err(RpcError::Reconnection);
        };
        self.notices = Some(rx);
        self.joined = Some(Joined {
            rpc_id: rpc_id.clone(),
            member,
            epoch,
        });
        reply(json!({ "value": "reconnection successful", "sessionId": rpc_id }))
    }

    async fn leave_room(&mut self, m: &Member) -> Reply {
        let result = self.state.calls().leave(m).await;
        let rpc_id = self.joined.take().map(|j| j.rpc_id);
        if let Some(id) = &rpc_id {
            self.state.calls().forget(id);
        }
        self.notices = None;
        match result {
            Ok(()) => Ok(match rpc_id {
                Some(id) => reply(json!({ "sessionId": id }))?,
                None => Map::new(),
            }),
            Err(e) => Err(RpcError::UserNotFound(format!("leave failed: {e}"))),
        }
    }

    async fn send_message(&mut self, m: &Member, q: messages::SendMessage) -> Reply {
        let message: Value =
            serde_json::from_str(&q.message).map_err(|e| RpcError::SignalNotJson(e.to_string()))?;
        let signal: messages::Signal = serde_json::from_value(message).map_err(|e| {
            RpcError::Signal(format!(
                "'to' must be an array of connection ids, 'type' and 'data' strings: {e}"
            ))
        })?;
        let kind = match signal.kind.as_deref() {
            None | Some("") => "signal:signal".to_owned(),
            Some(t) if t.starts_with("signal:") => t.to_owned(),
            Some(t) => format!("signal:{t}"),
        };
        let request = SignalRequest {
            from: Some(m.participant.clone()),
            to: signal
                .to
                .unwrap_or_default()
                .into_iter()
                .map(ParticipantId::new)
                .collect(),
            kind: Some(kind),
            data: Some(signal.data.unwrap_or_default()),
        };
        self.state.calls().signal(m, request).await?;
        Ok(Map::new())
    }

    async fn publish_video(&mut self, m: &Member, q: messages::PublishVideo) -> Reply {
        if q.do_loopback == Some(true) {
            return Err(RpcError::Media(
                "loopback publishing is not supported".into(),
            ));
        }
        let has_audio = q.has_audio.unwrap_or(true);
        let has_video = q.has_video.unwrap_or(true);
        let type_of_video = q.type_of_video.as_deref();
        let id = crate::calls::new_stream_id(
            if has_video {
                type_of_video.unwrap_or("CAMERA")
            } else {
                "MIC"
            },
            &m.participant,
        );
        let stream = StreamInfo {
            id: id.clone(),
            created_at: crate::rooms::now_ms(),
            has_audio,
            has_video,
            audio_active: q.audio_active.unwrap_or(true),
            video_active: q.video_active.unwrap_or(true),
            video_source: type_of_video.map_or(VideoSource::Camera, |t| {
                VideoSource::parse(t).unwrap_or(VideoSource::Custom)
            }),
            frame_rate: q
                .frame_rate
                .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0)
                .map(|f| f.round() as u32),
            dimensions: q
                .video_dimensions
                .as_deref()
                .and_then(wire::parse_dimensions),
        };
        let created_at = stream.created_at;
        // OpenVidu: one stream per connection (a screen share is a second connection).
        let answer = self
            .state
            .calls()
            .publish(m, stream, q.sdp_offer, true, Candidates::Trickled)
            .await?;
        self.trickle(m.participant.as_str(), id.as_str(), &answer);
        reply(messages::Published {
            sdp_answer: answer.sdp,
            id: id.as_str().to_owned(),
            created_at,
        })
    }

    /// A new peer connection for a stream whose media failed: the caller's own stream (a new
    /// publisher connection feeding the same subscribers), or one it receives.
    async fn reconnect_stream(&mut self, m: &Member, q: messages::ReconnectStream) -> Reply {
        let stream = StreamId::new(q.stream.as_str());
        let own = match &q.sdp_string {
            Some(offer) => {
                self.state
                    .calls()
                    .republish(m, &stream, offer.clone(), Candidates::Trickled)
                    .await?
            }
            None => None,
        };
        if let (None, Some(answer)) = (&own, &q.sdp_string) {
            // Not the caller's own stream: a subscriber's answer to the server's new offer.
            self.state
                .calls()
                .answer_subscription(m, std::slice::from_ref(&stream), answer.clone())
                .await?;
            return Ok(Map::new());
        }
        let Some((info, answer)) = own else {
            let offer = q.sdp_offer.ok_or_else(|| {
                RpcError::InvalidParams(
                    "parameter 'sdpOffer' must be a string (the browser offers)".into(),
                )
            })?;
            return self
                .receive_video_from(
                    m,
                    messages::ReceiveVideoFrom {
                        sender: q.stream,
                        sdp_offer: Some(offer),
                        sdp_answer: None,
                    },
                )
                .await;
        };
        self.trickle(m.participant.as_str(), info.id.as_str(), &answer);
        reply(messages::Published {
            sdp_answer: answer.sdp,
            id: info.id.as_str().to_owned(),
            created_at: info.created_at,
        })
    }

    async fn receive_video_from(&mut self, m: &Member, q: messages::ReceiveVideoFrom) -> Reply {
        let stream = StreamId::new(q.sender.as_str());
        let offer = match (q.sdp_offer, q.sdp_answer) {
            (Some(offer), _) => offer,
            (None, Some(answer)) => {
                self.state
                    .calls()
                    .answer_subscription(m, std::slice::from_ref(&stream), answer)
                    .await?;
                return Ok(Map::new());
            }
            (None, None) => {
                return Err(RpcError::InvalidParams(
                    "receiveVideoFrom needs 'sdpOffer' (the browser offers) or 'sdpAnswer'".into(),
                ));
            }
        };
        let (publisher, answer) = self
            .state
            .calls()
            .subscribe(m, &stream, offer, Candidates::Trickled)
            .await?;
        self.trickle(
            publisher.as_str(),
            &format!("{}_{}", m.participant.as_str(), q.sender),
            &answer,
        );
        reply(messages::Subscribed {
            sdp_answer: answer.sdp,
        })
    }

    /// Queues the server's candidates of a new peer connection as `iceCandidate`
    /// notifications, sent right after the reply carrying its answer. The browser routes them
    /// by `senderConnectionId`: the publisher whose stream the peer connection carries.
    fn trickle(&mut self, sender_connection: &str, endpoint: &str, answer: &Description) {
        for c in &answer.candidates {
            self.after.push(notification(
                "iceCandidate",
                json!({
                    "senderConnectionId": sender_connection,
                    "endpointName": endpoint,
                    "sdpMLineIndex": c.sdp_mline_index,
                    "sdpMid": c.sdp_mid,
                    "candidate": c.candidate,
                }),
            ));
        }
    }
}

/// The stream the caller publishes (one per connection in OpenVidu).
async fn own_stream(calls: &crate::calls::Calls, m: &Member) -> Result<StreamId, RpcError> {
    calls
        .participant(m)
        .await
        .and_then(|p| p.streams().first().map(|s| s.id.clone()))
        .ok_or_else(|| RpcError::NotPublishing(format!("{} publishes no stream", m.participant)))
}

/// An error reply to request `id`.
fn error_frame(id: &Value, e: &RpcError) -> String {
    json!({ "id": id, "error": { "code": e.code(), "message": e.to_string() }, "jsonrpc": "2.0" })
        .to_string()
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn next_notice(rx: &mut Option<mpsc::Receiver<Arc<Notice>>>) -> Option<Arc<Notice>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
