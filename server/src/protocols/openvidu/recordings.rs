//! OpenVidu's recording API over the [`Recorder`]: its routes, its Recording JSON and the
//! mapping of recorder failures to its errors. The recording policy (ALWAYS, auto-stop,
//! following rooms) is the call layer's (`calls::recording`).

use super::error::RestError;
use super::rest::RestState;
use crate::calls::recording::{self as policy, StartError};
use crate::recording::{Recorder, Recording, RecordingError, StopReason};
use crate::room::OutputMode;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

type Rest<T> = Result<T, RestError>;

/// The Recording JSON of the API: the metadata without what only the files keep.
pub fn recording_json(r: &Recording) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("uniqueSessionId");
        m.remove("reason");
    }
    v
}

fn recorder(s: &RestState) -> Rest<&Recorder> {
    s.recorder().ok_or(RestError::RecordingDisabled)
}

fn recording_error(e: RecordingError) -> RestError {
    match e {
        RecordingError::NotFound(id) | RecordingError::NotStarted(id) => {
            RestError::RecordingNotFound(id)
        }
        RecordingError::AlreadyRecording(session) => {
            RestError::RecordingConflict(format!("session '{session}' is already being recorded"))
        }
        RecordingError::InProgress(id) => {
            RestError::RecordingConflict(format!("recording '{id}' is in progress"))
        }
        RecordingError::Starting(id) => RestError::RecordingStarting(id),
        RecordingError::Io(e) => RestError::RecordingFailed(e.to_string()),
    }
}

/// `POST /recordings/start`.
pub(super) async fn start(
    State(s): State<RestState>,
    body: super::body::Body,
) -> Rest<Json<Value>> {
    let f = body.required()?;
    let recorder = recorder(&s)?.clone();
    let session = f
        .str("session")?
        .ok_or(RestError::MissingField("session"))?
        .to_owned();
    let handle = super::rest::handle(&s, &session)?;
    let chosen = |defaults: &crate::room::RecordingDefaults| {
        let mut properties = defaults.clone();
        super::rest::apply_recording_fields(&f, &mut properties)?;
        // OpenVidu's swap rule: a session that defaults to one composed flavour keeps it.
        match (defaults.output_mode, properties.output_mode) {
            (OutputMode::ComposedQuickStart, OutputMode::Composed) => {
                properties.output_mode = OutputMode::ComposedQuickStart;
            }
            (OutputMode::Composed, OutputMode::ComposedQuickStart) => {
                properties.output_mode = OutputMode::Composed;
            }
            _ => {}
        }
        properties
            .check_values()
            .map_err(|e| RestError::Unprocessable(super::wire::recording_value_message(&e)))?;
        Ok::<_, RestError>(properties)
    };
    let started = policy::start(&recorder, &handle, chosen)
        .await?
        .map_err(|e| match e {
            StartError::RoomGone => RestError::SessionNotFound(session.clone()),
            StartError::NotRecordable => RestError::RecordingConflict(format!(
                "session '{session}' is RELAYED or already being recorded"
            )),
            StartError::Empty => RestError::SessionNotActive(session.clone()),
            StartError::Recorder(RecordingError::Io(e)) => {
                RestError::RecordingFailed(format!("Error starting recording: {e}"))
            }
            StartError::Recorder(e) => recording_error(e),
        })?;
    Ok(Json(recording_json(&started)))
}

/// `POST /recordings/stop/{id}`.
pub(super) async fn stop(State(s): State<RestState>, Path(id): Path<String>) -> Rest<Json<Value>> {
    let stopped = recorder(&s)?
        .stop(&id, StopReason::StoppedByServer)
        .await
        .map_err(recording_error)?;
    Ok(Json(recording_json(&stopped)))
}

/// `GET /recordings/{id}`.
pub(super) async fn get(State(s): State<RestState>, Path(id): Path<String>) -> Rest<Json<Value>> {
    let r = recorder(&s)?
        .get(&id)
        .ok_or(RestError::RecordingNotFound(id))?;
    Ok(Json(recording_json(&r)))
}

/// `GET /recordings`.
pub(super) async fn list(State(s): State<RestState>) -> Rest<Json<Value>> {
    let recorder = recorder(&s)?.clone();
    let all = tokio::task::spawn_blocking(move || recorder.list())
        .await
        .map_err(|e| RestError::Internal(e.to_string()))?;
    let items: Vec<Value> = all.iter().map(recording_json).collect();
    Ok(Json(
        serde_json::json!({ "count": items.len(), "items": items }),
    ))
}

/// `DELETE /recordings/{id}`.
pub(super) async fn delete(State(s): State<RestState>, Path(id): Path<String>) -> Rest<StatusCode> {
    recorder(&s)?.delete(&id).map_err(recording_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /openvidu/recordings/{id}/{file}`: a recording's file, streamed.
pub(super) async fn file(
    State(s): State<RestState>,
    Path((id, name)): Path<(String, String)>,
) -> Rest<Response> {
    let path = recorder(&s)?
        .file(&id, &name)
        .ok_or_else(|| RestError::RouteNotFound(format!("/openvidu/recordings/{id}/{name}")))?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| RestError::Internal(e.to_string()))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| RestError::Internal(e.to_string()))?
        .len();
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("zip") => "application/zip",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}
