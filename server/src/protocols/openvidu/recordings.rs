//! OpenVidu's recording API over the [`Recorder`], and what keeps recordings in step with
//! rooms: a room observer that hears of new streams and closed rooms ([`RoomFeed`], acted on
//! by [`follow`]), and the listener that turns status changes into webhook/CDR events and
//! browser notifications ([`Announcer`]).

use super::error::RestError;
use super::rest::RestState;
use super::webhook::OpenViduEvents;
use crate::recording::{Recorder, Recording, RecordingError, RecordingListener, Start, Status};
use crate::room::{
    EndReason, MediaMode, OutputMode, ParticipantId, RecordingMode, Role, Room, RoomEvent, RoomId,
};
use crate::rooms::{Notice, Observer, Rooms};
use crate::store::{Store, Write};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

type Rest<T> = Result<T, RestError>;

/// What a room did that its recording must follow.
#[derive(Debug)]
pub enum Change {
    /// A participant started publishing.
    Published(RoomId, ParticipantId),
    /// A stream ended or a participant left: the room may have nobody publishing now.
    Quieter(RoomId),
    /// A recording of the room started.
    Recording(RoomId),
    /// The room closed.
    Closed(RoomId, EndReason),
}

/// Hears room changes for the recorder; renders no events itself.
pub struct RoomFeed(mpsc::UnboundedSender<Change>);

impl RoomFeed {
    /// The feed and the receiving end [`follow`] takes.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Another way in, for changes that do not come from a room (a recording started).
    pub fn sender(&self) -> mpsc::UnboundedSender<Change> {
        self.0.clone()
    }
}

impl Observer for RoomFeed {
    fn created(&self, _: &Room) -> Vec<crate::store::Event> {
        Vec::new()
    }

    fn changed(
        &self,
        _: &Room,
        after: &Room,
        events: &[RoomEvent],
        _: i64,
    ) -> Vec<crate::store::Event> {
        for e in events {
            let change = match e {
                RoomEvent::StreamPublished(p) => Change::Published(after.id().clone(), p.clone()),
                RoomEvent::RoomClosed(reason) => Change::Closed(after.id().clone(), *reason),
                RoomEvent::StreamUnpublished(..) | RoomEvent::ParticipantLeft(..) => {
                    Change::Quieter(after.id().clone())
                }
                _ => continue,
            };
            let _ = self.0.send(change);
        }
        Vec::new()
    }

    fn vanished(&self, _: &Room, _: &crate::room::Participant, _: i64) -> Vec<crate::store::Event> {
        Vec::new()
    }
}

/// Two observers as one: the events of both, in order.
pub struct Both(pub Arc<dyn Observer>, pub Arc<dyn Observer>);

impl Observer for Both {
    fn created(&self, room: &Room) -> Vec<crate::store::Event> {
        let mut e = self.0.created(room);
        e.extend(self.1.created(room));
        e
    }

    fn changed(
        &self,
        before: &Room,
        after: &Room,
        events: &[RoomEvent],
        now: i64,
    ) -> Vec<crate::store::Event> {
        let mut e = self.0.changed(before, after, events, now);
        e.extend(self.1.changed(before, after, events, now));
        e
    }

    fn vanished(
        &self,
        room: &Room,
        p: &crate::room::Participant,
        now: i64,
    ) -> Vec<crate::store::Event> {
        let mut e = self.0.vanished(room, p, now);
        e.extend(self.1.vanished(room, p, now));
        e
    }
}

/// The recording end reason a session's close gives: participants' own reasons become
/// `lastParticipantLeft`, as in OpenVidu.
fn close_reason(reason: EndReason) -> &'static str {
    match reason {
        EndReason::SessionClosedByServer | EndReason::ServerStopped | EndReason::AutomaticStop => {
            super::wire::reason_name(reason)
        }
        _ => super::wire::reason_name(EndReason::LastParticipantLeft),
    }
}

/// The countdowns of recordings whose room has nobody publishing, by room.
type Countdowns = std::collections::HashMap<RoomId, tokio::task::JoinHandle<()>>;

/// Starts or cancels the auto-stop countdown of `room`'s recording: with nobody publishing,
/// the recording stops after `autostop` (`automaticStop`; a room nobody is left in with a
/// zero timeout stops at once, `lastParticipantLeft`), unless someone publishes first.
async fn countdown(
    room: &RoomId,
    rooms: &Rooms,
    recorder: &Recorder,
    autostop: Duration,
    timers: &mut Countdowns,
) {
    let recording = recorder.recording_of(room.as_str());
    let handle = rooms.get(room.as_str());
    let quiet = match (&recording, &handle) {
        (Some(_), Some(h)) => h.publishers().await.is_ok_and(|p| p.is_empty()),
        _ => false,
    };
    if !quiet {
        if let Some(t) = timers.remove(room) {
            t.abort();
        }
        return;
    }
    if timers.get(room).is_some_and(|t| !t.is_finished()) {
        return;
    }
    let (Some(recording), Some(handle)) = (recording, handle) else {
        return;
    };
    let empty = handle
        .snapshot(false)
        .await
        .is_ok_and(|r| r.active_participants().next().is_none());
    let reason = if empty && autostop.is_zero() {
        "lastParticipantLeft"
    } else {
        "automaticStop"
    };
    let recorder = recorder.clone();
    timers.insert(
        room.clone(),
        tokio::spawn(async move {
            tokio::time::sleep(autostop).await;
            let still_quiet = handle.publishers().await.is_ok_and(|p| p.is_empty());
            let same = recorder
                .recording_of(&recording.session_id)
                .is_some_and(|r| r.id == recording.id);
            if still_quiet && same {
                match recorder.stop(&recording.id, reason).await {
                    Ok(_) => tracing::info!(recording = %recording.id, reason, "recording stopped by itself"),
                    Err(e) => tracing::warn!(recording = %recording.id, error = %e, "auto-stop failed"),
                }
            }
        }),
    );
}

/// Keeps recordings in step with rooms until `changes` ends: a new stream joins its room's
/// recording (or starts one in a room recorded ALWAYS), a recording with nobody publishing
/// stops after `autostop`, a closed room's recording stops.
pub async fn follow(
    mut changes: mpsc::UnboundedReceiver<Change>,
    rooms: Rooms,
    recorder: Recorder,
    autostop: Duration,
) {
    let mut timers = Countdowns::new();
    while let Some(change) = changes.recv().await {
        match change {
            Change::Quieter(room) | Change::Recording(room) => {
                countdown(&room, &rooms, &recorder, autostop, &mut timers).await;
            }
            Change::Published(room, participant) => {
                countdown(&room, &rooms, &recorder, autostop, &mut timers).await;
                let Some(handle) = rooms.get(room.as_str()) else {
                    continue;
                };
                let (Ok(snapshot), Ok(published)) =
                    (handle.snapshot(false).await, handle.publishers().await)
                else {
                    continue;
                };
                let video = super::rpc::room_video(&snapshot);
                if recorder.recording_of(room.as_str()).is_some() {
                    let Some((p, stream, out)) =
                        published.into_iter().find(|(p, _, _)| p.id == participant)
                    else {
                        continue;
                    };
                    if let Err(e) = recorder
                        .add_stream(room.as_str(), p, stream, &out, video)
                        .await
                    {
                        tracing::warn!(room = %room, error = %e, "a stream could not be recorded");
                    }
                } else if snapshot.options().recording_mode == RecordingMode::Always {
                    let start = Start {
                        session: room.as_str().to_owned(),
                        room_created_at: snapshot.created_at(),
                        properties: snapshot.options().recording_defaults.clone(),
                        publishers: published,
                        video,
                    };
                    match recorder.start(start).await {
                        Ok(r) => tracing::info!(recording = %r.id, "recording started (ALWAYS)"),
                        Err(RecordingError::AlreadyRecording(_)) => {}
                        Err(e) => {
                            tracing::warn!(room = %room, error = %e, "ALWAYS recording failed")
                        }
                    }
                }
            }
            Change::Closed(room, reason) => {
                if let Some(t) = timers.remove(&room) {
                    t.abort();
                }
                recorder
                    .stop_session(room.as_str(), close_reason(reason))
                    .await;
            }
        }
    }
}

/// Tells webhooks, the CDR and the room's browsers of a recording's status changes, holds
/// a recorded room open after its last participant leaves, and releases it at the stop.
pub struct Announcer {
    events: Option<Arc<OpenViduEvents>>,
    store: Store,
    rooms: OnceLock<Rooms>,
    roles: Vec<Role>,
    /// Holds and releases, applied in order by one task.
    holds: OnceLock<mpsc::UnboundedSender<(String, bool, EndReason)>>,
    /// Where `follow` hears that a recording started.
    changes: mpsc::UnboundedSender<Change>,
}

impl Announcer {
    /// The announcer; `notification` is OPENVIDU_RECORDING_NOTIFICATION; `changes` reaches
    /// [`follow`].
    pub fn new(
        events: Option<Arc<OpenViduEvents>>,
        store: Store,
        notification: &str,
        changes: mpsc::UnboundedSender<Change>,
    ) -> Self {
        let roles = match notification {
            "none" => vec![],
            "moderator" => vec![Role::Moderator],
            "all" => vec![
                Role::Subscriber,
                Role::Publisher,
                Role::PublisherOnly,
                Role::Moderator,
            ],
            _ => vec![Role::Publisher, Role::PublisherOnly, Role::Moderator],
        };
        Self {
            events,
            store,
            rooms: OnceLock::new(),
            roles,
            holds: OnceLock::new(),
            changes,
        }
    }

    /// The rooms browsers are told through (known once they are loaded). Starts the task
    /// that holds and releases them; call inside the runtime.
    pub fn set_rooms(&self, rooms: Rooms) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, bool, EndReason)>();
        let r = rooms.clone();
        tokio::spawn(async move {
            while let Some((session, on, reason)) = rx.recv().await {
                if let Some(handle) = r.get(&session)
                    && let Err(e) = r.hold(&handle, on, reason).await
                {
                    tracing::warn!(session, error = %e, "holding the room failed");
                }
            }
        });
        let _ = self.holds.set(tx);
        let _ = self.rooms.set(rooms);
    }

    fn hold(&self, session: &str, on: bool, reason: EndReason) {
        if let Some(holds) = self.holds.get() {
            let _ = holds.send((session.to_owned(), on, reason));
        }
    }
}

impl RecordingListener for Announcer {
    fn status_changed(&self, r: &Recording, _room_created_at: i64) {
        if let Some(event) = self.events.as_ref().and_then(|e| e.recording_event(r)) {
            // Recording events are not tied to a room change: nothing waits for them.
            drop(self.store.enqueue(vec![Write::Event(event)]));
        }
        match r.status {
            Status::Started => {
                self.hold(&r.session_id, true, EndReason::AutomaticStop);
                let _ = self
                    .changes
                    .send(Change::Recording(RoomId::new(r.session_id.clone())));
            }
            Status::Stopped => {
                let reason = match r.reason.as_deref() {
                    Some("automaticStop") => EndReason::AutomaticStop,
                    _ => EndReason::LastParticipantLeft,
                };
                self.hold(&r.session_id, false, reason);
            }
            _ => {}
        }
        let notice = match r.status {
            Status::Started => Notice::RecordingStarted {
                id: r.id.clone(),
                name: r.name.clone(),
            },
            Status::Stopped => Notice::RecordingStopped {
                id: r.id.clone(),
                name: r.name.clone(),
                reason: r.reason.clone().unwrap_or_default(),
            },
            _ => return,
        };
        if let Some(room) = self.rooms.get().and_then(|rooms| rooms.get(&r.session_id)) {
            room.notify(notice, self.roles.clone());
        }
    }
}

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
    let room = handle
        .snapshot(false)
        .await
        .map_err(|_| RestError::SessionNotFound(session.clone()))?;
    if room.options().media_mode == MediaMode::Relayed || recorder.recording_of(&session).is_some()
    {
        return Err(RestError::RecordingConflict(format!(
            "session '{session}' is RELAYED or already being recorded"
        )));
    }
    if room.active_participants().next().is_none() {
        return Err(RestError::SessionNotActive(session));
    }
    let defaults = &room.options().recording_defaults;
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
        .map_err(|e| RestError::Unprocessable(e.to_string()))?;
    let publishers = handle
        .publishers()
        .await
        .map_err(|_| RestError::SessionNotFound(session.clone()))?;
    let start = Start {
        session,
        room_created_at: room.created_at(),
        properties,
        publishers,
        video: super::rpc::room_video(&room),
    };
    let started = recorder.start(start).await.map_err(|e| match e {
        RecordingError::Io(e) => {
            RestError::RecordingFailed(format!("Error starting recording: {e}"))
        }
        e => recording_error(e),
    })?;
    Ok(Json(recording_json(&started)))
}

/// `POST /recordings/stop/{id}`.
pub(super) async fn stop(State(s): State<RestState>, Path(id): Path<String>) -> Rest<Json<Value>> {
    let stopped = recorder(&s)?
        .stop(&id, "recordingStoppedByServer")
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
