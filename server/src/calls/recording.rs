//! Recording policy, the same for every door: a room recorded ALWAYS starts recording with
//! its first stream, a new stream joins its room's recording, a recording with nobody
//! publishing stops after the auto-stop time, a closed room's recording stops, and a recorded
//! room outlives its last participant until its recording stops. Crash recovery is the
//! recorder's own (`Recorder::recover` at start).
//!
//! [`RoomFeed`] hears room changes and queues them to [`follow`]; [`Announcer`] hears the
//! recorder's status changes and hands them to the door's [`RecordingEvents`] renderer, to
//! the room's participants as notices, and to `follow`.

use crate::recording::{
    Recorder, Recording, RecordingError, RecordingListener, Start, Status, StopReason,
};
use crate::room::{EndReason, MediaMode, RecordingMode, Role, Room, RoomEvent, RoomId, StreamId};
use crate::rooms::{Notice, Observer, RoomHandle, Rooms};
use crate::store::{Event, Store, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// A recording that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The room closed meanwhile.
    #[error("the room is closed")]
    RoomGone,
    /// The room's media is relayed peer to peer, or a recording of it runs already.
    #[error("the room's media is relayed or it is already recorded")]
    NotRecordable,
    /// Nobody is in the room.
    #[error("nobody is in the room")]
    Empty,
    /// The recorder failed.
    #[error(transparent)]
    Recorder(#[from] RecordingError),
}

/// Starts recording the room `handle` with `properties` (`None`: the room's defaults),
/// every stream published now included. `properties` gets the room's defaults to start
/// from and returns the settings to use, or the door's own refusal.
pub async fn start<E>(
    recorder: &Recorder,
    handle: &RoomHandle,
    properties: impl FnOnce(
        &crate::room::RecordingDefaults,
    ) -> Result<crate::room::RecordingDefaults, E>,
) -> Result<Result<Recording, StartError>, E> {
    let Ok(room) = handle.snapshot(false).await else {
        return Ok(Err(StartError::RoomGone));
    };
    if room.options().media_mode == MediaMode::Relayed
        || recorder.recording_of(room.id().as_str()).is_some()
    {
        return Ok(Err(StartError::NotRecordable));
    }
    if room.active_participants().next().is_none() {
        return Ok(Err(StartError::Empty));
    }
    let properties = properties(&room.options().recording_defaults)?;
    Ok(start_with(recorder, handle, &room, properties).await)
}

/// Starts recording `room` (a snapshot of `handle`'s room) with `properties`.
async fn start_with(
    recorder: &Recorder,
    handle: &RoomHandle,
    room: &Room,
    properties: crate::room::RecordingDefaults,
) -> Result<Recording, StartError> {
    let publishers = handle
        .publishers()
        .await
        .map_err(|_| StartError::RoomGone)?;
    let start = Start {
        session: room.id().as_str().to_owned(),
        room_created_at: room.created_at(),
        properties,
        publishers,
        video: super::room_video(room),
    };
    Ok(recorder.start(start).await?)
}

/// Renders a recording's status change as an outbox event, in a door's words.
pub trait RecordingEvents: Send + Sync {
    /// The event for `r` as it is now; `None` when nobody wants it.
    fn recording_event(&self, r: &Recording) -> Option<Event>;
}

/// What a room did that its recording must follow.
#[derive(Debug)]
pub enum Change {
    /// A stream was published.
    Published(RoomId, StreamId),
    /// A stream ended or a participant left: the room may have nobody publishing now.
    Quieter(RoomId),
    /// A recording of the room started.
    Recording(RoomId),
    /// The room closed.
    Closed(RoomId, EndReason),
}

/// Hears room changes for the recorder; renders no events itself.
///
/// Its queue is unbounded on purpose: room tasks call it synchronously and must neither wait
/// nor lose a change (a lost `Published` would leave a stream unrecorded). What it carries is
/// one small message per publish, unpublish, leave or close, so it grows only as fast as
/// rooms take commands, and `follow` drains it without awaiting anything slow but the
/// recorder's own start and stop.
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
    fn created(&self, _: &Room) -> Vec<Event> {
        Vec::new()
    }

    fn changed(&self, after: &Room, events: &[RoomEvent], _: i64) -> Vec<Event> {
        for e in events {
            let change = match e {
                RoomEvent::StreamPublished(_, stream) => {
                    Change::Published(after.id().clone(), stream.id.clone())
                }
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

    fn vanished(&self, _: &Room, _: &crate::room::Participant, _: i64, _: EndReason) -> Vec<Event> {
        Vec::new()
    }
}

/// Why a recording stops when its room closes for `reason`: participants' own reasons
/// become "last participant left".
fn close_reason(reason: EndReason) -> StopReason {
    match reason {
        EndReason::ClosedByApi => StopReason::SessionClosedByServer,
        EndReason::ServerStopped => StopReason::ServerStopped,
        EndReason::NodeCrashed => StopReason::NodeCrashed,
        EndReason::RecordingEnded => StopReason::AutomaticStop,
        _ => StopReason::LastParticipantLeft,
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
    let handle = rooms.get(room);
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
        StopReason::LastParticipantLeft
    } else {
        StopReason::AutomaticStop
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
                    Ok(_) => tracing::info!(recording = %recording.id, ?reason, "recording stopped by itself"),
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
            Change::Published(room, stream) => {
                countdown(&room, &rooms, &recorder, autostop, &mut timers).await;
                let Some(handle) = rooms.get(&room) else {
                    continue;
                };
                let (Ok(snapshot), Ok(published)) =
                    (handle.snapshot(false).await, handle.publishers().await)
                else {
                    continue;
                };
                let video = super::room_video(&snapshot);
                if recorder.recording_of(room.as_str()).is_some() {
                    let Some((p, stream, out)) =
                        published.into_iter().find(|(_, s, _)| s.id == stream)
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
                    let properties = snapshot.options().recording_defaults.clone();
                    match start_with(&recorder, &handle, &snapshot, properties).await {
                        Ok(r) => tracing::info!(recording = %r.id, "recording started (ALWAYS)"),
                        Err(StartError::Recorder(RecordingError::AlreadyRecording(_))) => {}
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
    events: Option<Arc<dyn RecordingEvents>>,
    store: Store,
    rooms: OnceLock<Rooms>,
    roles: Vec<Role>,
    /// Holds and releases, applied in order by one task.
    holds: OnceLock<mpsc::UnboundedSender<(String, bool, EndReason)>>,
    /// Where `follow` hears that a recording started.
    changes: mpsc::UnboundedSender<Change>,
}

impl Announcer {
    /// The announcer: `events` renders the status events, the participants whose role is
    /// in `roles` hear of starts and stops; `changes` reaches [`follow`].
    pub fn new(
        events: Option<Arc<dyn RecordingEvents>>,
        store: Store,
        roles: Vec<Role>,
        changes: mpsc::UnboundedSender<Change>,
    ) -> Self {
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
        // Unbounded on purpose: the recorder's status listener cannot wait; one message per
        // recording start or stop.
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, bool, EndReason)>();
        let r = rooms.clone();
        tokio::spawn(async move {
            while let Some((session, on, reason)) = rx.recv().await {
                if let Some(handle) = r.get(&RoomId::new(session.as_str()))
                    && let Err(e) = r.hold(&handle, on, reason).await
                {
                    tracing::warn!(room = %session, error = %e, "holding the room failed");
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
                self.hold(&r.session_id, true, EndReason::RecordingEnded);
                let _ = self
                    .changes
                    .send(Change::Recording(RoomId::new(r.session_id.clone())));
            }
            Status::Stopped => {
                let reason = match r.stop_reason() {
                    Some(StopReason::AutomaticStop) => EndReason::RecordingEnded,
                    Some(StopReason::ServerStopped) => EndReason::ServerStopped,
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
                reason: r.stop_reason(),
            },
            _ => return,
        };
        let id = RoomId::new(r.session_id.as_str());
        if let Some(room) = self.rooms.get().and_then(|rooms| rooms.get(&id)) {
            room.notify(notice, self.roles.clone());
        }
    }
}
