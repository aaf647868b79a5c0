//! The OpenTok REST routes: session creation (form in, JSON or XML out), signals, force
//! disconnect, force mute, stream lists and layout classes, the archive routes
//! ([`super::archives`]), and a 501 naming each feature of the service Camerata lacks.

use super::credentials::Projects;
use super::error::ApiError;
use super::{ConnectionData, RoomSettings};
use crate::calls::{CallError, Calls};
use crate::room::{
    MediaMode, OutputMode, ParticipantId, RecordingMode, Room, RoomId, RoomOptions, SignalError,
    StreamId, VideoSource,
};
use crate::rooms::{RoomHandle, SignalRequest, now_ms};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The largest request body taken, in bytes.
const MAX_BODY: usize = 64 * 1024;
/// The largest signal `data`, in bytes (8 kB).
const MAX_SIGNAL_DATA: usize = 8192;
/// The longest signal `type`, in characters.
const MAX_SIGNAL_TYPE: usize = 128;
/// The resolutions of archives and of sessions archived always.
pub(super) const RESOLUTIONS: [&str; 6] = [
    "640x480",
    "480x640",
    "1280x720",
    "720x1280",
    "1920x1080",
    "1080x1920",
];
/// The longest archive name of a session archived always.
const MAX_ARCHIVE_NAME: usize = 80;

/// What the routes share (cheap to clone).
#[derive(Clone)]
pub struct Api {
    /// The call layer.
    pub calls: Calls,
    /// The recorder, when recording is on.
    pub recorder: Option<crate::recording::Recorder>,
    /// The projects served.
    pub projects: Arc<Projects>,
    /// The brute-force guard.
    pub guard: crate::guard::AuthGuard,
}

impl Api {
    /// Authenticates a call from `ip` through the brute-force guard (a blocked address gets
    /// 403 whatever it sends). Returns the project.
    fn authenticate(
        &self,
        ip: std::net::IpAddr,
        headers: &HeaderMap,
        path_key: Option<&str>,
    ) -> Reply<String> {
        let now = std::time::Instant::now();
        if self.guard.verdict(ip, now) == crate::guard::Verdict::Blocked {
            return Err(ApiError::auth(
                "too many failed authentications from this address; try again later",
            ));
        }
        match self
            .projects
            .authenticate(headers, path_key, now_ms() / 1000)
        {
            Ok(project) => {
                self.guard.succeeded(ip);
                Ok(project)
            }
            Err(e) => {
                self.guard.failed(ip, now);
                Err(ApiError::auth(e.0))
            }
        }
    }
}

pub(super) type Reply<T> = Result<T, ApiError>;

/// The routes of the door.
pub fn router(api: Api) -> axum::Router {
    let project = axum::Router::new()
        .route(
            "/archive",
            post(super::archives::start).get(super::archives::list),
        )
        .route(
            "/archive/{id}",
            get(super::archives::get).delete(super::archives::delete),
        )
        .route("/archive/{id}/stop", post(super::archives::stop))
        .route(
            "/archive/{id}/layout",
            axum::routing::put(super::archives::layout),
        )
        .route(
            "/archive/{id}/streams",
            axum::routing::patch(super::archives::streams),
        )
        .route("/session/{sid}/signal", post(signal_session))
        .route(
            "/session/{sid}/connection/{cid}/signal",
            post(signal_connection),
        )
        .route(
            "/session/{sid}/connection/{cid}",
            axum::routing::delete(force_disconnect),
        )
        .route("/session/{sid}/stream", get(list_streams).put(set_classes))
        .route("/session/{sid}/stream/{stream}", get(get_stream))
        .route("/session/{sid}/stream/{stream}/mute", post(mute_stream))
        .route("/session/{sid}/mute", post(mute_all))
        .route(
            "/session/{sid}/play-dtmf",
            unsupported("DTMF (SIP interconnect)"),
        )
        .route(
            "/session/{sid}/connection/{cid}/play-dtmf",
            unsupported("DTMF (SIP interconnect)"),
        )
        .route(
            "/broadcast",
            unsupported("live streaming broadcast (HLS, RTMP)"),
        )
        .route(
            "/broadcast/",
            unsupported("live streaming broadcast (HLS, RTMP)"),
        )
        .route(
            "/broadcast/{*rest}",
            unsupported("live streaming broadcast (HLS, RTMP)"),
        )
        .route("/dial", unsupported("SIP interconnect"))
        .route("/captions", unsupported("live captions"))
        .route("/captions/{*rest}", unsupported("live captions"))
        .route("/render", unsupported("Experience Composer (render)"))
        .route(
            "/render/{*rest}",
            unsupported("Experience Composer (render)"),
        )
        .route("/connect", unsupported("Audio Connector"))
        .route("/connect/{*rest}", unsupported("Audio Connector"))
        .route(
            "/callback",
            unsupported("the callbacks API (configure the webhook with OPENVIDU_WEBHOOK)"),
        )
        .route(
            "/callback/{*rest}",
            unsupported("the callbacks API (configure the webhook with OPENVIDU_WEBHOOK)"),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            require_project,
        ));
    axum::Router::new()
        .route("/session/create", post(create_session))
        .nest("/v2/project/{key}", project)
        .with_state(api)
}

/// The project key of a `/v2/project/{key}/…` path.
fn path_key(path: &str) -> Option<&str> {
    path.strip_prefix("/v2/project/")?.split('/').next()
}

/// Every `/v2/project/{key}` route: the caller authenticates for `key` (403 otherwise).
async fn require_project(State(api): State<Api>, req: Request, next: Next) -> Response {
    // Inside the nest the path is stripped of its prefix: the key is read from the whole.
    let whole = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned());
    let key = path_key(&whole).unwrap_or_default().to_owned();
    let ip = crate::guard::source(&req);
    match api.authenticate(ip, req.headers(), Some(&key)) {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Bodies

/// A JSON body's fields, read with the SDKs' leniency (booleans may be strings).
pub(super) struct Fields(Map<String, Value>);

impl Fields {
    /// A text field; 400 when it is not text.
    pub(super) fn str(&self, name: &str) -> Reply<Option<&str>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(format!("'{name}' must be a string"))),
        }
    }

    /// A boolean field: `true`/`false`, or the strings `"true"`/`"false"`.
    pub(super) fn bool(&self, name: &str) -> Reply<Option<bool>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(format!("'{name}' must be true or false"))),
        }
    }

    /// Whether the field is there (not null).
    pub(super) fn has(&self, name: &str) -> bool {
        !matches!(self.0.get(name), None | Some(Value::Null))
    }

    /// An object field.
    pub(super) fn object(&self, name: &str) -> Reply<Option<Fields>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields(m.clone()))),
            Some(_) => Err(ApiError::invalid(format!("'{name}' must be an object"))),
        }
    }

    /// A list of strings.
    pub(super) fn strings(&self, name: &str) -> Reply<Option<Vec<String>>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("'{name}' must be a list of strings"))),
            Some(_) => Err(ApiError::invalid(format!(
                "'{name}' must be a list of strings"
            ))),
        }
    }

    /// The raw value of a field.
    pub(super) fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// The body, at most [`MAX_BODY`] bytes (413 beyond).
async fn bytes(body: axum::body::Body) -> Reply<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::too_large(format!("the request body is larger than {MAX_BODY} bytes"))
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A JSON object body (an empty body is an empty object); 415 for another content type,
/// 400 for JSON that is not an object.
pub(super) async fn json_body(headers: &HeaderMap, body: axum::body::Body) -> Reply<Fields> {
    let raw = bytes(body).await?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Fields(Map::new()));
    }
    let kind = content_type(headers);
    if kind != "application/json" && !kind.ends_with("+json") {
        return Err(ApiError::media_type(format!(
            "the body must be application/json, not '{kind}'"
        )));
    }
    match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(m)) => Ok(Fields(m)),
        Ok(_) => Err(ApiError::invalid("the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

/// Whether the caller takes JSON (Node, Python, Vonage); else it gets XML (Ruby's `*/*`).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("application/json"))
}

/// The session options of a create form, with the SDKs' rules checked by the server.
fn session_options(project: &str, form: &[(String, String)]) -> Reply<(RoomOptions, String)> {
    let field = |name: &str| {
        form.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let media_mode = match field("p2p.preference") {
        None | Some("disabled") => MediaMode::Routed,
        Some("enabled") => MediaMode::Relayed,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "p2p.preference must be 'enabled' or 'disabled', not '{other}'"
            )));
        }
    };
    let recording_mode = match field("archiveMode") {
        None | Some("manual") => RecordingMode::Manual,
        Some("always") => RecordingMode::Always,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "archiveMode must be 'manual' or 'always', not '{other}'"
            )));
        }
    };
    let location = match field("location") {
        None | Some("") | Some("null") => None,
        Some(text) => Some(text.parse::<std::net::Ipv4Addr>().map_err(|_| {
            ApiError::invalid(format!("location must be an IPv4 address, not '{text}'"))
        })?),
    };
    let e2ee = match field("e2ee") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "e2ee must be 'true' or 'false', not '{other}'"
            )));
        }
    };
    let always = recording_mode == RecordingMode::Always;
    if always && media_mode == MediaMode::Relayed {
        return Err(ApiError::invalid(
            "a session with archiveMode 'always' must use routed media (p2p.preference=disabled)",
        ));
    }
    if e2ee && media_mode == MediaMode::Relayed {
        return Err(ApiError::invalid(
            "end-to-end encryption (e2ee) needs routed media (p2p.preference=disabled)",
        ));
    }
    if e2ee && always {
        return Err(ApiError::invalid(
            "end-to-end encryption (e2ee) cannot be used with archiveMode 'always'",
        ));
    }
    let mut options = RoomOptions {
        media_mode,
        recording_mode,
        e2ee,
        location_hint: location,
        persistent: true,
        ..RoomOptions::default()
    };
    options.recording_defaults.output_mode = OutputMode::Composed;
    options.recording_defaults.resolution = RESOLUTIONS[0].to_owned();
    if let Some(name) = field("archiveName") {
        if !always {
            return Err(ApiError::invalid(
                "archiveName is only allowed with archiveMode 'always'",
            ));
        }
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_ARCHIVE_NAME {
            return Err(ApiError::invalid(format!(
                "archiveName must be 1 to {MAX_ARCHIVE_NAME} characters, not {chars}"
            )));
        }
        options.recording_defaults.name = name
            .chars()
            .map(|c| if "~-_".contains(c) { ':' } else { c })
            .collect();
    }
    if let Some(resolution) = field("archiveResolution") {
        if !always {
            return Err(ApiError::invalid(
                "archiveResolution is only allowed with archiveMode 'always'",
            ));
        }
        if !RESOLUTIONS.contains(&resolution) {
            return Err(ApiError::invalid(format!(
                "archiveResolution must be one of {}, not '{resolution}'",
                RESOLUTIONS.join(", ")
            )));
        }
        options.recording_defaults.resolution = resolution.to_owned();
    }
    options.door_settings.insert(
        super::DOOR.to_owned(),
        RoomSettings {
            project: project.to_owned(),
            ..RoomSettings::default()
        }
        .to_value(),
    );
    options
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok((options, location.map(|l| l.to_string()).unwrap_or_default()))
}

/// `POST /session/create`.
async fn create_session(
    State(api): State<Api>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let json = wants_json(&headers);
    match create(&api, peer.ip(), &headers, body).await {
        Ok((id, created)) => {
            let project = super::session_project(&id).unwrap_or_default();
            let date = super::ids::date_text(created);
            if json {
                Json(json!([{
                    "session_id": id,
                    "project_id": project,
                    "partner_id": project,
                    "create_dt": date,
                    "media_server_url": "",
                }]))
                .into_response()
            } else {
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><sessions><Session><session_id>{id}</session_id><partner_id>{project}</partner_id><create_dt>{date}</create_dt></Session></sessions>"
                );
                ([(header::CONTENT_TYPE, "text/xml")], xml).into_response()
            }
        }
        Err(e) if json => e.into_response(),
        Err(e) => e.in_xml().into_response(),
    }
}

async fn create(
    api: &Api,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Reply<(String, i64)> {
    let project = api.authenticate(ip, headers, None)?;
    let raw = bytes(body).await?;
    let kind = content_type(headers);
    if !raw.is_empty() && kind != "application/x-www-form-urlencoded" {
        return Err(ApiError::media_type(format!(
            "the body must be application/x-www-form-urlencoded, not '{kind}'"
        )));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&raw).into_owned().collect();
    let (options, location) = session_options(&project, &form)?;
    let now = now_ms();
    let id = super::new_session_id(&project, &location, now);
    api.calls
        .rooms()
        .create(RoomId::new(id.clone()), options, now)
        .await
        .map_err(|e| match e {
            crate::rooms::RoomsError::Draining => ApiError::stopping(),
            e => ApiError::internal(format!("the session could not be created: {e}")),
        })?;
    Ok((id, now))
}

/// The live room of session `sid`, when project `key` created it (404 otherwise).
pub(super) async fn session(api: &Api, key: &str, sid: &str) -> Reply<(RoomHandle, Room)> {
    let missing = || ApiError::not_found(format!("session '{sid}' not found"));
    let handle = api
        .calls
        .rooms()
        .get(&RoomId::new(sid))
        .ok_or_else(missing)?;
    let room = handle.snapshot(false).await.map_err(|_| missing())?;
    match RoomSettings::of(&room) {
        Some(s) if s.project == key => Ok((handle, room)),
        _ => Err(missing()),
    }
}

// ---------------------------------------------------------------------------------------
// Signals and moderation

async fn signal(
    api: &Api,
    key: &str,
    sid: &str,
    to: Option<String>,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Reply<StatusCode> {
    let f = json_body(headers, body).await?;
    let kind = f.str("type")?.unwrap_or_default();
    let data = f.str("data")?.unwrap_or_default();
    if kind.chars().count() > MAX_SIGNAL_TYPE {
        return Err(ApiError::too_large(format!(
            "the signal type is longer than {MAX_SIGNAL_TYPE} characters"
        )));
    }
    if data.len() > MAX_SIGNAL_DATA {
        return Err(ApiError::too_large(format!(
            "the signal data is larger than {MAX_SIGNAL_DATA} bytes"
        )));
    }
    let (handle, _) = session(api, key, sid).await?;
    let request = SignalRequest {
        from: None,
        to: to.iter().map(|c| ParticipantId::new(c.as_str())).collect(),
        // OpenTok.js and openvidu-browser both raise `signal:<type>`.
        kind: Some(if kind.is_empty() {
            "signal".to_owned()
        } else {
            format!("signal:{kind}")
        }),
        data: Some(data.to_owned()),
    };
    match api.calls.signal_by_api(&handle, request).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(CallError::Signal(SignalError::NobodyConnected)) => Err(ApiError::not_found(format!(
            "no client is connected to session '{sid}'"
        ))),
        Err(CallError::Signal(SignalError::RecipientsNotConnected(_))) => {
            Err(ApiError::not_found(format!(
                "connection '{}' is not connected to session '{sid}'",
                to.unwrap_or_default()
            )))
        }
        Err(e) => Err(ApiError::not_found(format!("session '{sid}': {e}"))),
    }
}

/// `POST /v2/project/{key}/session/{sid}/signal`.
async fn signal_session(
    State(api): State<Api>,
    Path((key, sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<StatusCode> {
    signal(&api, &key, &sid, None, &headers, body).await
}

/// `POST /v2/project/{key}/session/{sid}/connection/{cid}/signal`.
async fn signal_connection(
    State(api): State<Api>,
    Path((key, sid, cid)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<StatusCode> {
    signal(&api, &key, &sid, Some(cid), &headers, body).await
}

/// `DELETE /v2/project/{key}/session/{sid}/connection/{cid}`.
async fn force_disconnect(
    State(api): State<Api>,
    Path((key, sid, cid)): Path<(String, String, String)>,
) -> Reply<StatusCode> {
    let (handle, room) = session(&api, &key, &sid).await?;
    let id = ParticipantId::new(cid.as_str());
    if !room.participant(&id).is_some_and(|p| p.is_active()) {
        return Err(ApiError::not_found(format!(
            "connection '{cid}' is not connected to session '{sid}'"
        )));
    }
    api.calls
        .evict_by_api(&handle, &id)
        .await
        .map_err(|e| ApiError::not_found(format!("connection '{cid}': {e}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The reason given to the clients of a stream muted through this API.
const FORCE_MUTE: &str = "forceMute";

/// `POST /v2/project/{key}/session/{sid}/stream/{stream}/mute`.
async fn mute_stream(
    State(api): State<Api>,
    Path((key, sid, stream)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<Json<Value>> {
    json_body(&headers, body).await?;
    let (handle, room) = session(&api, &key, &sid).await?;
    let id = StreamId::new(stream.as_str());
    if room.publisher_of(&id).is_none() {
        return Err(ApiError::not_found(format!(
            "stream '{stream}' is not published in session '{sid}'"
        )));
    }
    mute(&api, &handle, &id).await?;
    Ok(Json(json!({})))
}

/// Mutes the audio of `stream` (a stream without audio has nothing to mute).
async fn mute(api: &Api, handle: &RoomHandle, stream: &StreamId) -> Reply<()> {
    match api
        .calls
        .mute_by_api(handle, stream, false, true, FORCE_MUTE)
        .await
    {
        Ok(_) | Err(CallError::StreamNotPublished(_)) => Ok(()),
        Err(e) => Err(ApiError::internal(format!("stream '{stream}': {e}"))),
    }
}

/// `POST /v2/project/{key}/session/{sid}/mute`: mute every stream but the excluded ones,
/// and every stream published later (`active: false` stops muting newcomers).
async fn mute_all(
    State(api): State<Api>,
    Path((key, sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<Json<Value>> {
    let f = json_body(&headers, body).await?;
    let active = f.bool("active")?.unwrap_or(true);
    // Vonage and the REST reference spell it `excludedStreamIds`; Ruby `excludedStreams`;
    // Node's documentation `excudedStreamIds`.
    let mut excluded = Vec::new();
    for name in ["excludedStreamIds", "excludedStreams", "excudedStreamIds"] {
        excluded.extend(f.strings(name)?.unwrap_or_default());
    }
    let (handle, room) = session(&api, &key, &sid).await?;
    let mut options = room.options().clone();
    options.mute_new_audio = active;
    handle
        .set_options(options)
        .await
        .map_err(|_| ApiError::not_found(format!("session '{sid}' not found")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if active {
        for p in room.active_participants() {
            for s in p.streams() {
                if s.has_audio && s.audio_active && !excluded.iter().any(|e| e == s.id.as_str()) {
                    mute(&api, &handle, &s.id).await?;
                }
            }
        }
    }
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------------------
// Streams

/// The Stream JSON of `stream`, published by `p`.
fn stream_json(
    settings: &RoomSettings,
    p: &crate::room::Participant,
    s: &crate::room::StreamInfo,
) -> Value {
    let classes = settings
        .layout
        .get(s.id.as_str())
        .cloned()
        .unwrap_or_else(|| ConnectionData::of(p).layout);
    json!({
        "id": s.id.as_str(),
        "videoType": match s.video_source {
            VideoSource::Screen => "screen",
            VideoSource::Custom => "custom",
            _ => "camera",
        },
        "name": "",
        "layoutClassList": classes,
    })
}

/// `GET /v2/project/{key}/session/{sid}/stream`.
async fn list_streams(
    State(api): State<Api>,
    Path((key, sid)): Path<(String, String)>,
) -> Reply<Json<Value>> {
    let (_, room) = session(&api, &key, &sid).await?;
    let settings = RoomSettings::of(&room).unwrap_or_default();
    let items: Vec<Value> = room
        .active_participants()
        .flat_map(|p| p.streams().iter().map(move |s| (p, s)))
        .map(|(p, s)| stream_json(&settings, p, s))
        .collect();
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// `GET /v2/project/{key}/session/{sid}/stream/{stream}`.
///
/// The Node SDK (opentok 2.x) hands this body to `JSON.parse` after its HTTP layer already
/// parsed every `application/json` body, so it only works with a body left as text: its
/// callers get the same JSON as `text/plain` (by its `User-Agent`), everyone else JSON.
async fn get_stream(
    State(api): State<Api>,
    Path((key, sid, stream)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Reply<Response> {
    let (_, room) = session(&api, &key, &sid).await?;
    let settings = RoomSettings::of(&room).unwrap_or_default();
    let found = room
        .active_participants()
        .flat_map(|p| p.streams().iter().map(move |s| (p, s)))
        .find(|(_, s)| s.id.as_str() == stream)
        .map(|(p, s)| stream_json(&settings, p, s))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "stream '{stream}' is not published in session '{sid}'"
            ))
        })?;
    let node_sdk = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("OpenTok-Node-SDK/"));
    Ok(if node_sdk {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            found.to_string(),
        )
            .into_response()
    } else {
        Json(found).into_response()
    })
}

/// `PUT /v2/project/{key}/session/{sid}/stream`: layout classes of published streams.
async fn set_classes(
    State(api): State<Api>,
    Path((key, sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<Json<Value>> {
    let f = json_body(&headers, body).await?;
    let Some(Value::Array(items)) = f.value("items") else {
        return Err(ApiError::invalid(
            "'items' must be a list of {id, layoutClassList}",
        ));
    };
    let mut changes = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(ApiError::invalid("each item must be an object"));
        };
        let item = Fields(m.clone());
        let id = item
            .str("id")?
            .ok_or_else(|| ApiError::invalid("each item needs an 'id'"))?
            .to_owned();
        let classes = item
            .strings("layoutClassList")?
            .ok_or_else(|| ApiError::invalid("each item needs a 'layoutClassList'"))?;
        changes.push((id, classes));
    }
    let (handle, room) = session(&api, &key, &sid).await?;
    let published: Vec<String> = room
        .active_participants()
        .flat_map(|p| p.streams().iter().map(|s| s.id.as_str().to_owned()))
        .collect();
    if let Some((id, _)) = changes.iter().find(|(id, _)| !published.contains(id)) {
        return Err(ApiError::invalid(format!(
            "stream '{id}' is not published in session '{sid}'"
        )));
    }
    let mut settings = RoomSettings::of(&room).unwrap_or_default();
    // Classes of streams that ended are forgotten with this change.
    settings.layout.retain(|id, _| published.contains(id));
    settings.layout.extend(changes);
    let mut options = room.options().clone();
    options
        .door_settings
        .insert(super::DOOR.to_owned(), settings.to_value());
    handle
        .set_options(options)
        .await
        .map_err(|_| ApiError::not_found(format!("session '{sid}' not found")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------------------
// Features of the service Camerata does not have: 501, after authentication.

/// A route of a feature Camerata does not have: 501 naming `feature`, for any method.
fn unsupported(feature: &'static str) -> axum::routing::MethodRouter<Api> {
    any(move || async move { ApiError::unsupported(feature) })
}
