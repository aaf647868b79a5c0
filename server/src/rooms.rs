//! Live rooms: one owner task per room, cheap handles to it, and the registry that finds
//! them. The operations here keep the live state and the store in step; every protocol
//! adapter goes through them.
//!
//! Events: the room core returns typed events as it applies a command; a room task hands
//! each change to the store's journal together with what an [`Observer`] (a door's
//! renderer, the recording policy) makes of those events, in the order the room applied its
//! commands, so the outbox holds a room's events in that order and in the same transaction
//! as the change. No consumer compares the room before and after a command.
//!
//! Lock rule: the registry lock is held only to look up, insert or remove a handle, never
//! across an `.await`. Room state is never behind a lock: only its task touches it.

mod handle;

pub use handle::{
    Leg, Notice, Published, RoomGone, RoomHandle, SINK_CAPACITY, SignalRequest, Sink,
};

use crate::grant::GrantKey;
use crate::room::{
    EndReason, JoinError, Participant, ParticipantId, Role, Room, RoomError, RoomEvent, RoomId,
    RoomOptions,
};
use crate::store::{Store, StoreError, Write};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The current time in ms since the epoch: the one clock of the live layer.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Turns what happens to rooms into outbox events. Implemented by the protocol adapter that
/// renders them; called by room tasks, so it must be quick and must not block.
pub trait Observer: Send + Sync {
    /// Events for a room that was just created.
    fn created(&self, room: &Room) -> Vec<crate::store::Event>;
    /// Events for what a command did to `room` at `now` (`room` as it is after it; the
    /// events carry everything that ended).
    fn changed(&self, room: &Room, events: &[RoomEvent], now: i64) -> Vec<crate::store::Event>;
    /// Events for a participant that was in `room` when the server stopped (`reason`
    /// `ServerStopped`) or when the cluster node that had the room died (`NodeCrashed`).
    fn vanished(
        &self,
        room: &Room,
        participant: &Participant,
        now: i64,
        reason: EndReason,
    ) -> Vec<crate::store::Event>;
}

/// Two observers as one: the events of both, in order.
pub struct Both(pub Arc<dyn Observer>, pub Arc<dyn Observer>);

impl Observer for Both {
    fn created(&self, room: &Room) -> Vec<crate::store::Event> {
        let mut e = self.0.created(room);
        e.extend(self.1.created(room));
        e
    }

    fn changed(&self, room: &Room, events: &[RoomEvent], now: i64) -> Vec<crate::store::Event> {
        let mut e = self.0.changed(room, events, now);
        e.extend(self.1.changed(room, events, now));
        e
    }

    fn vanished(
        &self,
        room: &Room,
        p: &Participant,
        now: i64,
        reason: EndReason,
    ) -> Vec<crate::store::Event> {
        let mut e = self.0.vanished(room, p, now, reason);
        e.extend(self.1.vanished(room, p, now, reason));
        e
    }
}

/// Writes the events of participants that were in the calls of `rooms` when their server
/// stopped or their node died, and forgets them, in one transaction.
async fn forget_vanished(
    store: &Store,
    observer: Option<&Arc<dyn Observer>>,
    rooms: &[Room],
    gone: &[(RoomId, Participant)],
    reason: EndReason,
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut writes = Vec::new();
    for (room_id, participant) in gone {
        if let (Some(observer), Some(room)) = (observer, rooms.iter().find(|r| r.id() == room_id)) {
            writes.extend(
                observer
                    .vanished(room, participant, now, reason)
                    .into_iter()
                    .map(Write::Event),
            );
        }
        writes.push(Write::DeleteParticipant {
            room: room_id.as_str().to_owned(),
            id: participant.id.as_str().to_owned(),
        });
    }
    store.write(writes).await
}

/// How long grants live and when idle rooms are dropped.
#[derive(Clone, Debug)]
pub struct Lifetimes {
    /// How long a join grant stays usable after it is issued.
    pub grant_ttl: Duration,
    /// How often rooms nobody joined are looked for; zero disables the sweep.
    pub gc_interval: Duration,
    /// How old a room nobody joined must be to be dropped.
    pub gc_threshold: Duration,
}

/// A room operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    /// A room with that id exists.
    #[error("room '{0}' already exists")]
    RoomExists(RoomId),
    /// No such room, or it closed meanwhile.
    #[error("room not found")]
    RoomNotFound,
    /// The room refused the command.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is stopping and admits nothing new.
    #[error("the server is stopping")]
    Draining,
}

impl From<RoomGone> for RoomsError {
    fn from(_: RoomGone) -> Self {
        RoomsError::RoomNotFound
    }
}

/// A join that is refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The grant is forged, malformed or expired.
    #[error(transparent)]
    Grant(#[from] crate::grant::GrantError),
    /// The grant is for another room than the one asked for.
    #[error("token is for another session")]
    WrongRoom,
    /// The room is closed or never existed.
    #[error("session not found")]
    RoomNotFound,
    /// The room refused the join (grant used, revoked or expired; room closing).
    #[error(transparent)]
    Join(#[from] JoinError),
    /// A participant with that id is already in the room.
    #[error("participant {0} is already in the room")]
    Duplicate(ParticipantId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is stopping and admits nobody.
    #[error("the server is stopping")]
    Draining,
}

/// All live rooms, with the store they are kept in (cheap to clone).
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<HashMap<RoomId, RoomHandle>>,
    store: Store,
    observer: Option<Arc<dyn Observer>>,
    grant_key: GrantKey,
    lifetimes: Lifetimes,
    /// The server is stopping: no new room, grant or join.
    draining: std::sync::atomic::AtomicBool,
}

impl Rooms {
    /// Loads every stored room and starts its task; participants that were in a room when
    /// the server stopped are forgotten, with the events `observer` makes of that. Call from
    /// inside a tokio runtime.
    pub async fn load(
        store: Store,
        lifetimes: Lifetimes,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Self, StoreError> {
        let grant_key = store.grant_key().await?;
        let (rooms, gone) = store.load_rooms().await?;
        forget_vanished(
            &store,
            observer.as_ref(),
            &rooms,
            &gone,
            EndReason::ServerStopped,
        )
        .await?;
        let registry = rooms
            .into_iter()
            .map(|room| {
                let handle = RoomHandle::spawn(room, store.clone(), observer.clone());
                (handle.id().clone(), handle)
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                store,
                observer,
                grant_key,
                lifetimes,
                draining: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Takes in the rooms this node came to own in the store without having them live (in a
    /// cluster, those of a dead node it took over): the participants that were in their
    /// calls leave with `NodeCrashed`; a room left with nobody, no pending grant and no
    /// reason to outlive its calls closes with `NodeCrashed`; the others go live here, their
    /// pending grants usable. The ids of the rooms taken in and of those closed.
    pub async fn adopt(&self) -> Result<(Vec<RoomId>, Vec<RoomId>), RoomsError> {
        let store = self.store().clone();
        let live: std::collections::HashSet<String> = self
            .all()
            .iter()
            .map(|h| h.id().as_str().to_owned())
            .collect();
        let (rooms, gone) = store.load_rooms_except(&live).await?;
        let observer = self.inner.observer.clone();
        forget_vanished(
            &store,
            observer.as_ref(),
            &rooms,
            &gone,
            EndReason::NodeCrashed,
        )
        .await?;
        let (mut taken, mut closed) = (Vec::new(), Vec::new());
        for room in rooms {
            let had_call = gone.iter().any(|(id, _)| id == room.id());
            let idle = room.participants().next().is_none() && !room.options().persistent;
            let handle = RoomHandle::spawn(room, store.clone(), observer.clone());
            let id = handle.id().clone();
            self.registry().insert(id.clone(), handle.clone());
            if had_call && idle {
                self.close(&handle, EndReason::NodeCrashed).await?;
                closed.push(id);
            } else {
                taken.push(id);
            }
        }
        Ok((taken, closed))
    }

    /// From now on no room is created, no participant granted entry and nobody joins: the
    /// server is stopping.
    pub fn drain(&self) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the server is stopping ([`Rooms::drain`]).
    pub fn draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The store the rooms are kept in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The key that signs and checks join grants.
    pub fn grant_key(&self) -> &GrantKey {
        &self.inner.grant_key
    }

    /// The configured lifetimes.
    pub fn lifetimes(&self) -> &Lifetimes {
        &self.inner.lifetimes
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, RoomHandle>> {
        // A panic while holding this lock cannot leave the map half-changed: every
        // critical section is one map call.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The handle of a live room.
    pub fn get(&self, id: &RoomId) -> Option<RoomHandle> {
        self.registry().get(id).cloned()
    }

    /// Handles of every live room, oldest first.
    pub fn all(&self) -> Vec<RoomHandle> {
        let mut all: Vec<RoomHandle> = self.registry().values().cloned().collect();
        all.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
        all
    }

    /// Creates a room: stored first, then live.
    pub async fn create(
        &self,
        id: RoomId,
        options: RoomOptions,
        now: i64,
    ) -> Result<Room, RoomsError> {
        if self.draining() {
            return Err(RoomsError::Draining);
        }
        let room = Room::new(id.clone(), now, options);
        if self.get(&id).is_some() {
            return Err(RoomsError::RoomExists(id));
        }
        let mut writes = vec![Write::insert_room(&room)];
        if let Some(observer) = &self.inner.observer {
            writes.extend(observer.created(&room).into_iter().map(Write::Event));
        }
        match self.inner.store.write(writes).await {
            Err(StoreError::Conflict) => return Err(RoomsError::RoomExists(id)),
            other => other?,
        }
        let handle = RoomHandle::spawn(
            room.clone(),
            self.inner.store.clone(),
            self.inner.observer.clone(),
        );
        let mut registry = self.registry();
        if registry.contains_key(&id) {
            // Only a room that was closing when the store accepted this one can be here:
            // the store held no row for it, so this one replaces it.
            tracing::debug!(room = %id, "replacing a closing room");
        }
        registry.insert(id, handle);
        Ok(room)
    }

    /// Adds a pending participant to a room: stored first, then live.
    pub async fn grant(
        &self,
        room: &RoomHandle,
        participant: Participant,
    ) -> Result<(), RoomsError> {
        if self.draining() {
            return Err(RoomsError::Draining);
        }
        match self
            .inner
            .store
            .insert_participant(room.id(), &participant)
            .await
        {
            Err(StoreError::RoomMissing) => return Err(RoomsError::RoomNotFound),
            other => other?,
        }
        match room.grant(participant).await? {
            Ok(_) => Ok(()),
            Err(RoomError::Closed) => Err(RoomsError::RoomNotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a participant's role or recording flag.
    pub async fn update(
        &self,
        room: &RoomHandle,
        id: &ParticipantId,
        role: Option<Role>,
        record: Option<bool>,
    ) -> Result<Participant, RoomsError> {
        let (participant, stored) = room.update(id, role, record).await??;
        stored.wait().await?;
        Ok(participant)
    }

    /// Admits a client into `room_id` with a signed grant: the signature and expiry are
    /// checked without a lookup, then the room consumes the grant once.
    pub async fn admit(
        &self,
        room_id: &RoomId,
        signed: &str,
        info: crate::room::ActiveInfo,
        sink: Option<Sink>,
    ) -> Result<(RoomHandle, Participant, Vec<Participant>), AdmitError> {
        if self.draining() {
            return Err(AdmitError::Draining);
        }
        let now = now_ms();
        let grant = self.inner.grant_key.verify(signed, now / 1000)?;
        if &grant.room != room_id {
            return Err(AdmitError::WrongRoom);
        }
        let room = self.get(room_id).ok_or(AdmitError::RoomNotFound)?;
        let (participant, others, stored) = room
            .join(&grant.sub, now, info, sink)
            .await
            .map_err(|_| AdmitError::RoomNotFound)??;
        stored.wait().await?;
        Ok((room, participant, others))
    }

    /// Admits `participant`, whom a door let in by its own rule: stored, then joined at once.
    pub async fn admit_by_door(
        &self,
        room_id: &RoomId,
        participant: Participant,
        info: crate::room::ActiveInfo,
        sink: Sink,
    ) -> Result<(RoomHandle, Participant, Vec<Participant>), AdmitError> {
        let room = self.get(room_id).ok_or(AdmitError::RoomNotFound)?;
        let id = participant.id.clone();
        match self.grant(&room, participant).await {
            Ok(()) => {}
            Err(RoomsError::Draining) => return Err(AdmitError::Draining),
            Err(RoomsError::Store(e)) => return Err(AdmitError::Store(e)),
            Err(RoomsError::Room(RoomError::DuplicateParticipant(_))) => {
                return Err(AdmitError::Duplicate(id));
            }
            Err(_) => return Err(AdmitError::RoomNotFound),
        }
        let (participant, others, stored) = room
            .join(&id, now_ms(), info, Some(sink))
            .await
            .map_err(|_| AdmitError::RoomNotFound)??;
        stored.wait().await?;
        Ok((room, participant, others))
    }

    /// Removes a participant (evicts an active one, revokes a pending one).
    pub async fn remove(
        &self,
        room: &RoomHandle,
        id: &ParticipantId,
        reason: EndReason,
    ) -> Result<Vec<RoomEvent>, RoomsError> {
        let (events, stored) = room.remove(id, reason).await??;
        tracing::info!(room = %room.id(), participant = %id, ?reason, "participant removed");
        self.after(room, &events);
        stored.wait().await?;
        Ok(events)
    }

    /// Closes a room for `reason` and forgets it.
    pub async fn close(
        &self,
        room: &RoomHandle,
        reason: EndReason,
    ) -> Result<Vec<RoomEvent>, RoomsError> {
        let (events, stored) = room.close(reason, false).await?;
        tracing::info!(room = %room.id(), ?reason, "room closed");
        self.after(room, &events);
        stored.wait().await?;
        Ok(events)
    }

    /// Keeps a room open after its last participant leaves (a recording runs), or releases
    /// it: an empty room that was joined then closes for `reason` and is forgotten.
    pub async fn hold(
        &self,
        room: &RoomHandle,
        on: bool,
        reason: EndReason,
    ) -> Result<Vec<RoomEvent>, RoomsError> {
        let (events, stored) = room.hold(on, reason).await?;
        self.after(room, &events);
        stored.wait().await?;
        Ok(events)
    }

    /// Forgets a room that closed (the room task stored that).
    fn after(&self, room: &RoomHandle, events: &[RoomEvent]) {
        if events.iter().any(|e| matches!(e, RoomEvent::RoomClosed(_))) {
            let mut registry = self.registry();
            if registry.get(room.id()).is_some_and(|h| h.same_task(room)) {
                registry.remove(room.id());
            }
        }
    }

    /// One sweep: drops expired grants, and rooms nobody joined that are older than the
    /// threshold (silently: such rooms end with no event).
    pub async fn sweep(&self, now: i64) -> Result<usize, RoomsError> {
        let threshold =
            i64::try_from(self.inner.lifetimes.gc_threshold.as_millis()).unwrap_or(i64::MAX);
        let mut dropped = 0;
        for room in self.all() {
            let Ok(outcome) = room.sweep(now, threshold).await else {
                continue;
            };
            for id in &outcome.expired {
                self.inner
                    .store
                    .delete_participant(room.id(), id.as_str())
                    .await?;
            }
            if outcome.garbage {
                // Silently: a session nobody joined ends with no event.
                if let Ok((events, stored)) = room.close(EndReason::ClosedByApi, true).await {
                    self.after(&room, &events);
                    stored.wait().await?;
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }

    /// Runs the sweep every `gc_interval` until `shutdown` resolves.
    pub async fn sweep_forever(self, shutdown: impl std::future::Future<Output = ()>) {
        let interval = self.inner.lifetimes.gc_interval;
        if interval.is_zero() {
            shutdown.await;
            return;
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => match self.sweep(now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rooms = n, "dropped rooms nobody joined"),
                    Err(e) => tracing::warn!(error = %e, "room sweep failed"),
                },
            }
        }
    }

    /// Forgets every live room (they stay stored) and closes the store.
    pub async fn shutdown(&self) {
        // Dropping the handles ends each room task once its queue is empty; the store
        // keeps the rooms for the next start.
        self.registry().clear();
        self.inner.store.close().await;
    }
}
