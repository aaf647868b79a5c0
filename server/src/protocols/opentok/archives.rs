//! OpenTok archives over Camerata's recordings: start (composed or individual, with the
//! SDKs' validation), stop, get, list (newest first, by session, paged), delete and the
//! layout of a composed archive. The archive id is the recording id; an archive belongs to
//! the project whose key its session id carries.

use super::error::ApiError;
use super::rest::{Api, Fields, RESOLUTIONS, Reply, json_body, session};
use crate::calls::recording::{self as policy, StartError};
use crate::recording::{Recorder, Recording, RecordingError, Status, StopReason};
use crate::room::{OutputMode, RecordingDefaults, RecordingLayout};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The most archives one list call returns.
const MAX_COUNT: usize = 1000;
/// The archives a listing gives when the query asks for no number.
pub const DEFAULT_COUNT: usize = 50;

fn recorder(api: &Api) -> Reply<&Recorder> {
    api.recorder.as_ref().ok_or_else(|| {
        ApiError::unsupported(
            "archiving on a server with recording off (set OPENVIDU_RECORDING=true)",
        )
    })
}

/// The project's archive `id` (404 when unknown or another project's).
fn archive(api: &Api, key: &str, id: &str) -> Reply<Recording> {
    recorder(api)?
        .get(id)
        .filter(|r| super::session_project(&r.session_id).as_deref() == Some(key))
        .ok_or_else(|| ApiError::not_found(format!("archive '{id}' not found")))
}

/// OpenTok's status words for a recording's status.
fn status(r: &Recording) -> &'static str {
    match r.status {
        Status::Starting | Status::Started => "started",
        Status::Stopped => "stopped",
        Status::Ready => "available",
        Status::Failed => "failed",
    }
}

/// OpenTok's reason words for why a recording stopped.
fn reason(r: &Recording) -> &'static str {
    if r.status == Status::Failed {
        return "system failure";
    }
    match r.stop_reason() {
        None => "",
        Some(StopReason::StoppedByServer) => "user initiated",
        Some(StopReason::AutomaticStop) => "60 seconds of inactivity",
        Some(StopReason::LastParticipantLeft | StopReason::SessionClosedByServer) => {
            "session ended"
        }
        Some(StopReason::ServerStopped | StopReason::NodeCrashed) => "system failure",
    }
}

/// A project id as the SDKs read it: a number when the key is one.
fn project_value(key: &str) -> Value {
    key.parse::<u64>().map_or_else(|_| key.into(), Value::from)
}

/// The Archive JSON of `r`.
pub fn archive_json(r: &Recording) -> Value {
    let key = super::session_project(&r.session_id).unwrap_or_default();
    let individual = r.mode() == OutputMode::Individual;
    let mut v = json!({
        "id": r.id,
        "sessionId": r.session_id,
        "projectId": project_value(&key),
        "partnerId": project_value(&key),
        "name": r.name,
        "createdAt": r.created_at,
        "duration": r.duration.round() as i64,
        "size": r.size,
        "status": status(r),
        "reason": reason(r),
        "url": if r.status == Status::Ready { r.url.clone().map(Value::from).unwrap_or(Value::Null) } else { Value::Null },
        "hasAudio": r.has_audio,
        "hasVideo": r.has_video,
        "outputMode": if individual { "individual" } else { "composed" },
        "streamMode": "auto",
        "streams": [],
        "event": "archive",
    });
    if let (false, Some(res)) = (individual, &r.resolution) {
        v["resolution"] = res.clone().into();
    }
    v
}

/// Sets in `d` the layout `{type, stylesheet?, screenshareType?}` of `layout`, with the
/// SDKs' rules.
fn apply_layout(layout: &Fields, d: &mut RecordingDefaults) -> Reply<()> {
    let kind = layout
        .str("type")?
        .ok_or_else(|| ApiError::invalid("the layout needs a 'type'"))?;
    let stylesheet = layout.str("stylesheet")?;
    d.layout = match kind {
        "bestFit" => RecordingLayout::BestFit,
        "pip" => RecordingLayout::PictureInPicture,
        "verticalPresentation" => RecordingLayout::VerticalPresentation,
        "horizontalPresentation" => RecordingLayout::HorizontalPresentation,
        "custom" => RecordingLayout::Custom,
        other => {
            return Err(ApiError::invalid(format!(
                "layout type must be bestFit, custom, horizontalPresentation, pip or verticalPresentation, not '{other}'"
            )));
        }
    };
    match (kind, stylesheet) {
        ("custom", None) => {
            return Err(ApiError::invalid("a custom layout needs a 'stylesheet'"));
        }
        ("custom", Some(css)) => d.custom_layout = css.to_owned(),
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "'stylesheet' is only allowed with the layout type 'custom'",
            ));
        }
        _ => {}
    }
    if layout.has("screenshareType") && kind != "bestFit" {
        return Err(ApiError::invalid(
            "'screenshareType' is only allowed with the layout type 'bestFit'",
        ));
    }
    Ok(())
}

/// The properties of an archive to start, from the session's defaults and the body.
fn properties(f: &Fields, defaults: &RecordingDefaults) -> Reply<RecordingDefaults> {
    let mut d = defaults.clone();
    d.name = f.str("name")?.unwrap_or_default().to_owned();
    d.has_audio = f.bool("hasAudio")?.unwrap_or(true);
    d.has_video = f.bool("hasVideo")?.unwrap_or(true);
    if !d.has_audio && !d.has_video {
        return Err(ApiError::invalid(
            "an archive needs audio or video: hasAudio and hasVideo are both false",
        ));
    }
    d.output_mode = match f.str("outputMode")? {
        None | Some("composed") => OutputMode::Composed,
        Some("individual") => OutputMode::Individual,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "outputMode must be 'composed' or 'individual', not '{other}'"
            )));
        }
    };
    let individual = d.output_mode == OutputMode::Individual;
    if let Some(res) = f.str("resolution")? {
        if individual {
            return Err(ApiError::invalid(
                "resolution is not allowed with outputMode 'individual'",
            ));
        }
        if !RESOLUTIONS.contains(&res) {
            return Err(ApiError::invalid(format!(
                "resolution must be one of {}, not '{res}'",
                RESOLUTIONS.join(", ")
            )));
        }
        d.resolution = res.to_owned();
    }
    if let Some(layout) = f.object("layout")? {
        apply_layout(&layout, &mut d)?;
    }
    match f.str("streamMode")? {
        None | Some("auto") => {}
        Some("manual") => {
            return Err(ApiError::unsupported(
                "streamMode 'manual' (archives include every stream)",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "streamMode must be 'auto' or 'manual', not '{other}'"
            )));
        }
    }
    match (f.has("maxBitrate"), f.has("quantizationParameter")) {
        (true, true) => {
            return Err(ApiError::invalid(
                "maxBitrate and quantizationParameter cannot be given together",
            ));
        }
        (false, false) => {}
        _ if individual => {
            return Err(ApiError::invalid(
                "maxBitrate and quantizationParameter are for composed archives only",
            ));
        }
        _ => {
            return Err(ApiError::unsupported(
                "maxBitrate and quantizationParameter (composed archives use one encoder setting)",
            ));
        }
    }
    if f.bool("hasTranscription")?.unwrap_or(false) {
        return Err(ApiError::unsupported("archive transcription"));
    }
    d.check_values()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(d)
}

/// `POST /v2/project/{key}/archive`.
pub(super) async fn start(
    State(api): State<Api>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<Json<Value>> {
    let f = json_body(&headers, body).await?;
    let sid = f
        .str("sessionId")?
        .ok_or_else(|| ApiError::invalid("'sessionId' is required"))?
        .to_owned();
    let recorder = recorder(&api)?.clone();
    let (handle, room) = session(&api, &key, &sid).await?;
    // The body is checked before the session's state is.
    let chosen = properties(&f, &room.options().recording_defaults)?;
    let started = policy::start(&recorder, &handle, |_| Ok::<_, ApiError>(chosen))
        .await?
        .map_err(|e| match e {
            StartError::RoomGone => ApiError::not_found(format!("session '{sid}' not found")),
            StartError::NotRecordable => ApiError::conflict(format!(
                "session '{sid}' uses relayed media or is already being archived"
            )),
            StartError::Empty => {
                ApiError::invalid(format!("no client is connected to session '{sid}'"))
            }
            StartError::Recorder(e) => recording_error(e),
        })?;
    Ok(Json(archive_json(&started)))
}

fn recording_error(e: RecordingError) -> ApiError {
    match e {
        RecordingError::NotFound(id) => ApiError::not_found(format!("archive '{id}' not found")),
        RecordingError::NotStarted(id) => {
            ApiError::conflict(format!("archive '{id}' is not being recorded"))
        }
        RecordingError::AlreadyRecording(s) => {
            ApiError::conflict(format!("session '{s}' is already being archived"))
        }
        RecordingError::InProgress(id) => ApiError::conflict(format!(
            "archive '{id}' is not available yet: stop it and wait for its file"
        )),
        RecordingError::Starting(id) => {
            ApiError::conflict(format!("archive '{id}' is still starting"))
        }
        RecordingError::Io(e) => ApiError::internal(format!("archive storage failed: {e}")),
    }
}

/// `POST /v2/project/{key}/archive/{id}/stop`.
pub(super) async fn stop(
    State(api): State<Api>,
    Path((key, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<Json<Value>> {
    json_body(&headers, body).await?;
    archive(&api, &key, &id)?;
    let stopped = recorder(&api)?
        .stop(&id, StopReason::StoppedByServer)
        .await
        .map_err(recording_error)?;
    Ok(Json(archive_json(&stopped)))
}

/// `GET /v2/project/{key}/archive/{id}`.
pub(super) async fn get(
    State(api): State<Api>,
    Path((key, id)): Path<(String, String)>,
) -> Reply<Json<Value>> {
    Ok(Json(archive_json(&archive(&api, &key, &id)?)))
}

fn query_number(q: &HashMap<String, String>, name: &str, default: usize) -> Reply<usize> {
    match q.get(name) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            ApiError::invalid(format!("'{name}' must be a whole number, not '{text}'"))
        }),
    }
}

/// `GET /v2/project/{key}/archive?offset&count&sessionId`.
pub(super) async fn list(
    State(api): State<Api>,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    signed: Option<axum::Extension<crate::cluster::Signed>>,
) -> Reply<Json<Value>> {
    let offset = query_number(&q, "offset", 0)?;
    let count = query_number(&q, "count", DEFAULT_COUNT)?;
    // A cluster node gathering a page asks for every item before the page's end.
    if count > MAX_COUNT && signed.is_none() {
        return Err(ApiError::invalid(format!(
            "'count' must be at most {MAX_COUNT}"
        )));
    }
    let recorder = recorder(&api)?.clone();
    let all = tokio::task::spawn_blocking(move || recorder.list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let session = q.get("sessionId").filter(|s| !s.is_empty());
    let mut mine: Vec<Recording> = all
        .into_iter()
        .filter(|r| super::session_project(&r.session_id).as_deref() == Some(key.as_str()))
        .filter(|r| session.is_none_or(|s| &r.session_id == s))
        .collect();
    mine.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let total = mine.len();
    let items: Vec<Value> = mine
        .iter()
        .skip(offset)
        .take(count)
        .map(archive_json)
        .collect();
    Ok(Json(json!({ "count": total, "items": items })))
}

/// `DELETE /v2/project/{key}/archive/{id}`.
pub(super) async fn delete(
    State(api): State<Api>,
    Path((key, id)): Path<(String, String)>,
) -> Reply<StatusCode> {
    archive(&api, &key, &id)?;
    recorder(&api)?.delete(&id).map_err(recording_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v2/project/{key}/archive/{id}/layout`: the layout a composed archive is composed
/// with (its file is composed when it stops).
pub(super) async fn layout(
    State(api): State<Api>,
    Path((key, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Reply<Json<Value>> {
    let f = json_body(&headers, body).await?;
    let r = archive(&api, &key, &id)?;
    if r.mode() == OutputMode::Individual {
        return Err(ApiError::invalid(format!(
            "archive '{id}' is individual: only composed archives have a layout"
        )));
    }
    let mut d = RecordingDefaults::default();
    apply_layout(&f, &mut d)?;
    recorder(&api)?
        .set_layout(&id, d.layout, &d.custom_layout)
        .map_err(recording_error)?;
    Ok(Json(json!({})))
}

/// `PATCH /v2/project/{key}/archive/{id}/streams`: archives include every stream (stream
/// mode `auto`), so streams cannot be chosen (405, as the service answers for `auto`).
pub(super) async fn streams(
    State(api): State<Api>,
    Path((key, id)): Path<(String, String)>,
) -> Reply<StatusCode> {
    archive(&api, &key, &id)?;
    Err(ApiError::not_allowed(format!(
        "archive '{id}' has streamMode 'auto': its streams cannot be chosen"
    )))
}
