//! The OpenVidu REST routes: `/openvidu/api/...`, and the pre-2.16 paths (`/api/...`,
//! `/config`) when deprecated support is on. Handlers validate in OpenVidu's order, call
//! `rooms`, and render with `wire`.

use super::body::{Body, Fields, query_bool};
use super::error::{RestError, render_errors};
use super::recordings;
use super::wire::{ConnectionType, WireEnum, connection_json, session_json, token_json};
use crate::calls::{CallError, Calls, GrantRequest};
use crate::config::{OPENVIDU_VERSION, Settled};
use crate::ice::{IceServerRequest, check_ice_server};
use crate::room::{
    MAX_DATA_CHARS, MediaLimits, MediaMode, OutputMode, Participant, ParticipantId,
    RecordingDefaults, RecordingLayout, RecordingMode, Role, RoomError, RoomId, RoomOptions,
    SignalError, StreamId, VideoCodec,
};
use crate::rooms::{RoomHandle, Rooms, RoomsError, SignalRequest, now_ms};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// What the REST handlers share (cheap to clone).
#[derive(Clone)]
pub struct RestState {
    inner: Arc<StateInner>,
}

struct StateInner {
    calls: Calls,
    settled: Settled,
    credentials: Vec<u8>,
    stopping: tokio::sync::watch::Receiver<bool>,
    recorder: Option<crate::recording::Recorder>,
    guard: crate::guard::AuthGuard,
}

impl RestState {
    /// State over the call layer and the settled configuration; `stopping` turns true when
    /// the server shuts down (long-lived connections then close).
    pub fn new(
        calls: Calls,
        settled: Settled,
        recorder: Option<crate::recording::Recorder>,
        stopping: tokio::sync::watch::Receiver<bool>,
        guard: crate::guard::AuthGuard,
    ) -> Self {
        let credentials = format!("OPENVIDUAPP:{}", settled.secret).into_bytes();
        Self {
            inner: Arc::new(StateInner {
                calls,
                settled,
                credentials,
                stopping,
                recorder,
                guard,
            }),
        }
    }

    pub(super) fn rooms(&self) -> &Rooms {
        self.inner.calls.rooms()
    }

    /// The call layer every flow goes through.
    pub(super) fn calls(&self) -> &Calls {
        &self.inner.calls
    }

    /// The recordings, when the recording module is on.
    pub(super) fn recorder(&self) -> Option<&crate::recording::Recorder> {
        self.inner.recorder.as_ref()
    }

    /// Turns true when the server shuts down.
    pub(super) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stopping.clone()
    }

    pub(super) fn settled(&self) -> &Settled {
        &self.inner.settled
    }
}

type Query_ = Query<HashMap<String, String>>;
type Rest<T> = Result<T, RestError>;

/// Every OpenVidu route, with auth, CORS and the error document.
pub fn router(state: RestState) -> Router {
    let mut prefixes = vec!["/openvidu/api"];
    if state.settled().config.support_deprecated_api {
        prefixes.push("/api");
    }
    let mut protected = Router::new();
    let mut public = Router::new()
        .route("/openvidu/accept-certificate", get(accept_certificate))
        .route("/openvidu", get(super::rpc::upgrade))
        .route("/", get(super::demo::page))
        .route("/openvidu-browser.js", get(super::demo::bundle));
    if state.settled().dev_tokens {
        public = public.route("/camerata/dev/token", post(super::demo::dev_token));
    }
    for p in &prefixes {
        protected = protected
            .route(
                &format!("{p}/sessions"),
                post(create_session).get(list_sessions),
            )
            .route(
                &format!("{p}/sessions/{{session}}"),
                get(get_session).delete(close_session),
            )
            .route(
                &format!("{p}/sessions/{{session}}/connection"),
                post(create_connection).get(list_connections),
            )
            .route(
                &format!("{p}/sessions/{{session}}/connection/{{connection}}"),
                get(get_connection)
                    .patch(update_connection)
                    .delete(delete_connection),
            )
            .route(
                &format!("{p}/sessions/{{session}}/stream/{{stream}}"),
                axum::routing::delete(delete_stream),
            )
            .route(&format!("{p}/tokens"), post(create_token))
            .route(&format!("{p}/signal"), post(signal))
            .route(&format!("{p}/recordings/start"), post(recordings::start))
            .route(
                &format!("{p}/recordings/stop/{{recording}}"),
                post(recordings::stop),
            )
            .route(&format!("{p}/recordings"), get(recordings::list))
            .route(
                &format!("{p}/recordings/{{recording}}"),
                get(recordings::get).delete(recordings::delete),
            )
            .route(&format!("{p}/health"), get(health));
    }
    let mut cdr_prefixes = vec!["/openvidu/cdr"];
    if prefixes.len() > 1 {
        cdr_prefixes.push("/cdr");
    }
    for c in cdr_prefixes {
        protected = protected
            .route(c, get(cdr_files))
            .route(&format!("{c}/"), get(cdr_files))
            .route(&format!("{c}/{{file}}"), get(cdr_file));
    }
    let mut config_prefixes = vec!["/openvidu/api/config"];
    if prefixes.len() > 1 {
        config_prefixes.extend(["/api/config", "/config"]);
        public = public.route("/accept-certificate", get(accept_certificate));
    }
    for c in config_prefixes {
        protected = protected
            .route(c, get(config))
            .route(&format!("{c}/openvidu-version"), get(config_version))
            .route(&format!("{c}/openvidu-recording"), get(config_recording))
            .route(
                &format!("{c}/openvidu-recording-path"),
                get(config_recording_path),
            )
            .route(&format!("{c}/openvidu-cdr"), get(config_cdr));
        public = public.route(
            &format!("{c}/openvidu-publicurl"),
            get(config_public_url).head(config_public_url),
        );
    }
    // Recorded files: public when OPENVIDU_RECORDING_PUBLIC_ACCESS says so.
    let files = "/openvidu/recordings/{recording}/{file}";
    if state.settled().config.recording_public_access {
        public = public.route(files, get(recordings::file));
    } else {
        protected = protected.route(files, get(recordings::file));
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    public
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(render_errors))
        .layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods(tower_http::cors::Any)
                .allow_headers(tower_http::cors::Any),
        )
}

async fn require_auth(State(s): State<RestState>, req: Request, next: Next) -> Response {
    // Through the brute-force guard: a blocked address gets the wrong-secret answer
    // whatever it sends.
    if s.inner.guard.check_basic(&req, &s.inner.credentials) {
        next.run(req).await
    } else {
        RestError::Unauthorized.into_response()
    }
}

async fn not_found(req: Request) -> RestError {
    RestError::RouteNotFound(req.uri().path().to_owned())
}

async fn method_not_allowed(method: Method) -> RestError {
    RestError::MethodNotAllowed(method.to_string())
}

fn internal(e: impl std::fmt::Display) -> RestError {
    RestError::Internal(e.to_string())
}

/// `prefix` + one letter A-Z + `n` characters from [0-9A-Za-z], as OpenVidu makes ids.
fn random_id(prefix: &str, n: usize) -> String {
    use rand::Rng;
    use rand::distr::{Alphanumeric, SampleString};
    let mut rng = rand::rng();
    let first = char::from(b'A' + rng.random_range(0..26u8));
    format!("{prefix}{first}{}", Alphanumeric.sample_string(&mut rng, n))
}

pub(super) fn id_chars_ok(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The Session JSON of `room`, `recording` telling whether it is being recorded now.
fn session_view(s: &RestState, room: &crate::room::Room, with_pending: bool) -> Value {
    let mut v = session_json(room, with_pending);
    if s.recorder()
        .is_some_and(|r| r.recording_of(room.id().as_str()).is_some())
    {
        v["recording"] = true.into();
    }
    v
}

pub(super) fn handle(s: &RestState, session: &str) -> Rest<RoomHandle> {
    s.rooms()
        .get(&RoomId::new(session))
        .ok_or_else(|| RestError::SessionNotFound(session.to_owned()))
}

/// The same lookup, for the routes where OpenVidu answers 400 to an unknown session.
fn handle_400(s: &RestState, session: &str) -> Rest<RoomHandle> {
    s.rooms()
        .get(&RoomId::new(session))
        .ok_or_else(|| RestError::SessionNotFoundBadRequest(session.to_owned()))
}

async fn snapshot(h: &RoomHandle, with_pending: bool) -> Rest<crate::room::Room> {
    h.snapshot(with_pending)
        .await
        .map_err(|_| RestError::SessionNotFound(h.id().to_string()))
}

pub(super) fn rooms_error(session: &str, e: RoomsError) -> RestError {
    match e {
        RoomsError::RoomExists(id) => RestError::SessionExists(id.to_string()),
        RoomsError::RoomNotFound | RoomsError::Room(RoomError::Closed) => {
            RestError::SessionNotFound(session.to_owned())
        }
        RoomsError::Room(RoomError::ParticipantNotFound(c)) => RestError::ConnectionNotFound {
            session: session.to_owned(),
            connection: c.to_string(),
        },
        RoomsError::Room(RoomError::DuplicateParticipant(c)) => {
            RestError::ConnectionExists(c.to_string())
        }
        RoomsError::Store(crate::store::StoreError::Conflict) => {
            RestError::ConnectionExists("(generated id)".into())
        }
        RoomsError::Store(e) => internal(e),
        RoomsError::Draining => RestError::Stopping,
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

fn parse_recording_defaults(f: &Fields) -> Rest<RecordingDefaults> {
    let mut d = RecordingDefaults::default();
    apply_recording_fields(f, &mut d)?;
    Ok(d)
}

/// Sets in `d` every recording property `f` gives.
pub(super) fn apply_recording_fields(f: &Fields, d: &mut RecordingDefaults) -> Rest<()> {
    if let Some(name) = f.str("name")? {
        if !name.is_empty()
            && !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-~".contains(&b))
        {
            return Err(RestError::invalid(
                "name",
                "only letters, digits, '_', '-' and '~' are allowed",
            ));
        }
        d.name = name.to_owned();
    }
    if let Some(v) = f.bool("hasAudio")? {
        d.has_audio = v;
    }
    if let Some(v) = f.bool("hasVideo")? {
        d.has_video = v;
    }
    if let Some(v) = f.enumeration::<OutputMode>("outputMode")? {
        d.output_mode = v;
    }
    if let Some(v) = f.enumeration::<RecordingLayout>("recordingLayout")? {
        d.layout = v;
    }
    if let Some(v) = f.str("resolution")? {
        d.resolution = v.to_owned();
    }
    if let Some(v) = f.int("frameRate")? {
        d.frame_rate = u32::try_from(v)
            .map_err(|_| RestError::invalid("frameRate", format!("{v} is outside 1 to 120")))?;
    }
    if let Some(v) = f.int("shmSize")? {
        d.compositor_memory = u64::try_from(v)
            .map_err(|_| RestError::invalid("shmSize", format!("{v} is below 134217728")))?;
    }
    if let Some(v) = f.str("customLayout")? {
        d.custom_layout = v.to_owned();
    }
    if let Some(v) = f.bool("ignoreFailedStreams")? {
        d.ignore_failed_streams = v;
    }
    match f.get("mediaNode") {
        None => {}
        Some(Value::String(s)) => d.node_hint = Some(s.clone()),
        Some(_) => d.node_hint = Some(media_node_id(f, "mediaNode")?),
    };
    Ok(())
}

fn media_node_id(f: &Fields, key: &str) -> Rest<String> {
    let node = f.object(key)?.ok_or(RestError::MissingField("mediaNode"))?;
    node.str("id")?
        .map(str::to_owned)
        .ok_or_else(|| RestError::wrong_type("mediaNode.id", "a string"))
}

fn parse_session_options(s: &RestState, body: Body) -> Rest<(RoomId, RoomOptions)> {
    let mut o = RoomOptions::default();
    let Some(f) = body.0 else {
        // OpenVidu applies the configured stream defaults only when a body is present.
        return Ok((RoomId::new(random_id("ses_", 9)), o));
    };
    o.forced_video_codec = s.settled().forced_video_codec;
    o.allow_transcoding = s.settled().config.allow_transcoding;
    if let Some(v) = f.enumeration::<MediaMode>("mediaMode")? {
        o.media_mode = v;
    }
    if let Some(v) = f.enumeration::<RecordingMode>("recordingMode")? {
        o.recording_mode = v;
    }
    let custom = f.str("customSessionId")?.unwrap_or("");
    if !custom.is_empty() && !id_chars_ok(custom) {
        return Err(RestError::invalid(
            "customSessionId",
            "only letters, digits, '_' and '-' are allowed",
        ));
    }
    o.custom_id = custom.to_owned();
    if let Some(d) = f.object("defaultRecordingProperties")? {
        o.recording_defaults = parse_recording_defaults(&d)?;
    }
    if f.get("mediaNode").is_some() {
        o.node_hint = Some(media_node_id(&f, "mediaNode")?);
    }
    if let Some(v) = f.enumeration::<VideoCodec>("forcedVideoCodec")? {
        o.forced_video_codec = v;
    }
    if let Some(v) = f.bool("allowTranscoding")? {
        o.allow_transcoding = v;
    }
    if let Some(v) = f.bool("e2ee")? {
        o.e2ee = v;
    }
    match f.str("location")? {
        None | Some("") | Some("null") => {}
        Some(text) => {
            o.location_hint = Some(text.parse().map_err(|_| {
                RestError::invalid("location", format!("'{text}' is not an IPv4 address"))
            })?)
        }
    }
    o.validate()
        .map_err(|e| RestError::invalid("sessionProperties", super::wire::options_message(&e)))?;
    let id = if custom.is_empty() {
        random_id("ses_", 9)
    } else {
        custom.to_owned()
    };
    Ok((RoomId::new(id), o))
}

async fn create_session(State(s): State<RestState>, body: Body) -> Rest<Json<Value>> {
    let (id, options) = parse_session_options(&s, body)?;
    let session = id.to_string();
    let room = s
        .rooms()
        .create(id, options, now_ms())
        .await
        .map_err(|e| rooms_error(&session, e))?;
    Ok(Json(session_view(&s, &room, false)))
}

async fn get_session(
    State(s): State<RestState>,
    Path(session): Path<String>,
    Query(q): Query_,
) -> Rest<Json<Value>> {
    let pending = query_bool(&q, "pendingConnections", false)?;
    query_bool(&q, "webRtcStats", false)?;
    let room = snapshot(&handle(&s, &session)?, pending).await?;
    Ok(Json(session_view(&s, &room, pending)))
}

async fn list_sessions(State(s): State<RestState>, Query(q): Query_) -> Rest<Json<Value>> {
    let pending = query_bool(&q, "pendingConnections", false)?;
    query_bool(&q, "webRtcStats", false)?;
    let mut content = Vec::new();
    for h in s.rooms().all() {
        // A room that closes while the list is made is left out, as OpenVidu does.
        if let Ok(room) = h.snapshot(pending).await {
            content.push(session_view(&s, &room, pending));
        }
    }
    Ok(Json(
        json!({ "numberOfElements": content.len(), "content": content }),
    ))
}

async fn close_session(
    State(s): State<RestState>,
    Path(session): Path<String>,
) -> Rest<StatusCode> {
    let h = handle(&s, &session)?;
    s.calls()
        .close_by_api(&h)
        .await
        .map_err(|e| rooms_error(&session, e))?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Connections and tokens

/// The WEBRTC connection properties of a request.
pub(super) struct ConnectionRequest {
    pub(super) data: String,
    pub(super) record: bool,
    pub(super) role: Role,
    pub(super) limits: Option<MediaLimits>,
    pub(super) ice_servers: Option<Vec<crate::room::IceServer>>,
}

fn limit(f: &Fields, key: &str) -> Rest<Option<i64>> {
    // Inside kurentoOptions OpenVidu also accepts numeric strings.
    match f.get(key) {
        Some(Value::String(t)) => t
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| RestError::wrong_type(&format!("kurentoOptions.{key}"), "a number")),
        _ => f
            .int(key)
            .map_err(|_| RestError::wrong_type(&format!("kurentoOptions.{key}"), "a number")),
    }
}

fn parse_limits(f: &Fields) -> Rest<MediaLimits> {
    let allowed_filters = match f.array("allowedFilters")? {
        None => Vec::new(),
        Some(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
    };
    Ok(MediaLimits {
        video_max_recv_kbps: limit(f, "videoMaxRecvBandwidth")?,
        video_min_recv_kbps: limit(f, "videoMinRecvBandwidth")?,
        video_max_send_kbps: limit(f, "videoMaxSendBandwidth")?,
        video_min_send_kbps: limit(f, "videoMinSendBandwidth")?,
        allowed_filters,
    })
}

fn parse_connection(f: &Fields) -> Rest<ConnectionRequest> {
    let data = f.str("data")?.unwrap_or("").to_owned();
    if data.chars().count() > MAX_DATA_CHARS {
        return Err(RestError::invalid(
            "data",
            format!("connection data is limited to {MAX_DATA_CHARS} characters"),
        ));
    }
    let record = f.bool("record")?.unwrap_or(true);
    let role = f.enumeration::<Role>("role")?.unwrap_or(Role::Publisher);
    let limits = f
        .object("kurentoOptions")?
        .map(|k| parse_limits(&k))
        .transpose()?;
    let ice_servers = match f.array("customIceServers")? {
        None => None,
        Some(items) => {
            let now = now_ms() / 1000;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let Value::Object(m) = item else {
                    return Err(RestError::wrong_type(
                        "customIceServers",
                        "an array of objects",
                    ));
                };
                let o = Fields(m.clone());
                let req = IceServerRequest {
                    url: o.str("url")?.map(str::to_owned),
                    username: o.str("username")?.map(str::to_owned),
                    credential: o.str("credential")?.map(str::to_owned),
                    static_auth_secret: o.str("staticAuthSecret")?.map(str::to_owned),
                };
                out.push(
                    check_ice_server(req, now)
                        .map_err(|m| RestError::invalid("customIceServers", m))?,
                );
            }
            Some(out)
        }
    };
    Ok(ConnectionRequest {
        data,
        record,
        role,
        limits,
        ice_servers,
    })
}

/// OpenVidu's development hook: data holding `{"openviduCustomConnectionId": "x"}` names
/// the connection `con_x`.
fn custom_connection_id(data: &str) -> Option<String> {
    if !data.contains("openviduCustomConnectionId") {
        return None;
    }
    let v: Value = serde_json::from_str(data).ok()?;
    let raw = match v.get("openviduCustomConnectionId")? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cleaned: String = raw
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .replace("con_", "");
    (!cleaned.is_empty()).then(|| format!("con_{cleaned}"))
}

pub(super) async fn grant_connection(
    s: &RestState,
    h: &RoomHandle,
    req: ConnectionRequest,
) -> Rest<Participant> {
    let id = custom_connection_id(&req.data).unwrap_or_else(|| random_id("con_", 9));
    // In a cluster, a large room's subscriber may be carried by another node: its token
    // names that node.
    let ws = match s.calls().signaling_node(h, req.role).await {
        Some(node) => node,
        None => s.settled().ws_url(),
    };
    let request = GrantRequest {
        id: ParticipantId::new(id),
        role: req.role,
        data: req.data,
        record: req.record,
        limits: req.limits,
        ice_servers: req.ice_servers,
    };
    s.calls()
        .grant(h, request, |signed| {
            format!("{ws}?sessionId={}&token=tok_{signed}", h.id())
        })
        .await
        .map_err(|e| rooms_error(h.id().as_str(), e))
}

async fn create_connection(
    State(s): State<RestState>,
    Path(session): Path<String>,
    body: Body,
) -> Rest<Json<Value>> {
    let h = handle(&s, &session)?;
    let f = body.or_empty();
    if f.enumeration::<ConnectionType>("type")? == Some(ConnectionType::Ipcam) {
        let uri = f
            .str("rtspUri")?
            .ok_or(RestError::MissingField("rtspUri"))?;
        let scheme_ok = uri.split_once("://").is_some_and(|(scheme, rest)| {
            ["file", "rtsp", "rtsps", "http", "https"].contains(&scheme) && !rest.is_empty()
        });
        if !scheme_ok {
            return Err(RestError::invalid(
                "rtspUri",
                "must be a file, rtsp, rtsps, http or https URI",
            ));
        }
        f.bool("adaptativeBitrate")?;
        f.bool("onlyPlayWithSubscribers")?;
        f.int("networkCache")?;
        return Err(RestError::IpcamUnsupported);
    }
    let req = parse_connection(&f)?;
    let p = grant_connection(&s, &h, req).await?;
    Ok(Json(connection_json(&session, &p)))
}

async fn create_token(State(s): State<RestState>, body: Body) -> Rest<Json<Value>> {
    let f = body.required()?;
    let session = f
        .str("session")?
        .ok_or(RestError::MissingField("session"))?
        .to_owned();
    let h = handle(&s, &session)?;
    let mut req = parse_connection(&f)?;
    // The deprecated token call always makes a recorded WEBRTC connection.
    req.record = true;
    let p = grant_connection(&s, &h, req).await?;
    Ok(Json(token_json(&session, &p)))
}

async fn list_connections(
    State(s): State<RestState>,
    Path(session): Path<String>,
    Query(q): Query_,
) -> Rest<Json<Value>> {
    let h = handle(&s, &session)?;
    let pending = query_bool(&q, "pendingConnections", true)?;
    query_bool(&q, "webRtcStats", false)?;
    let room = snapshot(&h, pending).await?;
    let json = session_view(&s, &room, pending);
    Ok(Json(json["connections"].clone()))
}

async fn get_connection(
    State(s): State<RestState>,
    Path((session, connection)): Path<(String, String)>,
) -> Rest<Json<Value>> {
    let h = handle_400(&s, &session)?;
    let room = snapshot(&h, true).await?;
    let p = room
        .participant(&ParticipantId::new(connection.as_str()))
        .ok_or_else(|| RestError::ConnectionNotFound {
            session: session.clone(),
            connection: connection.clone(),
        })?;
    Ok(Json(connection_json(&session, p)))
}

async fn update_connection(
    State(s): State<RestState>,
    Path((session, connection)): Path<(String, String)>,
    body: Body,
) -> Rest<Json<Value>> {
    let h = handle(&s, &session)?;
    let f = body.or_empty();
    let role = f.enumeration::<Role>("role")?;
    let record = f.bool("record")?;
    let p = s
        .rooms()
        .update(&h, &ParticipantId::new(connection.as_str()), role, record)
        .await
        .map_err(|e| rooms_error(&session, e))?;
    Ok(Json(connection_json(&session, &p)))
}

async fn delete_connection(
    State(s): State<RestState>,
    Path((session, connection)): Path<(String, String)>,
) -> Rest<StatusCode> {
    let h = handle_400(&s, &session)?;
    s.calls()
        .evict_by_api(&h, &ParticipantId::new(connection.as_str()))
        .await
        .map_err(|e| rooms_error(&session, e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_stream(
    State(s): State<RestState>,
    Path((session, stream)): Path<(String, String)>,
) -> Rest<StatusCode> {
    let h = handle_400(&s, &session)?;
    let room = snapshot(&h, false).await?;
    if !room.is_active() {
        return Err(RestError::SessionNotFound(session));
    }
    let not_found = || RestError::StreamNotFound {
        session: session.clone(),
        stream: stream.clone(),
    };
    match s
        .calls()
        .unpublish_by_api(&h, &StreamId::new(stream.as_str()))
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(crate::calls::CallError::RoomGone) => Err(RestError::SessionNotFound(session)),
        Err(_) => Err(not_found()),
    }
}

// ---------------------------------------------------------------------------------------
// Signals

async fn signal(State(s): State<RestState>, body: Body) -> Rest<StatusCode> {
    let f = body.required()?;
    let session = f.str("session")?;
    let kind = f.str("type")?.map(str::to_owned);
    let data = f.str("data")?.map(str::to_owned);
    let to = f.array("to")?.cloned().unwrap_or_default();
    if to.iter().any(|v| !v.is_string() && !v.is_null()) {
        return Err(RestError::wrong_type("to", "an array of connection ids"));
    }
    let session = session
        .ok_or(RestError::MissingField("session"))?
        .to_owned();
    let h = handle(&s, &session)?;
    let recipients: Vec<ParticipantId> = to
        .iter()
        .map(|v| ParticipantId::new(v.as_str().unwrap_or_default()))
        .collect();
    let request = SignalRequest {
        from: None,
        to: recipients,
        kind,
        data,
    };
    match s.calls().signal_by_api(&h, request).await {
        Err(CallError::Signal(SignalError::NobodyConnected)) => {
            Err(RestError::SessionNotActive(session))
        }
        Err(CallError::Signal(SignalError::RecipientsNotConnected(ids))) => {
            Err(RestError::SignalRecipientsNotConnected {
                session,
                recipients: ids
                    .iter()
                    .map(ParticipantId::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
        Err(_) => Err(RestError::SessionNotFound(session)),
        Ok(()) => Ok(StatusCode::OK),
    }
}

// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Configuration and health

async fn config(State(s): State<RestState>) -> Json<Value> {
    let st = s.settled();
    let c = &st.config;
    let mut doc = json!({
        "VERSION": OPENVIDU_VERSION,
        "DOMAIN_OR_PUBLIC_IP": st.public_host,
        "HTTPS_PORT": st.public_port,
        "OPENVIDU_PUBLICURL": st.public_url(),
        "OPENVIDU_CDR": c.cdr,
        "OPENVIDU_STREAMS_VIDEO_MAX_RECV_BANDWIDTH": c.video_max_recv_bandwidth,
        "OPENVIDU_STREAMS_VIDEO_MIN_RECV_BANDWIDTH": c.video_min_recv_bandwidth,
        "OPENVIDU_STREAMS_VIDEO_MAX_SEND_BANDWIDTH": c.video_max_send_bandwidth,
        "OPENVIDU_STREAMS_VIDEO_MIN_SEND_BANDWIDTH": c.video_min_send_bandwidth,
        "OPENVIDU_STREAMS_FORCED_VIDEO_CODEC": st.forced_video_codec.name(),
        "OPENVIDU_STREAMS_ALLOW_TRANSCODING": c.allow_transcoding,
        "OPENVIDU_WEBRTC_SIMULCAST": false,
        "OPENVIDU_SESSIONS_GARBAGE_INTERVAL": c.sessions_garbage_interval,
        "OPENVIDU_SESSIONS_GARBAGE_THRESHOLD": c.sessions_garbage_threshold,
        "OPENVIDU_RECORDING": c.recording,
        "OPENVIDU_WEBHOOK": c.webhook,
    });
    if c.cdr {
        doc["OPENVIDU_CDR_PATH"] = c.cdr_path.clone().into();
    }
    if let Some(hook) = &st.webhook {
        doc["OPENVIDU_WEBHOOK_ENDPOINT"] = hook.endpoint.clone().into();
        doc["OPENVIDU_WEBHOOK_HEADERS"] = hook
            .headers
            .iter()
            .map(|(n, v)| Value::from(format!("{n}: {v}")))
            .collect();
        doc["OPENVIDU_WEBHOOK_EVENTS"] = hook
            .events
            .iter()
            .map(|e| Value::from(e.as_str()))
            .collect();
    }
    Json(doc)
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn config_version() -> Response {
    text(OPENVIDU_VERSION.to_owned())
}

async fn config_public_url(State(s): State<RestState>) -> Response {
    text(s.settled().public_url())
}

async fn config_recording(State(s): State<RestState>) -> Response {
    text(s.settled().config.recording.to_string())
}

async fn config_recording_path(State(s): State<RestState>) -> Response {
    let mut path = s.settled().config.recording_path.clone();
    if !path.ends_with('/') {
        path.push('/');
    }
    text(path)
}

/// The names of the CDR files, oldest first.
async fn cdr_files(State(s): State<RestState>) -> Json<Value> {
    let dir = std::path::PathBuf::from(&s.settled().config.cdr_path);
    let mut names: Vec<String> = match tokio::fs::read_dir(&dir).await {
        Ok(mut entries) => {
            let mut names = Vec::new();
            while let Ok(Some(e)) = entries.next_entry().await {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("CDR.") && name.ends_with(".log") {
                    names.push(name);
                }
            }
            names
        }
        Err(_) => Vec::new(),
    };
    names.sort();
    Json(json!(names))
}

/// One CDR file, as text.
async fn cdr_file(
    State(s): State<RestState>,
    Path(file): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, RestError> {
    let listed = file.starts_with("CDR.")
        && file.ends_with(".log")
        && !file.contains(['/', '\\'])
        && !file.contains("..");
    let path = std::path::PathBuf::from(&s.settled().config.cdr_path).join(&file);
    match tokio::fs::read_to_string(&path).await {
        Ok(body) if listed => Ok(text(body)),
        _ => Err(RestError::RouteNotFound(uri.path().to_owned())),
    }
}

async fn config_cdr(State(s): State<RestState>) -> Response {
    text(s.settled().config.cdr.to_string())
}

/// `/openvidu/api/health`: `UP`, or `DRAINING` (503) once the server is stopping.
async fn health(State(s): State<RestState>) -> Response {
    if s.rooms().draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "DRAINING", "disconnectedMediaNodes": [] })),
        )
            .into_response();
    }
    Json(json!({ "status": "UP", "disconnectedMediaNodes": [] })).into_response()
}

async fn accept_certificate(headers: HeaderMap) -> Html<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("this server");
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(*c))
        .collect();
    Html(format!(
        "<!doctype html><html><head><title>Camerata</title></head><body>\
         <h1>Certificate accepted</h1><p>Your browser now trusts {host}. \
         You can close this tab and go back to your application.</p></body></html>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_openvidu_shape() {
        let id = random_id("ses_", 9);
        assert_eq!(id.len(), 14);
        assert!(id.as_bytes()[4].is_ascii_uppercase());
        assert!(id_chars_ok(&id));
    }

    #[test]
    fn custom_connection_id_hook() {
        assert_eq!(
            custom_connection_id(r#"{"openviduCustomConnectionId":"my-con_id 1"}"#),
            Some("con_myid1".to_owned())
        );
        assert_eq!(custom_connection_id("plain data"), None);
        assert_eq!(
            custom_connection_id("openviduCustomConnectionId but not json"),
            None
        );
    }
}
