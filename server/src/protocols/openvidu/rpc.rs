//! The OpenVidu JSON-RPC signaling that openvidu-browser speaks over a WebSocket at
//! `/openvidu`: keep-alive, join with a token, leave, signals, moderation, and resuming a
//! participant on a new socket within a grace period. Room notices are rendered here into
//! OpenVidu's notifications. Media methods answer with an error naming what is missing until
//! the SFU layer serves them.

use super::rest::RestState;
use crate::calls::{Admission, CallError, Member};
use crate::media::Answer;
use crate::room::{
    ActiveInfo, MediaError as RoomMediaError, Participant, RoomId, SignalError, StreamInfo,
};
use crate::rooms::{AdmitError, Notice, SINK_CAPACITY, SignalRequest};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
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
    joined: Option<Joined>,
    notices: Option<mpsc::Receiver<Arc<Notice>>>,
    bucket: f64,
    refilled: Instant,
    /// Frames to send right after the current reply (the server's trickled candidates).
    after: Vec<String>,
}

/// A JSON-RPC error: code and message, as the browser reads them.
struct RpcError(i64, String);

type Reply = Result<Map<String, Value>, RpcError>;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn str_param<'a>(params: &'a Value, key: &str) -> Result<&'a str, RpcError> {
    params
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError(-32602, format!("parameter '{key}' must be a string")))
}

/// What other browsers see as a connection's data: client data, server data, or both
/// joined with `%/%`.
fn metadata(p: &Participant) -> String {
    let client = match &p.state {
        crate::room::ParticipantState::Active(a) => a.client_data.as_str(),
        crate::room::ParticipantState::Pending => "",
    };
    match (client.is_empty(), p.data.is_empty()) {
        (false, false) => format!("{client}%/%{}", p.data),
        (false, true) => client.to_owned(),
        (true, _) => p.data.clone(),
    }
}

fn joined_at(p: &Participant) -> i64 {
    match &p.state {
        crate::room::ParticipantState::Active(a) => a.joined_at,
        crate::room::ParticipantState::Pending => p.created_at,
    }
}

/// A stream object as `joinRoom.value[].streams[]` and `participantPublished` show it.
fn stream_json(s: &StreamInfo) -> Value {
    let mut m = super::wire::media_options(s);
    m.insert("id".into(), s.id.clone().into());
    m.insert("createdAt".into(), s.created_at.into());
    Value::Object(m)
}

/// A remote connection as `joinRoom.value[]` and `participantJoined` show it (never a role).
fn remote_json(p: &Participant) -> Value {
    let mut v = json!({ "id": p.id.as_str(), "createdAt": joined_at(p), "metadata": metadata(p) });
    if let Some(s) = p.stream() {
        v["streams"] = json!([stream_json(s)]);
    }
    v
}

/// `str_` + the first three letters of the video type (`MIC` for audio only) + `_` + one
/// letter and three alphanumerics + `_` + the connection id.
fn stream_id(type_of_video: Option<&str>, connection: &str) -> String {
    use rand::Rng;
    use rand::distr::{Alphanumeric, SampleString};
    let kind: String = match type_of_video {
        Some(t) => t
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(3)
            .collect::<String>()
            .to_ascii_uppercase(),
        None => "MIC".to_owned(),
    };
    let mut rng = rand::rng();
    let first = char::from(b'A' + rng.random_range(0..26u8));
    format!(
        "str_{kind}_{first}{}_{connection}",
        Alphanumeric.sample_string(&mut rng, 3)
    )
}

/// The one table from call-layer failures to OpenVidu's JSON-RPC error codes.
fn call_error(e: CallError) -> RpcError {
    match e {
        CallError::RoomGone => RpcError(202, "session closed".into()),
        CallError::RoleForbids(role) => {
            RpcError(401, format!("the role {role:?} does not allow this"))
        }
        CallError::Room(e) => media_error(e),
        CallError::Negotiation(m) => RpcError(302, m),
        CallError::NoEndpoint(_) | CallError::NotInRoom(_) | CallError::Rooms(_) => {
            RpcError(102, e.to_string())
        }
        CallError::StreamNotPublished(_) => RpcError(105, e.to_string()),
        CallError::Signal(e) => signal_error(&e),
    }
}

fn signal_error(e: &SignalError) -> RpcError {
    RpcError(601, e.to_string())
}

fn media_error(e: RoomMediaError) -> RpcError {
    match e {
        RoomMediaError::RoleForbids(role) => {
            RpcError(401, format!("the role {role:?} does not allow this"))
        }
        RoomMediaError::AlreadyPublishing(_) => RpcError(106, e.to_string()),
        RoomMediaError::NotPublishing(_) | RoomMediaError::StreamNotFound(_) => {
            RpcError(105, e.to_string())
        }
        RoomMediaError::NotJoined(_) | RoomMediaError::NotSubscribed(_) => {
            RpcError(102, e.to_string())
        }
    }
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
                        let reply = json!({"id": null, "jsonrpc": "2.0",
                            "error": {"code": -32700, "message": "binary frames are not JSON-RPC"}});
                        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
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
                json!({ "connectionId": id.as_str(), "reason": super::wire::reason_name(*reason) }),
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
                    json!({ "connectionId": id.as_str(), "reason": super::wire::reason_name(*reason) }),
                )
            }
            Notice::Published(p) => notification(
                "participantPublished",
                json!({ "id": p.id.as_str(), "streams": p.stream().map(stream_json).into_iter().collect::<Vec<_>>() }),
            ),
            Notice::Unpublished(id, reason) => notification(
                "participantUnpublished",
                json!({ "connectionId": id.as_str(), "reason": super::wire::reason_name(*reason) }),
            ),
            Notice::StreamChanged {
                participant,
                stream,
                property,
                value,
                reason,
            } => {
                // The browser decodes `newValue` per property: booleans as the strings
                // "true"/"false", dimensions as JSON text inside a string.
                let new_value: Value = match property.as_str() {
                    "videoDimensions" => Value::String(Value::String(value.clone()).to_string()),
                    _ => Value::String(value.clone()),
                };
                notification(
                    "streamPropertyChanged",
                    json!({ "connectionId": participant.as_str(), "streamId": stream,
                            "property": property, "newValue": new_value, "reason": reason }),
                )
            }
            Notice::RoleChanged(role) => notification(
                "connectionPropertyChanged",
                json!({ "property": "role", "newValue": super::wire::WireEnum::name(*role) }),
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
                        "reason": reason.map(super::wire::stop_reason_name).unwrap_or_default() }),
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
            Err(e) => {
                return Some(
                    json!({"id": null, "jsonrpc": "2.0",
                        "error": {"code": -32700, "message": format!("parse error: {e}")}})
                    .to_string(),
                );
            }
        };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = request.get("method").and_then(Value::as_str) else {
            return Some(
                json!({"id": id, "jsonrpc": "2.0",
                    "error": {"code": -32600, "message": "invalid request: no method"}})
                .to_string(),
            );
        };
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        if !params.is_null() && !params.is_object() {
            return Some(
                json!({"id": id, "jsonrpc": "2.0",
                    "error": {"code": -32602, "message": "params must be an object"}})
                .to_string(),
            );
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
            Err(RpcError(code, message)) => {
                json!({ "id": id, "error": { "code": code, "message": message }, "jsonrpc": "2.0" })
            }
        };
        Some(frame.to_string())
    }

    async fn dispatch(&mut self, method: &str, params: &Value) -> Reply {
        match method {
            "ping" => return Ok(obj(json!({ "value": "pong" }))),
            "joinRoom" => return self.join_room(params).await,
            "connect" => return self.connect(params).await,
            _ => {}
        }
        const KNOWN: &[&str] = &[
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
        if !KNOWN.contains(&method) {
            return Err(RpcError(-32601, format!("method not found: {method}")));
        }
        let Some(joined) = &self.joined else {
            return Err(RpcError(
                803,
                format!("'{method}' needs a joined session: call joinRoom first"),
            ));
        };
        let m = joined.member.clone();
        let calls = self.state.calls();
        match method {
            "leaveRoom" => self.leave_room(&m).await,
            "sendMessage" => self.send_message(&m, params).await,
            "forceDisconnect" => {
                let target = str_param(params, "connectionId")?;
                calls
                    .force_disconnect(&m, target)
                    .await
                    .map_err(call_error)?;
                Ok(Map::new())
            }
            "forceUnpublish" => {
                let stream = str_param(params, "streamId")?;
                calls
                    .force_unpublish(&m, stream)
                    .await
                    .map_err(call_error)?;
                Ok(Map::new())
            }
            "publishVideo" => self.publish_video(&m, params).await,
            "receiveVideoFrom" => self.receive_video_from(&m, params).await,
            "prepareReceiveVideoFrom" => Err(RpcError(
                400,
                "this server answers subscriptions offered by the browser (mediaServer kurento)"
                    .into(),
            )),
            "unpublishVideo" => {
                calls.unpublish(&m).await.map_err(call_error)?;
                Ok(Map::new())
            }
            "streamPropertyChanged" => {
                let property = str_param(params, "property")?;
                const PROPERTIES: &[&str] = &[
                    "audioActive",
                    "videoActive",
                    "videoDimensions",
                    "videoTrack",
                    "audioTrack",
                ];
                if !PROPERTIES.contains(&property) {
                    return Err(RpcError(
                        -32602,
                        format!("unknown stream property '{property}'"),
                    ));
                }
                let reason = params
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let value = match params.get("newValue") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => return Err(RpcError(-32602, "parameter 'newValue' is missing".into())),
                };
                calls
                    .change_stream(&m, property, value, reason.to_owned())
                    .await
                    .map_err(call_error)?;
                Ok(Map::new())
            }
            "reconnectStream" => self.reconnect_stream(&m, params).await,
            "unsubscribeFromVideo" => {
                let sender = str_param(params, "sender")?;
                calls.unsubscribe(&m, sender).await.map_err(call_error)?;
                Ok(Map::new())
            }
            "onIceCandidate" => {
                let name = str_param(params, "endpointName")?;
                let candidate = params
                    .get("candidate")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mid = params
                    .get("sdpMid")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let index = params
                    .get("sdpMLineIndex")
                    .and_then(Value::as_u64)
                    .and_then(|i| u16::try_from(i).ok());
                calls
                    .add_candidate(&m, name, candidate.to_owned(), mid, index)
                    .await
                    .map_err(call_error)?;
                Ok(Map::new())
            }
            "videoData" | "echo" => Ok(Map::new()),
            "applyFilter" => Err(RpcError(
                406,
                "filters are not supported by Camerata".into(),
            )),
            "removeFilter"
            | "execFilterMethod"
            | "addFilterEventListener"
            | "removeFilterEventListener" => Err(RpcError(
                400,
                "filters are not supported by Camerata".into(),
            )),
            "subscribeToSpeechToText" | "unsubscribeFromSpeechToText" => Err(RpcError(
                997,
                "speech to text is not supported by Camerata".into(),
            )),
            other => Err(RpcError(-32601, format!("method not found: {other}"))),
        }
    }

    async fn join_room(&mut self, params: &Value) -> Reply {
        if self.joined.is_some() {
            return Err(RpcError(
                400,
                "this socket has already joined a session".into(),
            ));
        }
        let token = str_param(params, "token")?;
        let session = params
            .get("session")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let invalid = || RpcError(401, format!("Token {token} is not valid"));
        let jwt = token
            .split_once('?')
            .map(|(_, q)| q)
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=tok_")))
            .ok_or_else(invalid)?;
        let platform = params
            .get("platform")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let client_data = params
            .get("metadata")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let info = ActiveInfo {
            joined_at: crate::rooms::now_ms(),
            ip: self.peer.ip().to_string(),
            platform: platform.to_owned(),
            client_data: client_data.to_owned(),
            stream: None,
            subscriptions: Vec::new(),
        };
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let calls = self.state.calls();
        let room = RoomId::new(session);
        let (member, me, others) = match calls.join(&room, Admission::Signed(jwt), info, tx).await {
            Ok(admitted) => admitted,
            Err(AdmitError::RoomNotFound) => {
                return Err(RpcError(202, format!("Session {session} not found")));
            }
            Err(AdmitError::Join(crate::room::JoinError::RoomClosed)) => {
                return Err(RpcError(203, format!("Session {session} is closed")));
            }
            Err(AdmitError::Store(e)) => return Err(RpcError(500, format!("store failure: {e}"))),
            Err(AdmitError::Grant(crate::grant::GrantError::Expired))
            | Err(AdmitError::Join(crate::room::JoinError::GrantExpired(_))) => {
                return Err(RpcError(401, format!("Token {token} has expired")));
            }
            Err(_) => return Err(invalid()),
        };
        let rpc_id = rpc_session_id();
        calls.keep_resumable(&rpc_id, &member);
        self.notices = Some(rx);
        self.joined = Some(Joined {
            rpc_id: rpc_id.clone(),
            member,
            epoch: 0,
        });
        let mut result = obj(json!({
            "id": me.id.as_str(),
            "finalUserId": rpc_id[..16].to_uppercase(),
            "createdAt": joined_at(&me),
            "metadata": metadata(&me),
            "value": others.iter().map(remote_json).collect::<Vec<_>>(),
            "session": session,
            "version": VERSION,
            "mediaServer": "kurento",
            "videoSimulcast": false,
            "record": me.record,
            "role": super::wire::WireEnum::name(me.role),
            "sessionId": rpc_id,
        }));
        // Only a non-empty list: the browser takes an empty one as "none given" anyway.
        if !me.ice_servers.is_empty() {
            result.insert(
                "customIceServers".into(),
                super::wire::ice_servers_json(&me),
            );
        }
        Ok(result)
    }

    async fn connect(&mut self, params: &Value) -> Reply {
        let rpc_id = str_param(params, "sessionId")?.to_owned();
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let Some((member, epoch)) = self.state.calls().resume(&rpc_id, tx).await else {
            return Err(RpcError(40007, "reconnection error".into()));
        };
        self.notices = Some(rx);
        self.joined = Some(Joined {
            rpc_id: rpc_id.clone(),
            member,
            epoch,
        });
        Ok(obj(
            json!({ "value": "reconnection successful", "sessionId": rpc_id }),
        ))
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
                Some(id) => obj(json!({ "sessionId": id })),
                None => Map::new(),
            }),
            Err(e) => Err(RpcError(102, format!("leave failed: {e}"))),
        }
    }

    async fn send_message(&mut self, m: &Member, params: &Value) -> Reply {
        let inner = str_param(params, "message")?;
        let message: Value = serde_json::from_str(inner)
            .map_err(|e| RpcError(600, format!("message is not JSON: {e}")))?;
        let mut to = Vec::new();
        match message.get("to") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(s) => to.push(s.to_owned()),
                        None => {
                            return Err(RpcError(
                                601,
                                "every 'to' entry must be a connection id".into(),
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(RpcError(
                    601,
                    "'to' must be an array of connection ids".into(),
                ));
            }
        }
        let kind = match message.get("type").and_then(Value::as_str) {
            None | Some("") => "signal:signal".to_owned(),
            Some(t) if t.starts_with("signal:") => t.to_owned(),
            Some(t) => format!("signal:{t}"),
        };
        let data = message
            .get("data")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let request = SignalRequest {
            from: Some(m.participant.clone()),
            to,
            kind: Some(kind),
            data: Some(data),
        };
        self.state
            .calls()
            .signal(m, request)
            .await
            .map_err(call_error)?;
        Ok(Map::new())
    }

    async fn publish_video(&mut self, m: &Member, params: &Value) -> Reply {
        let offer = str_param(params, "sdpOffer")?.to_owned();
        if params.get("doLoopback").and_then(Value::as_bool) == Some(true) {
            return Err(RpcError(302, "loopback publishing is not supported".into()));
        }
        let flag = |k: &str| params.get(k).and_then(Value::as_bool);
        let has_audio = flag("hasAudio").unwrap_or(true);
        let has_video = flag("hasVideo").unwrap_or(true);
        let type_of_video = params.get("typeOfVideo").and_then(Value::as_str);
        let id = stream_id(
            if has_video {
                type_of_video.or(Some("CAMERA"))
            } else {
                None
            },
            m.participant.as_str(),
        );
        let stream = StreamInfo {
            id: id.clone(),
            created_at: crate::rooms::now_ms(),
            has_audio,
            has_video,
            audio_active: flag("audioActive").unwrap_or(true),
            video_active: flag("videoActive").unwrap_or(true),
            type_of_video: type_of_video.unwrap_or("CAMERA").to_owned(),
            frame_rate: params
                .get("frameRate")
                .and_then(Value::as_i64)
                .unwrap_or(-1),
            video_dimensions: params
                .get("videoDimensions")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        let created_at = stream.created_at;
        let answer = self
            .state
            .calls()
            .publish(m, stream, offer)
            .await
            .map_err(call_error)?;
        self.trickle(m.participant.as_str(), &id, &answer);
        Ok(obj(
            json!({ "sdpAnswer": answer.sdp, "id": id, "createdAt": created_at }),
        ))
    }

    /// A new peer connection for a stream whose media failed: the caller's own stream (a new
    /// publisher connection feeding the same subscribers), or one it receives.
    async fn reconnect_stream(&mut self, m: &Member, params: &Value) -> Reply {
        let stream = str_param(params, "stream")?.to_owned();
        let own = match params.get("sdpString").and_then(Value::as_str) {
            Some(offer) => self
                .state
                .calls()
                .republish(m, &stream, offer.to_owned())
                .await
                .map_err(call_error)?,
            None => None,
        };
        let Some((info, answer)) = own else {
            let offer = params.get("sdpOffer").cloned().ok_or_else(|| {
                RpcError(
                    -32602,
                    "parameter 'sdpOffer' must be a string (the browser offers)".into(),
                )
            })?;
            return self
                .receive_video_from(m, &json!({ "sender": stream, "sdpOffer": offer }))
                .await;
        };
        self.trickle(m.participant.as_str(), &info.id, &answer);
        Ok(obj(
            json!({ "sdpAnswer": answer.sdp, "id": info.id, "createdAt": info.created_at }),
        ))
    }

    async fn receive_video_from(&mut self, m: &Member, params: &Value) -> Reply {
        let sender = str_param(params, "sender")?;
        let offer = params
            .get("sdpOffer")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                RpcError(
                    -32602,
                    "parameter 'sdpOffer' must be a string (the browser offers)".into(),
                )
            })?
            .to_owned();
        let (publisher, answer) = self
            .state
            .calls()
            .subscribe(m, sender, offer)
            .await
            .map_err(call_error)?;
        self.trickle(
            publisher.as_str(),
            &format!("{}_{sender}", m.participant.as_str()),
            &answer,
        );
        Ok(obj(json!({ "sdpAnswer": answer.sdp })))
    }

    /// Queues the server's candidates of a new peer connection as `iceCandidate`
    /// notifications, sent right after the reply carrying its answer. The browser routes them
    /// by `senderConnectionId`: the publisher whose stream the peer connection carries.
    fn trickle(&mut self, sender_connection: &str, endpoint: &str, answer: &Answer) {
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

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn next_notice(rx: &mut Option<mpsc::Receiver<Arc<Notice>>>) -> Option<Arc<Notice>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
