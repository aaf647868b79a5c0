//! `RoomHandle` and `RoomTask`: the one task that owns a room, and the cheap handle that
//! sends it commands with a one-shot reply.

use crate::room::{
    ActiveInfo, EndReason, JoinError, Participant, ParticipantId, Role, Room, RoomError, RoomEvent,
    RoomId, SignalError,
};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Commands queued to one room task. Senders: API handlers holding a `RoomHandle`.
/// Receiver: the room task. When full, senders wait (back-pressure on the callers of that
/// room only; other rooms are unaffected).
pub const ROOM_COMMAND_CAPACITY: usize = 256;

/// The room task has ended: the room is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("room is gone")]
pub struct RoomGone;

/// What a sweep found in one room.
#[derive(Debug, Default)]
pub struct SweepOutcome {
    /// Grants that expired and were dropped.
    pub expired: Vec<ParticipantId>,
    /// The room never had anybody in it and is older than the threshold.
    pub garbage: bool,
}

enum Command {
    Snapshot(bool, oneshot::Sender<Room>),
    Grant(
        Participant,
        oneshot::Sender<Result<Vec<RoomEvent>, RoomError>>,
    ),
    Update(
        String,
        Option<Role>,
        Option<bool>,
        oneshot::Sender<Result<Participant, RoomError>>,
    ),
    Join(
        String,
        i64,
        ActiveInfo,
        oneshot::Sender<Result<Participant, JoinError>>,
    ),
    Remove(
        String,
        EndReason,
        oneshot::Sender<Result<Vec<RoomEvent>, RoomError>>,
    ),
    Close(EndReason, oneshot::Sender<Vec<RoomEvent>>),
    Signal(
        SignalRequest,
        oneshot::Sender<Result<RoomEvent, SignalError>>,
    ),
    Sweep(i64, i64, oneshot::Sender<SweepOutcome>),
}

/// A signal to send through a room.
#[derive(Debug, Clone, Default)]
pub struct SignalRequest {
    /// The sender, or `None` for the server API.
    pub from: Option<ParticipantId>,
    /// The recipients; empty means every active participant.
    pub to: Vec<String>,
    /// The signal's type.
    pub kind: Option<String>,
    /// The signal's payload.
    pub data: Option<String>,
}

/// A cheap handle on one live room.
#[derive(Clone)]
pub struct RoomHandle {
    id: Arc<RoomId>,
    created_at: i64,
    tx: mpsc::Sender<Command>,
}

impl RoomHandle {
    /// Starts the task that owns `room` and returns its handle.
    pub fn spawn(room: Room) -> Self {
        let (tx, rx) = mpsc::channel(ROOM_COMMAND_CAPACITY);
        let handle = Self {
            id: Arc::new(room.id().clone()),
            created_at: room.created_at(),
            tx,
        };
        tokio::spawn(RoomTask { room, rx }.run());
        handle
    }

    /// The room's id.
    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// When the room was created, ms since the epoch.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Whether two handles reach the same task.
    pub fn same_task(&self, other: &RoomHandle) -> bool {
        self.tx.same_channel(&other.tx)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RoomGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| RoomGone)?;
        rx.await.map_err(|_| RoomGone)
    }

    /// A copy of the room's state; pending participants only when `with_pending`.
    pub async fn snapshot(&self, with_pending: bool) -> Result<Room, RoomGone> {
        self.ask(|r| Command::Snapshot(with_pending, r)).await
    }

    /// Adds a pending participant.
    pub async fn grant(
        &self,
        p: Participant,
    ) -> Result<Result<Vec<RoomEvent>, RoomError>, RoomGone> {
        self.ask(|r| Command::Grant(p, r)).await
    }

    /// Changes a participant's role or recording flag.
    pub async fn update(
        &self,
        id: &str,
        role: Option<Role>,
        record: Option<bool>,
    ) -> Result<Result<Participant, RoomError>, RoomGone> {
        self.ask(|r| Command::Update(id.to_owned(), role, record, r))
            .await
    }

    /// Uses a pending grant.
    pub async fn join(
        &self,
        id: &str,
        now: i64,
        info: ActiveInfo,
    ) -> Result<Result<Participant, JoinError>, RoomGone> {
        self.ask(|r| Command::Join(id.to_owned(), now, info, r))
            .await
    }

    /// Removes a participant.
    pub async fn remove(
        &self,
        id: &str,
        reason: EndReason,
    ) -> Result<Result<Vec<RoomEvent>, RoomError>, RoomGone> {
        self.ask(|r| Command::Remove(id.to_owned(), reason, r))
            .await
    }

    /// Closes the room; its task ends after replying.
    pub async fn close(&self, reason: EndReason) -> Result<Vec<RoomEvent>, RoomGone> {
        self.ask(|r| Command::Close(reason, r)).await
    }

    /// Sends a signal.
    pub async fn signal(
        &self,
        request: SignalRequest,
    ) -> Result<Result<RoomEvent, SignalError>, RoomGone> {
        self.ask(|r| Command::Signal(request, r)).await
    }

    /// Drops expired grants and tells whether the room is garbage.
    pub async fn sweep(&self, now: i64, threshold_ms: i64) -> Result<SweepOutcome, RoomGone> {
        self.ask(|r| Command::Sweep(now, threshold_ms, r)).await
    }
}

/// The task that owns one room's state.
struct RoomTask {
    room: Room,
    rx: mpsc::Receiver<Command>,
}

impl RoomTask {
    async fn run(mut self) {
        while let Some(command) = self.rx.recv().await {
            // A dropped reply receiver means the caller gave up; the command still applies.
            match command {
                Command::Snapshot(with_pending, r) => {
                    let _ = r.send(self.room.view(with_pending));
                }
                Command::Grant(p, r) => {
                    let _ = r.send(self.room.grant(p));
                }
                Command::Update(id, role, record, r) => {
                    let _ = r.send(self.room.update(&id, role, record).cloned());
                }
                Command::Join(id, now, info, r) => {
                    let _ = r.send(self.room.join(&id, now, info).map(|(p, _)| p.clone()));
                }
                Command::Remove(id, reason, r) => {
                    let _ = r.send(self.room.remove(&id, reason));
                }
                Command::Close(reason, r) => {
                    let _ = r.send(self.room.close(reason));
                }
                Command::Signal(q, r) => {
                    let _ = r.send(self.room.signal(q.from, &q.to, q.kind, q.data));
                }
                Command::Sweep(now, threshold, r) => {
                    let expired = self
                        .room
                        .expire_grants(now)
                        .into_iter()
                        .filter_map(|e| match e {
                            RoomEvent::GrantRevoked(id) => Some(id),
                            _ => None,
                        })
                        .collect();
                    let garbage = self.room.is_garbage(now, threshold);
                    let _ = r.send(SweepOutcome { expired, garbage });
                }
            }
            if self.room.closed().is_some() {
                break;
            }
        }
    }
}
