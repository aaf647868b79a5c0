//! `RoomHandle` and `RoomTask`: the one task that owns a room, and the cheap handle that
//! sends it commands with a one-shot reply.

use super::Observer;
use crate::media::{Endpoint, StreamOut};
use crate::room::{
    ActiveInfo, EndReason, JoinError, MediaError, Participant, ParticipantId, Role, Room,
    RoomError, RoomEvent, RoomId, SignalError, StreamChange, StreamId, StreamInfo,
};
use crate::store::{Durable, Store, Write};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What one participant's connection is told about its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Another participant joined.
    Joined(Box<Participant>),
    /// A participant left (the receiver stays).
    Left(ParticipantId, EndReason),
    /// A participant was put out; sent to everyone who was in the room, that one included.
    Evicted(ParticipantId, EndReason),
    /// Another participant started publishing a stream.
    Published(ParticipantId, StreamInfo),
    /// A participant's stream ended; the owner hears it too when it was forced.
    Unpublished(ParticipantId, StreamId, EndReason),
    /// A property of another participant's stream changed.
    StreamChanged {
        /// The publisher.
        participant: ParticipantId,
        /// Its stream.
        stream: StreamId,
        /// What changed.
        change: StreamChange,
        /// Why, as the client said.
        reason: String,
    },
    /// The receiver's role was changed through the server API.
    RoleChanged(Role),
    /// Whether the receiver's streams are recorded was changed through the server API.
    RecordChanged(bool),
    /// A recording of the room started.
    RecordingStarted {
        /// The recording id.
        id: String,
        /// Its name.
        name: String,
    },
    /// A recording of the room stopped.
    RecordingStopped {
        /// The recording id.
        id: String,
        /// Its name.
        name: String,
        /// Why, when known.
        reason: Option<crate::recording::StopReason>,
    },
    /// A signal for the receiver.
    Signal {
        /// The sender, or `None` for the server API.
        from: Option<ParticipantId>,
        /// The signal's type.
        kind: Option<String>,
        /// The signal's payload.
        data: Option<String>,
    },
}

/// Where a participant's notices go: its signaling connection.
pub type Sink = mpsc::Sender<Arc<Notice>>;

/// Notices queued to one participant's connection. Sender: the room task. Receiver: that
/// participant's signaling connection. When full, the room drops the sink (a consumer that
/// slow must not hold the room up); the connection sees its queue end and closes, and the
/// client's reconnect attaches a fresh sink.
pub const SINK_CAPACITY: usize = 256;

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

/// A join that took effect: the participant, the others in the room, and the job that
/// stores it.
pub type Joined = (Participant, Vec<Participant>, Durable);

enum Command {
    Snapshot(bool, oneshot::Sender<Room>),
    Grant(
        Participant,
        oneshot::Sender<Result<Vec<RoomEvent>, RoomError>>,
    ),
    Update(
        ParticipantId,
        Option<Role>,
        Option<bool>,
        oneshot::Sender<Result<(Participant, Durable), RoomError>>,
    ),
    Join(
        ParticipantId,
        i64,
        ActiveInfo,
        Option<Sink>,
        oneshot::Sender<Result<Joined, JoinError>>,
    ),
    Attach(ParticipantId, Sink, oneshot::Sender<bool>),
    Remove(
        ParticipantId,
        EndReason,
        oneshot::Sender<Result<(Vec<RoomEvent>, Durable), RoomError>>,
    ),
    Close(EndReason, bool, oneshot::Sender<(Vec<RoomEvent>, Durable)>),
    Hold(bool, EndReason, oneshot::Sender<(Vec<RoomEvent>, Durable)>),
    Signal(
        SignalRequest,
        oneshot::Sender<Result<(RoomEvent, Durable), SignalError>>,
    ),
    Sweep(i64, i64, oneshot::Sender<SweepOutcome>),
    SetOptions(
        crate::room::RoomOptions,
        oneshot::Sender<Result<Durable, RoomError>>,
    ),
    Publish(
        ParticipantId,
        StreamInfo,
        bool,
        Endpoint,
        StreamOut,
        oneshot::Sender<Result<Durable, MediaError>>,
    ),
    Unpublish(
        ParticipantId,
        StreamId,
        EndReason,
        oneshot::Sender<Result<Durable, MediaError>>,
    ),
    PrepareSubscribe(
        ParticipantId,
        StreamId,
        i64,
        oneshot::Sender<Result<(ParticipantId, StreamInfo, StreamOut, Durable), MediaError>>,
    ),
    AttachSubscriber(ParticipantId, StreamId, Endpoint),
    Unsubscribe(
        ParticipantId,
        StreamId,
        oneshot::Sender<Result<Durable, MediaError>>,
    ),
    ChangeStream(
        ParticipantId,
        StreamId,
        StreamChange,
        String,
        oneshot::Sender<Result<(), MediaError>>,
    ),
    EndpointFor(ParticipantId, Leg, oneshot::Sender<Option<Endpoint>>),
    PublishedStream(
        ParticipantId,
        StreamId,
        oneshot::Sender<Option<(StreamInfo, StreamOut)>>,
    ),
    ReplacePublisher(StreamId, Endpoint),
    Publishers(oneshot::Sender<Vec<Published>>),
    Notify(Notice, Vec<Role>),
}

/// One of a participant's peer connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leg {
    /// The one sending its stream `0`.
    Publishing(StreamId),
    /// The one receiving stream `0`.
    Receiving(StreamId),
    /// The one sending the first stream it published (doors with one stream per participant).
    FirstPublished,
    /// The one receiving the first stream it subscribed to from participant `0`.
    FirstFrom(ParticipantId),
}

/// A stream being published: who publishes it, the stream, and its fan-out.
pub type Published = (Participant, StreamInfo, StreamOut);

/// A signal to send through a room.
#[derive(Debug, Clone, Default)]
pub struct SignalRequest {
    /// The sender, or `None` for the server API.
    pub from: Option<ParticipantId>,
    /// The recipients; empty means every active participant.
    pub to: Vec<ParticipantId>,
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

/// Waits for events that only tell of a change (nothing else was stored with them): a
/// failure to store them is logged, since the change itself already took effect.
async fn settle(room: &RoomId, durable: Durable) {
    if let Err(e) = durable.wait().await {
        tracing::warn!(room = %room, error = %e, "events could not be stored");
    }
}

impl RoomHandle {
    /// Starts the task that owns `room` and returns its handle. Its changes and their events
    /// go to `store`; `observer` turns changes into events.
    pub fn spawn(room: Room, store: Store, observer: Option<Arc<dyn Observer>>) -> Self {
        let (tx, rx) = mpsc::channel(ROOM_COMMAND_CAPACITY);
        let handle = Self {
            id: Arc::new(room.id().clone()),
            created_at: room.created_at(),
            tx,
        };
        tokio::spawn(
            RoomTask {
                room,
                store,
                observer,
                rx,
                sinks: HashMap::new(),
                publishers: HashMap::new(),
                subscribers: HashMap::new(),
            }
            .run(),
        );
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

    /// Changes a participant's role or recording flag; the new participant is stored when
    /// the returned job is.
    pub async fn update(
        &self,
        id: &ParticipantId,
        role: Option<Role>,
        record: Option<bool>,
    ) -> Result<Result<(Participant, Durable), RoomError>, RoomGone> {
        self.ask(|r| Command::Update(id.clone(), role, record, r))
            .await
    }

    /// Uses a pending grant; notices for the participant go to `sink`. Returns the
    /// participant, the others in the room, and the job that stores the join and its events.
    pub async fn join(
        &self,
        id: &ParticipantId,
        now: i64,
        info: ActiveInfo,
        sink: Option<Sink>,
    ) -> Result<Result<Joined, JoinError>, RoomGone> {
        self.ask(|r| Command::Join(id.clone(), now, info, sink, r))
            .await
    }

    /// Sends an active participant's notices to a new sink (after a reconnect); false when
    /// the participant is no longer in the room.
    pub async fn attach(&self, id: &ParticipantId, sink: Sink) -> Result<bool, RoomGone> {
        self.ask(|r| Command::Attach(id.clone(), sink, r)).await
    }

    /// Removes a participant; returns what happened and the job that stores it.
    pub async fn remove(
        &self,
        id: &ParticipantId,
        reason: EndReason,
    ) -> Result<Result<(Vec<RoomEvent>, Durable), RoomError>, RoomGone> {
        self.ask(|r| Command::Remove(id.clone(), reason, r)).await
    }

    /// Closes the room; its task ends after replying. `silent`: no events (a room nobody
    /// joined, dropped by the sweep).
    pub async fn close(
        &self,
        reason: EndReason,
        silent: bool,
    ) -> Result<(Vec<RoomEvent>, Durable), RoomGone> {
        self.ask(|r| Command::Close(reason, silent, r)).await
    }

    /// Holds the room open without participants, or releases it (see `Room::hold`).
    pub async fn hold(
        &self,
        on: bool,
        reason: EndReason,
    ) -> Result<(Vec<RoomEvent>, Durable), RoomGone> {
        self.ask(|r| Command::Hold(on, reason, r)).await
    }

    /// Replaces the room's options (a door's edit); returns once they are stored.
    pub async fn set_options(
        &self,
        options: crate::room::RoomOptions,
    ) -> Result<Result<(), RoomError>, RoomGone> {
        match self.ask(|r| Command::SetOptions(options, r)).await? {
            Ok(durable) => {
                settle(&self.id, durable).await;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Sends a signal; returns once its event is stored.
    pub async fn signal(
        &self,
        request: SignalRequest,
    ) -> Result<Result<RoomEvent, SignalError>, RoomGone> {
        match self.ask(|r| Command::Signal(request, r)).await? {
            Ok((event, durable)) => {
                settle(&self.id, durable).await;
                Ok(Ok(event))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Starts `id` publishing `stream` through `endpoint`; the room keeps the endpoint.
    /// `exclusive`: refused when `id` already publishes a stream.
    pub async fn publish(
        &self,
        id: &ParticipantId,
        stream: StreamInfo,
        exclusive: bool,
        endpoint: Endpoint,
        out: StreamOut,
    ) -> Result<Result<(), MediaError>, RoomGone> {
        let result = self
            .ask(|r| Command::Publish(id.clone(), stream, exclusive, endpoint, out, r))
            .await?;
        Ok(self.settled(result).await)
    }

    async fn settled(&self, result: Result<Durable, MediaError>) -> Result<(), MediaError> {
        let durable = result?;
        settle(&self.id, durable).await;
        Ok(())
    }

    /// Ends `id`'s stream `stream`, its endpoint and every subscription to it.
    pub async fn unpublish(
        &self,
        id: &ParticipantId,
        stream: &StreamId,
        reason: EndReason,
    ) -> Result<Result<(), MediaError>, RoomGone> {
        let result = self
            .ask(|r| Command::Unpublish(id.clone(), stream.clone(), reason, r))
            .await?;
        Ok(self.settled(result).await)
    }

    /// Records that `id` receives `stream`; returns its publisher, the stream and its
    /// fan-out.
    pub async fn prepare_subscribe(
        &self,
        id: &ParticipantId,
        stream: &StreamId,
        now: i64,
    ) -> Result<Result<(ParticipantId, StreamInfo, StreamOut), MediaError>, RoomGone> {
        match self
            .ask(|r| Command::PrepareSubscribe(id.clone(), stream.clone(), now, r))
            .await?
        {
            Ok((publisher, info, out, durable)) => {
                settle(&self.id, durable).await;
                Ok(Ok((publisher, info, out)))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Hands the room the endpoint `id` receives `stream` on.
    pub async fn attach_subscriber(
        &self,
        id: &ParticipantId,
        stream: StreamId,
        endpoint: Endpoint,
    ) {
        let command = Command::AttachSubscriber(id.clone(), stream, endpoint.clone());
        if self.tx.send(command).await.is_err() {
            endpoint.close();
        }
    }

    /// Stops `id` receiving `stream`.
    pub async fn unsubscribe(
        &self,
        id: &ParticipantId,
        stream: &StreamId,
    ) -> Result<Result<(), MediaError>, RoomGone> {
        let result = self
            .ask(|r| Command::Unsubscribe(id.clone(), stream.clone(), r))
            .await?;
        Ok(self.settled(result).await)
    }

    /// Records and announces a change of `id`'s stream `stream`.
    pub async fn change_stream(
        &self,
        id: &ParticipantId,
        stream: &StreamId,
        change: StreamChange,
        reason: String,
    ) -> Result<Result<(), MediaError>, RoomGone> {
        self.ask(|r| Command::ChangeStream(id.clone(), stream.clone(), change, reason, r))
            .await
    }

    /// The endpoint of `id`'s peer connection `leg`.
    pub async fn endpoint_for(
        &self,
        id: &ParticipantId,
        leg: Leg,
    ) -> Result<Option<Endpoint>, RoomGone> {
        self.ask(|r| Command::EndpointFor(id.clone(), leg, r)).await
    }

    /// `id`'s stream `stream`, with its fan-out (for a stream reconnect).
    pub async fn published_stream(
        &self,
        id: &ParticipantId,
        stream: &StreamId,
    ) -> Result<Option<(StreamInfo, StreamOut)>, RoomGone> {
        self.ask(|r| Command::PublishedStream(id.clone(), stream.clone(), r))
            .await
    }

    /// Gives the stream `stream` a new publisher endpoint; the old one closes.
    pub async fn replace_publisher(&self, stream: &StreamId, endpoint: Endpoint) {
        let command = Command::ReplacePublisher(stream.clone(), endpoint.clone());
        if self.tx.send(command).await.is_err() {
            endpoint.close();
        }
    }

    /// Every stream published in the room now.
    pub async fn publishers(&self) -> Result<Vec<Published>, RoomGone> {
        self.ask(Command::Publishers).await
    }

    /// Sends `notice` to the active participants whose role is in `roles`, without waiting
    /// (a room whose command queue is full misses it).
    pub fn notify(&self, notice: Notice, roles: Vec<Role>) {
        let _ = self.tx.try_send(Command::Notify(notice, roles));
    }

    /// Drops expired grants and tells whether the room is garbage.
    pub async fn sweep(&self, now: i64, threshold_ms: i64) -> Result<SweepOutcome, RoomGone> {
        self.ask(|r| Command::Sweep(now, threshold_ms, r)).await
    }
}

/// The task that owns one room's state.
struct RoomTask {
    room: Room,
    store: Store,
    observer: Option<Arc<dyn Observer>>,
    rx: mpsc::Receiver<Command>,
    sinks: HashMap<ParticipantId, Sink>,
    /// Each published stream's publisher endpoint and fan-out.
    publishers: HashMap<StreamId, (Endpoint, StreamOut)>,
    /// Each subscription's endpoint, by subscriber and stream.
    subscribers: HashMap<(ParticipantId, StreamId), Endpoint>,
}

impl RoomTask {
    /// Hands the journal `writes` and what the observer makes of `events`.
    fn journal(&self, events: &[RoomEvent], mut writes: Vec<Write>, now: i64) -> Durable {
        if let Some(observer) = &self.observer
            && !events.is_empty()
        {
            writes.extend(
                observer
                    .changed(&self.room, events, now)
                    .into_iter()
                    .map(Write::Event),
            );
        }
        self.store.enqueue(writes)
    }

    /// Applies `change`, which may close the room, then stores what it did (a room it closed
    /// is deleted with it) and tells the participants; `silent`: no events.
    fn may_close(
        &mut self,
        silent: bool,
        change: impl FnOnce(&mut Room) -> Vec<RoomEvent>,
    ) -> (Vec<RoomEvent>, Durable) {
        let events = change(&mut self.room);
        let writes = self
            .room
            .closed()
            .map(|_| Write::DeleteRoom {
                id: self.room.id().as_str().to_owned(),
            })
            .into_iter()
            .collect();
        let told = if silent { &[][..] } else { &events[..] };
        let stored = self.journal(told, writes, super::now_ms());
        self.deliver(&events);
        (events, stored)
    }

    fn active_ids(&self) -> Vec<ParticipantId> {
        self.room
            .active_participants()
            .map(|p| p.id.clone())
            .collect()
    }

    fn send(&mut self, to: &ParticipantId, notice: &Arc<Notice>) {
        let Some(sink) = self.sinks.get(to) else {
            return;
        };
        if sink.try_send(notice.clone()).is_err() {
            tracing::debug!(participant = %to, "dropping a full or closed notice queue");
            self.sinks.remove(to);
        }
    }

    /// Sends `notice` to every participant in the room but `except`.
    fn send_to_active(&mut self, notice: Notice, except: Option<&ParticipantId>) {
        let notice = Arc::new(notice);
        for to in self.active_ids() {
            if except != Some(&to) {
                self.send(&to, &notice);
            }
        }
    }

    /// Tells each participant concerned what `events` did.
    fn deliver(&mut self, events: &[RoomEvent]) {
        for event in events {
            match event {
                RoomEvent::ParticipantJoined(p) => {
                    let notice = Notice::Joined(p.clone());
                    self.send_to_active(notice, Some(&p.id));
                }
                RoomEvent::ParticipantLeft(p, reason) => {
                    self.send_to_active(Notice::Left(p.id.clone(), *reason), None);
                }
                RoomEvent::ParticipantEvicted(id, reason) => {
                    // Everyone who was in the room hears it, the evicted one included: those
                    // still in it and those who left with this command.
                    let notice = Arc::new(Notice::Evicted(id.clone(), *reason));
                    let mut audience = self.active_ids();
                    audience.extend(events.iter().filter_map(|e| match e {
                        RoomEvent::ParticipantLeft(p, _) => Some(p.id.clone()),
                        _ => None,
                    }));
                    for to in audience {
                        self.send(&to, &notice);
                    }
                }
                RoomEvent::SignalSent {
                    from,
                    to,
                    kind,
                    data,
                } => {
                    let notice = Arc::new(Notice::Signal {
                        from: from.clone(),
                        kind: kind.clone(),
                        data: data.clone(),
                    });
                    for id in to {
                        self.send(id, &notice);
                    }
                }
                RoomEvent::StreamPublished(id, stream) => {
                    let notice = Notice::Published(id.clone(), stream.clone());
                    self.send_to_active(notice, Some(id));
                }
                // A stream that ends with its participant is told by the participant's leaving.
                RoomEvent::StreamUnpublished(id, stream, reason) if reason.ends_stream_only() => {
                    // A forced unpublish is news to the owner too.
                    let except = (*reason == EndReason::Unpublished).then_some(id);
                    let notice = Notice::Unpublished(id.clone(), stream.id.clone(), *reason);
                    self.send_to_active(notice, except);
                }
                RoomEvent::StreamChanged {
                    participant,
                    stream,
                    change,
                    reason,
                } => {
                    let notice = Notice::StreamChanged {
                        participant: participant.clone(),
                        stream: stream.clone(),
                        change: change.clone(),
                        reason: reason.clone(),
                    };
                    self.send_to_active(notice, Some(participant));
                }
                RoomEvent::ParticipantGranted(_)
                | RoomEvent::GrantRevoked(_)
                | RoomEvent::StreamUnpublished(..)
                | RoomEvent::Subscribed { .. }
                | RoomEvent::SubscriptionEnded { .. }
                | RoomEvent::RoomClosed(_) => {}
            }
        }
        // Whoever is no longer in the room hears nothing more.
        let room = &self.room;
        self.sinks
            .retain(|id, _| room.participant(id).is_some_and(|p| p.is_active()));
        self.reconcile_media();
    }

    /// Closes every endpoint the room state no longer accounts for: streams that ended,
    /// participants who left, subscriptions that stopped.
    fn reconcile_media(&mut self) {
        let room = &self.room;
        let ended: Vec<StreamId> = self
            .publishers
            .keys()
            .filter(|stream| room.published(stream).is_none())
            .cloned()
            .collect();
        for stream in ended {
            if let Some((endpoint, _)) = self.publishers.remove(&stream) {
                endpoint.close();
            }
        }
        let publishers = &self.publishers;
        let stale: Vec<(ParticipantId, StreamId)> = self
            .subscribers
            .keys()
            .filter(|(sub, stream)| {
                let subscribed = room
                    .participant(sub)
                    .is_some_and(|p| p.subscriptions().iter().any(|s| &s.stream == stream));
                !subscribed || !publishers.contains_key(stream)
            })
            .cloned()
            .collect();
        for key in stale {
            if let Some(endpoint) = self.subscribers.remove(&key)
                && !self.subscribers.values().any(|e| e.same(&endpoint))
            {
                // Closed when no other subscription rides on the same peer connection.
                endpoint.close();
            }
        }
    }

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
                    let before = self.room.participant(&id).map(|p| (p.role, p.record));
                    let result = self.room.update(&id, role, record).cloned();
                    let stored = result.as_ref().ok().map(|p| {
                        self.store
                            .enqueue(vec![Write::update_participant(self.room.id(), p)])
                    });
                    if let (Some((old_role, old_record)), Ok(p)) = (before, &result) {
                        let mut changes = Vec::new();
                        if p.role != old_role {
                            changes.push(Notice::RoleChanged(p.role));
                        }
                        if p.record != old_record {
                            changes.push(Notice::RecordChanged(p.record));
                        }
                        for notice in changes {
                            self.send(&p.id, &Arc::new(notice));
                        }
                    }
                    let _ = r.send(result.map(|p| (p, stored.expect("stored when updated"))));
                }
                Command::Join(id, now, info, sink, r) => match self.room.join(&id, now, info) {
                    Ok((p, events)) => {
                        let joined = p.clone();
                        let stored = self.journal(
                            &events,
                            vec![Write::update_participant(self.room.id(), &joined)],
                            now,
                        );
                        let others = self
                            .room
                            .active_participants()
                            .filter(|o| o.id != joined.id)
                            .cloned()
                            .collect();
                        if let Some(sink) = sink {
                            self.sinks.insert(joined.id.clone(), sink);
                        }
                        self.deliver(&events);
                        let _ = r.send(Ok((joined, others, stored)));
                    }
                    Err(e) => {
                        let _ = r.send(Err(e));
                    }
                },
                Command::Attach(id, sink, r) => {
                    let active = self.room.participant(&id).is_some_and(|p| p.is_active());
                    if active {
                        self.sinks.insert(id, sink);
                    }
                    let _ = r.send(active);
                }
                Command::Remove(id, reason, r) => {
                    let result = self.room.remove(&id, reason).map(|events| {
                        let mut writes = vec![Write::DeleteParticipant {
                            room: self.room.id().as_str().to_owned(),
                            id: id.as_str().to_owned(),
                        }];
                        if self.room.closed().is_some() {
                            writes.push(Write::DeleteRoom {
                                id: self.room.id().as_str().to_owned(),
                            });
                        }
                        let stored = self.journal(&events, writes, super::now_ms());
                        (events, stored)
                    });
                    if let Ok((events, _)) = &result {
                        self.deliver(events);
                    }
                    let _ = r.send(result);
                }
                Command::Close(reason, silent, r) => {
                    let _ = r.send(self.may_close(silent, |room| room.close(reason)));
                }
                Command::SetOptions(options, r) => {
                    let result = self
                        .room
                        .set_options(options)
                        .map(|()| self.store.enqueue(vec![Write::update_room(&self.room)]));
                    let _ = r.send(result);
                }
                Command::Hold(on, reason, r) => {
                    let _ = r.send(self.may_close(false, |room| room.hold(on, reason)));
                }
                Command::Signal(q, r) => {
                    let result = self.room.signal(q.from, &q.to, q.kind, q.data);
                    let result = result.map(|event| {
                        let stored =
                            self.journal(std::slice::from_ref(&event), Vec::new(), super::now_ms());
                        (event, stored)
                    });
                    if let Ok((event, _)) = &result {
                        self.deliver(std::slice::from_ref(event));
                    }
                    let _ = r.send(result);
                }
                Command::Publish(id, stream, exclusive, endpoint, out, r) => {
                    let stream_id = stream.id.clone();
                    match self.room.publish(&id, stream, exclusive) {
                        Ok(events) => {
                            let stored = self.journal(&events, Vec::new(), super::now_ms());
                            self.publishers.insert(stream_id, (endpoint, out));
                            self.deliver(&events);
                            let _ = r.send(Ok(stored));
                        }
                        Err(e) => {
                            endpoint.close();
                            let _ = r.send(Err(e));
                        }
                    }
                }
                Command::Unpublish(id, stream, reason, r) => {
                    let result = self.room.unpublish(&id, &stream, reason).map(|events| {
                        let stored = self.journal(&events, Vec::new(), super::now_ms());
                        (events, stored)
                    });
                    if let Ok((events, _)) = &result {
                        self.deliver(events);
                    }
                    let _ = r.send(result.map(|(_, stored)| stored));
                }
                Command::PrepareSubscribe(id, stream, now, r) => {
                    // A stream whose fan-out is gone (its media failed) takes no subscriber.
                    let result = match self.publishers.get(&stream) {
                        None if self.room.published(&stream).is_some() => {
                            Err(MediaError::StreamNotFound(stream.clone()))
                        }
                        fan_out => {
                            let out = fan_out.map(|(_, out)| out.clone());
                            self.room
                                .subscribe(&id, &stream, now)
                                .map(|(publisher, events)| {
                                    let stored = self.journal(&events, Vec::new(), now);
                                    let out = out.expect("a published stream has its fan-out");
                                    let info = self
                                        .room
                                        .published(&stream)
                                        .map(|(_, s)| s.clone())
                                        .expect("subscribed to a published stream");
                                    (publisher, info, out, stored)
                                })
                        }
                    };
                    let _ = r.send(result);
                }
                Command::AttachSubscriber(id, stream, endpoint) => {
                    if let Some(old) = self.subscribers.insert((id, stream), endpoint.clone())
                        && !old.same(&endpoint)
                        && !self.subscribers.values().any(|e| e.same(&old))
                    {
                        old.close();
                    }
                    self.reconcile_media();
                }
                Command::Unsubscribe(id, stream, r) => {
                    let result = self
                        .room
                        .unsubscribe(&id, &stream)
                        .map(|events| self.journal(&events, Vec::new(), super::now_ms()));
                    self.reconcile_media();
                    let _ = r.send(result);
                }
                Command::ChangeStream(id, stream, change, reason, r) => {
                    let result = self.room.change_stream(&id, &stream, change, reason);
                    if let Ok(events) = &result {
                        self.deliver(events);
                    }
                    let _ = r.send(result.map(|_| ()));
                }
                Command::EndpointFor(id, leg, r) => {
                    let participant = self.room.participant(&id);
                    let stream = match leg {
                        Leg::Publishing(stream) => participant
                            .and_then(|p| p.stream(&stream))
                            .map(|s| (true, s.id.clone())),
                        Leg::FirstPublished => participant
                            .and_then(|p| p.streams().first())
                            .map(|s| (true, s.id.clone())),
                        Leg::Receiving(stream) => Some((false, stream)),
                        Leg::FirstFrom(publisher) => participant.and_then(|p| {
                            p.subscriptions()
                                .iter()
                                .find(|s| s.publisher == publisher)
                                .map(|s| (false, s.stream.clone()))
                        }),
                    };
                    let endpoint = match stream {
                        Some((true, stream)) => {
                            self.publishers.get(&stream).map(|(e, _)| e.clone())
                        }
                        Some((false, stream)) => self.subscribers.get(&(id, stream)).cloned(),
                        None => None,
                    };
                    let _ = r.send(endpoint);
                }
                Command::PublishedStream(id, stream, r) => {
                    let info = self
                        .room
                        .participant(&id)
                        .and_then(|p| p.stream(&stream))
                        .cloned();
                    let out = self.publishers.get(&stream).map(|(_, o)| o.clone());
                    let _ = r.send(info.zip(out));
                }
                Command::ReplacePublisher(stream, endpoint) => {
                    match self.publishers.get_mut(&stream) {
                        Some((current, _)) => std::mem::replace(current, endpoint).close(),
                        None => endpoint.close(),
                    }
                }
                Command::Publishers(r) => {
                    let published = self
                        .room
                        .streams()
                        .filter_map(|(p, s)| {
                            let (_, out) = self.publishers.get(&s.id)?;
                            Some((p.clone(), s.clone(), out.clone()))
                        })
                        .collect();
                    let _ = r.send(published);
                }
                Command::Notify(notice, roles) => {
                    let notice = Arc::new(notice);
                    let to: Vec<ParticipantId> = self
                        .room
                        .active_participants()
                        .filter(|p| roles.contains(&p.role))
                        .map(|p| p.id.clone())
                        .collect();
                    for id in to {
                        self.send(&id, &notice);
                    }
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
                self.reconcile_media();
                break;
            }
        }
        for (_, (endpoint, _)) in self.publishers.drain() {
            endpoint.close();
        }
        for (_, endpoint) in self.subscribers.drain() {
            endpoint.close();
        }
    }
}
