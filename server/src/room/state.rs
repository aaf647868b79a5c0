//! The `Room` state machine.

use super::{
    ActiveInfo, Participant, ParticipantId, ParticipantState, Role, RoomId, RoomOptions,
    StreamChange, StreamId, StreamInfo, Subscription,
};
use indexmap::IndexMap;

/// Why a participant, a stream or a room ended, in the core's words; each door names these
/// in its own protocol in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The participant left by itself.
    Left,
    /// A moderator in the room put the participant out.
    EvictedByModerator,
    /// A server API call put the participant out.
    EvictedByApi,
    /// The room closed because its last participant left.
    LastParticipantLeft,
    /// A server API call closed the room.
    ClosedByApi,
    /// The participant's connection went away and did not come back in time.
    ConnectionLost,
    /// The server is stopping.
    ServerStopped,
    /// The cluster node that had the room died; another node took the room over.
    NodeCrashed,
    /// The publisher stopped its stream.
    Unpublished,
    /// A moderator in the room stopped the stream.
    UnpublishedByModerator,
    /// A server API call stopped the stream.
    UnpublishedByApi,
    /// A recording that kept the empty room open ended.
    RecordingEnded,
}

impl EndReason {
    /// Whether it ends only a stream (its publisher stays in the room).
    pub fn ends_stream_only(self) -> bool {
        matches!(
            self,
            EndReason::Unpublished
                | EndReason::UnpublishedByModerator
                | EndReason::UnpublishedByApi
        )
    }

    /// Whether the participant was put out rather than leaving: it is told so itself.
    pub fn is_eviction(self) -> bool {
        matches!(
            self,
            EndReason::EvictedByModerator
                | EndReason::EvictedByApi
                | EndReason::ClosedByApi
                | EndReason::ServerStopped
        )
    }
}

/// Something that happened in a room, for the consumers of room events (the participants'
/// connections, each door's event renderer, the recording policy). Each event carries what
/// its consumers need, so none of them compares the room before and after a command.
///
/// Order: what a participant's leaving or a stream's end takes with it comes first, in the
/// order it ends: the participant's own subscriptions, then for each of its streams the
/// subscriptions to it and the stream itself, then the participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomEvent {
    /// A participant was granted (pending).
    ParticipantGranted(ParticipantId),
    /// A pending grant was withdrawn before use.
    GrantRevoked(ParticipantId),
    /// A participant joined.
    ParticipantJoined(Box<Participant>),
    /// A participant left; it is given as it was when it left (its media already ended by
    /// the events before this one).
    ParticipantLeft(Box<Participant>, EndReason),
    /// A participant was put out (it is told, as are all who were in the room).
    ParticipantEvicted(ParticipantId, EndReason),
    /// The room closed.
    RoomClosed(EndReason),
    /// A participant started publishing a stream.
    StreamPublished(ParticipantId, StreamInfo),
    /// A participant's stream ended, as it was when it ended.
    StreamUnpublished(ParticipantId, StreamInfo, EndReason),
    /// A participant started receiving a stream.
    Subscribed {
        /// The receiver.
        subscriber: ParticipantId,
        /// The subscription.
        subscription: Subscription,
        /// The stream received.
        stream: StreamInfo,
    },
    /// A participant stopped receiving a stream.
    SubscriptionEnded {
        /// The receiver.
        subscriber: ParticipantId,
        /// The subscription that ended.
        subscription: Subscription,
        /// The stream it received.
        stream: StreamInfo,
        /// Why, when something else ended it (`None`: the receiver unsubscribed, or
        /// subscribed again).
        reason: Option<EndReason>,
    },
    /// A property of a participant's stream changed.
    StreamChanged {
        /// The publisher.
        participant: ParticipantId,
        /// The stream.
        stream: StreamId,
        /// What changed.
        change: StreamChange,
        /// Why, in the client's words (relayed verbatim).
        reason: String,
    },
    /// A signal is to be delivered to active participants.
    SignalSent {
        /// The sender, or `None` for the server API.
        from: Option<ParticipantId>,
        /// The recipients (every active participant when the signal named none).
        to: Vec<ParticipantId>,
        /// The signal's type, relayed verbatim.
        kind: Option<String>,
        /// The signal's payload.
        data: Option<String>,
    },
}

/// A signal that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// Nobody is connected to the room.
    #[error("nobody is connected")]
    NobodyConnected,
    /// Some recipients are not active participants.
    #[error("recipients not connected: {0:?}")]
    RecipientsNotConnected(Vec<ParticipantId>),
}

/// A room command that cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The room is closed.
    #[error("room is closed")]
    Closed,
    /// No such participant in the room.
    #[error("participant {0} not found")]
    ParticipantNotFound(ParticipantId),
    /// A participant with that id already exists.
    #[error("participant {0} already exists")]
    DuplicateParticipant(ParticipantId),
}

/// A media command that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The participant is not in the room.
    #[error("participant {0} is not in the room")]
    NotJoined(ParticipantId),
    /// The participant's role does not allow it.
    #[error("the role {0:?} does not allow this")]
    RoleForbids(Role),
    /// The participant already publishes a stream and asked to publish only one.
    #[error("participant {0} already publishes a stream")]
    AlreadyPublishing(ParticipantId),
    /// A stream with that id is already published.
    #[error("stream {0} is already published")]
    DuplicateStream(StreamId),
    /// The participant does not publish that stream.
    #[error("participant {0} does not publish that stream")]
    NotPublishing(ParticipantId),
    /// No such stream in the room.
    #[error("stream {0} is not published in this room")]
    StreamNotFound(StreamId),
    /// The participant does not receive that stream.
    #[error("not subscribed to {0}")]
    NotSubscribed(StreamId),
    /// The room already has as many streams as its options allow.
    #[error("the room already has its maximum of {0} published streams")]
    PublishersFull(u32),
}

/// A join that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The room is closed.
    #[error("room is closed")]
    RoomClosed,
    /// No pending grant for that participant: never issued, revoked or already used.
    #[error("grant for {0} is unknown or already used")]
    GrantNotPending(ParticipantId),
    /// The grant has expired.
    #[error("grant for {0} has expired")]
    GrantExpired(ParticipantId),
}

/// One room: its options and participants. Owned by exactly one task.
///
/// Active and pending participants are kept apart, so that what concerns the people in the
/// room never walks the (possibly many) grants not yet used.
#[derive(Debug, Clone)]
pub struct Room {
    id: RoomId,
    created_at: i64,
    options: RoomOptions,
    active: IndexMap<ParticipantId, Participant>,
    pending: IndexMap<ParticipantId, Participant>,
    ever_active: bool,
    closed: Option<EndReason>,
    /// A recording keeps the room open after its last participant leaves.
    held: bool,
}

impl Room {
    /// A new room with no participants.
    pub fn new(id: RoomId, created_at: i64, options: RoomOptions) -> Self {
        Self {
            id,
            created_at,
            options,
            active: IndexMap::new(),
            pending: IndexMap::new(),
            ever_active: false,
            closed: None,
            held: false,
        }
    }

    /// The room's id.
    pub fn id(&self) -> &RoomId {
        &self.id
    }
    /// When it was created, ms since the epoch.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
    /// Its options.
    pub fn options(&self) -> &RoomOptions {
        &self.options
    }
    /// Replaces its options (an edit through a door); a closed room refuses.
    pub fn set_options(&mut self, options: RoomOptions) -> Result<(), RoomError> {
        self.open()?;
        self.options = options;
        Ok(())
    }
    /// Whether somebody is in it now.
    pub fn is_active(&self) -> bool {
        !self.active.is_empty()
    }
    /// Why it closed, if it did.
    pub fn closed(&self) -> Option<EndReason> {
        self.closed
    }
    /// Active participants in the order they joined, then pending ones in the order they
    /// were granted.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.active.values().chain(self.pending.values())
    }
    /// Active participants, in the order they joined.
    pub fn active_participants(&self) -> impl Iterator<Item = &Participant> {
        self.active.values()
    }
    /// One participant, active or pending.
    pub fn participant(&self, id: &ParticipantId) -> Option<&Participant> {
        self.active.get(id).or_else(|| self.pending.get(id))
    }

    fn open(&self) -> Result<(), RoomError> {
        match self.closed {
            Some(_) => Err(RoomError::Closed),
            None => Ok(()),
        }
    }

    /// A copy of the room, with its pending participants only when asked for: listings that
    /// show active participants need not copy every outstanding grant.
    pub fn view(&self, with_pending: bool) -> Room {
        Room {
            id: self.id.clone(),
            created_at: self.created_at,
            options: self.options.clone(),
            active: self.active.clone(),
            pending: if with_pending {
                self.pending.clone()
            } else {
                IndexMap::new()
            },
            ever_active: self.ever_active,
            closed: self.closed,
            held: self.held,
        }
    }

    /// Whether a recording keeps the room open.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Keeps the room open after its last participant leaves (a recording runs), or stops
    /// doing so: a room that is empty by then, and was joined, closes for `reason`.
    pub fn hold(&mut self, on: bool, reason: EndReason) -> Vec<RoomEvent> {
        if self.closed.is_some() {
            return Vec::new();
        }
        self.held = on;
        // A server that stops keeps its rooms for the next start.
        if !on && self.ever_active && self.active.is_empty() && reason != EndReason::ServerStopped {
            return self.close(reason);
        }
        Vec::new()
    }

    /// Adds a pending participant (a grant not yet used).
    pub fn grant(&mut self, participant: Participant) -> Result<Vec<RoomEvent>, RoomError> {
        self.open()?;
        if self.participant(&participant.id).is_some() {
            return Err(RoomError::DuplicateParticipant(participant.id));
        }
        let id = participant.id.clone();
        if participant.is_active() {
            self.active.insert(id.clone(), participant);
        } else {
            self.pending.insert(id.clone(), participant);
        }
        Ok(vec![RoomEvent::ParticipantGranted(id)])
    }

    /// Changes the role and recording flag of a participant.
    pub fn update(
        &mut self,
        id: &ParticipantId,
        role: Option<Role>,
        record: Option<bool>,
    ) -> Result<&Participant, RoomError> {
        self.open()?;
        let p = match self.active.get_mut(id) {
            Some(p) => p,
            None => self
                .pending
                .get_mut(id)
                .ok_or_else(|| RoomError::ParticipantNotFound(id.clone()))?,
        };
        if let Some(role) = role {
            p.role = role;
        }
        if let Some(record) = record {
            p.record = record;
        }
        Ok(p)
    }

    /// Uses a pending grant: the participant becomes active.
    pub fn join(
        &mut self,
        id: &ParticipantId,
        now: i64,
        info: ActiveInfo,
    ) -> Result<(&Participant, Vec<RoomEvent>), JoinError> {
        if self.closed.is_some() {
            return Err(JoinError::RoomClosed);
        }
        let Some(expires_at) = self.pending.get(id).map(|p| p.expires_at) else {
            return Err(JoinError::GrantNotPending(id.clone()));
        };
        if now >= expires_at {
            return Err(JoinError::GrantExpired(id.clone()));
        }
        let (key, mut p) = self
            .pending
            .shift_remove_entry(id)
            .expect("the grant was found just above");
        p.state = ParticipantState::Active(info);
        self.ever_active = true;
        let event = RoomEvent::ParticipantJoined(Box::new(p.clone()));
        let p = self.active.entry(key).insert_entry(p).into_mut();
        Ok((p, vec![event]))
    }

    /// Removes a participant: an active one leaves for `reason`, a pending one loses its
    /// grant. When the last active participant leaves, the room closes, unless it is held.
    pub fn remove(
        &mut self,
        id: &ParticipantId,
        reason: EndReason,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        self.open()?;
        if let Some(p) = self.pending.shift_remove(id) {
            return Ok(vec![RoomEvent::GrantRevoked(p.id)]);
        }
        let p = self
            .active
            .shift_remove(id)
            .ok_or_else(|| RoomError::ParticipantNotFound(id.clone()))?;
        let mut events = Vec::new();
        self.leave(p, reason, &mut events);
        // A server that stops puts everyone out but keeps its rooms for the next start.
        if self.active.is_empty()
            && !self.held
            && !self.options.persistent
            && reason != EndReason::ServerStopped
        {
            events.extend(self.close(EndReason::LastParticipantLeft));
        }
        Ok(events)
    }

    /// `p`, just taken out of the room, leaves for `reason`: its subscriptions end, then each
    /// of its streams with the subscriptions to it, then the participant.
    fn leave(&mut self, mut p: Participant, reason: EndReason, events: &mut Vec<RoomEvent>) {
        if let ParticipantState::Active(a) = &mut p.state {
            for subscription in std::mem::take(&mut a.subscriptions) {
                if let Some((_, stream)) = self.published(&subscription.stream) {
                    events.push(RoomEvent::SubscriptionEnded {
                        subscriber: p.id.clone(),
                        stream: stream.clone(),
                        subscription,
                        reason: Some(reason),
                    });
                }
            }
            for stream in std::mem::take(&mut a.streams) {
                self.end_subscriptions_to(&stream, Some(reason), events);
                events.push(RoomEvent::StreamUnpublished(p.id.clone(), stream, reason));
            }
        }
        let id = p.id.clone();
        events.push(RoomEvent::ParticipantLeft(Box::new(p), reason));
        if reason.is_eviction() {
            events.push(RoomEvent::ParticipantEvicted(id, reason));
        }
    }

    /// Closes the room: every active participant leaves with `reason`, grants are dropped.
    pub fn close(&mut self, reason: EndReason) -> Vec<RoomEvent> {
        if self.closed.is_some() {
            return Vec::new();
        }
        let mut events = Vec::new();
        while let Some((_, p)) = self.active.shift_remove_index(0) {
            self.leave(p, reason, &mut events);
        }
        self.pending.clear();
        self.closed = Some(reason);
        events.push(RoomEvent::RoomClosed(reason));
        events
    }

    fn active_mut(&mut self, id: &ParticipantId) -> Result<&mut ActiveInfo, MediaError> {
        match self.active.get_mut(id).map(|p| &mut p.state) {
            Some(ParticipantState::Active(a)) => Ok(a),
            _ => Err(MediaError::NotJoined(id.clone())),
        }
    }

    /// Starts `id` publishing `stream`; `exclusive`: refused when `id` already publishes one
    /// (a door whose protocol has one stream per participant).
    pub fn publish(
        &mut self,
        id: &ParticipantId,
        stream: StreamInfo,
        exclusive: bool,
    ) -> Result<Vec<RoomEvent>, MediaError> {
        let role = self
            .active
            .get(id)
            .map(|p| p.role)
            .ok_or_else(|| MediaError::NotJoined(id.clone()))?;
        if !role.can_publish() {
            return Err(MediaError::RoleForbids(role));
        }
        if self.publisher_of(&stream.id).is_some() {
            return Err(MediaError::DuplicateStream(stream.id));
        }
        if exclusive && self.active.get(id).is_some_and(|p| !p.streams().is_empty()) {
            return Err(MediaError::AlreadyPublishing(id.clone()));
        }
        if let Some(max) = self.options.max_publishers
            && self.streams().count() >= max as usize
        {
            return Err(MediaError::PublishersFull(max));
        }
        let a = self.active_mut(id)?;
        a.streams.push(stream.clone());
        Ok(vec![RoomEvent::StreamPublished(id.clone(), stream)])
    }

    /// Ends `id`'s stream `stream`; every subscription to it ends too.
    pub fn unpublish(
        &mut self,
        id: &ParticipantId,
        stream: &StreamId,
        reason: EndReason,
    ) -> Result<Vec<RoomEvent>, MediaError> {
        let a = self.active_mut(id)?;
        let at = a
            .streams
            .iter()
            .position(|s| &s.id == stream)
            .ok_or_else(|| MediaError::NotPublishing(id.clone()))?;
        let info = a.streams.remove(at);
        let mut events = Vec::new();
        self.end_subscriptions_to(&info, Some(reason), &mut events);
        events.push(RoomEvent::StreamUnpublished(id.clone(), info, reason));
        Ok(events)
    }

    /// Ends every subscription to `stream`, in the order the subscribers joined.
    fn end_subscriptions_to(
        &mut self,
        stream: &StreamInfo,
        reason: Option<EndReason>,
        events: &mut Vec<RoomEvent>,
    ) {
        for p in self.active.values_mut() {
            if let ParticipantState::Active(a) = &mut p.state {
                let (ended, kept) = std::mem::take(&mut a.subscriptions)
                    .into_iter()
                    .partition(|s| s.stream == stream.id);
                a.subscriptions = kept;
                for subscription in ended {
                    events.push(RoomEvent::SubscriptionEnded {
                        subscriber: p.id.clone(),
                        subscription,
                        stream: stream.clone(),
                        reason,
                    });
                }
            }
        }
    }

    /// The publisher of `stream`.
    pub fn publisher_of(&self, stream: &StreamId) -> Option<&Participant> {
        self.active.values().find(|p| p.stream(stream).is_some())
    }

    /// A stream published in the room, with its publisher.
    pub fn published(&self, stream: &StreamId) -> Option<(&Participant, &StreamInfo)> {
        self.active
            .values()
            .find_map(|p| p.stream(stream).map(|s| (p, s)))
    }

    /// Every stream published in the room, with its publisher.
    pub fn streams(&self) -> impl Iterator<Item = (&Participant, &StreamInfo)> {
        self.active
            .values()
            .flat_map(|p| p.streams().iter().map(move |s| (p, s)))
    }

    /// Starts `id` receiving `stream`; returns the publisher and the events. A subscription
    /// to the same stream replaces the earlier one.
    pub fn subscribe(
        &mut self,
        id: &ParticipantId,
        stream: &StreamId,
        now: i64,
    ) -> Result<(ParticipantId, Vec<RoomEvent>), MediaError> {
        let role = self
            .active
            .get(id)
            .map(|p| p.role)
            .ok_or_else(|| MediaError::NotJoined(id.clone()))?;
        if !role.can_subscribe() {
            return Err(MediaError::RoleForbids(role));
        }
        let (publisher, info) = self
            .published(stream)
            .map(|(p, s)| (p.id.clone(), s.clone()))
            .ok_or_else(|| MediaError::StreamNotFound(stream.clone()))?;
        let a = self.active_mut(id)?;
        let mut events = Vec::new();
        if let Some(at) = a.subscriptions.iter().position(|s| &s.stream == stream) {
            events.push(RoomEvent::SubscriptionEnded {
                subscriber: id.clone(),
                subscription: a.subscriptions.remove(at),
                stream: info.clone(),
                reason: None,
            });
        }
        let subscription = Subscription {
            stream: stream.clone(),
            publisher: publisher.clone(),
            created_at: now,
        };
        a.subscriptions.push(subscription.clone());
        events.push(RoomEvent::Subscribed {
            subscriber: id.clone(),
            subscription,
            stream: info,
        });
        Ok((publisher, events))
    }

    /// Stops `id` receiving `stream`.
    pub fn unsubscribe(
        &mut self,
        id: &ParticipantId,
        stream: &StreamId,
    ) -> Result<Vec<RoomEvent>, MediaError> {
        let info = self.published(stream).map(|(_, s)| s.clone());
        let a = self.active_mut(id)?;
        let at = a
            .subscriptions
            .iter()
            .position(|s| &s.stream == stream)
            .ok_or_else(|| MediaError::NotSubscribed(stream.clone()))?;
        let subscription = a.subscriptions.remove(at);
        Ok(info
            .map(|stream| RoomEvent::SubscriptionEnded {
                subscriber: id.clone(),
                subscription,
                stream,
                reason: None,
            })
            .into_iter()
            .collect())
    }

    /// Records a change of `id`'s stream `stream` (mute, size) and announces it.
    pub fn change_stream(
        &mut self,
        id: &ParticipantId,
        stream: &StreamId,
        change: StreamChange,
        reason: String,
    ) -> Result<Vec<RoomEvent>, MediaError> {
        let a = self.active_mut(id)?;
        let info = a
            .streams
            .iter_mut()
            .find(|s| &s.id == stream)
            .ok_or_else(|| MediaError::NotPublishing(id.clone()))?;
        info.apply(&change);
        Ok(vec![RoomEvent::StreamChanged {
            participant: id.clone(),
            stream: stream.clone(),
            change,
            reason,
        }])
    }

    /// Sends a signal to `to` (every active participant when empty).
    pub fn signal(
        &self,
        from: Option<ParticipantId>,
        to: &[ParticipantId],
        kind: Option<String>,
        data: Option<String>,
    ) -> Result<RoomEvent, SignalError> {
        if !self.is_active() {
            return Err(SignalError::NobodyConnected);
        }
        let recipients: Vec<ParticipantId> = if to.is_empty() {
            self.active.keys().cloned().collect()
        } else {
            let unknown: Vec<ParticipantId> = to
                .iter()
                .filter(|id| !self.active.contains_key(*id))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(SignalError::RecipientsNotConnected(unknown));
            }
            to.to_vec()
        };
        Ok(RoomEvent::SignalSent {
            from,
            to: recipients,
            kind,
            data,
        })
    }

    /// Drops pending grants that expired before `now`; returns the events.
    pub fn expire_grants(&mut self, now: i64) -> Vec<RoomEvent> {
        let mut events = Vec::new();
        self.pending.retain(|id, p| {
            let keep = p.expires_at > now;
            if !keep {
                events.push(RoomEvent::GrantRevoked(id.clone()));
            }
            keep
        });
        events
    }

    /// Whether the room never had anybody in it and is older than `threshold_ms` at `now`:
    /// such a room is garbage.
    pub fn is_garbage(&self, now: i64, threshold_ms: i64) -> bool {
        self.closed.is_none()
            && !self.ever_active
            && !self.options.persistent
            && now - self.created_at >= threshold_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, expires_at: i64) -> Participant {
        Participant {
            id: ParticipantId::new(id),
            role: Role::Publisher,
            data: String::new(),
            record: true,
            created_at: 0,
            expires_at,
            grant: format!("grant-{id}"),
            limits: None,
            ice_servers: Vec::new(),
            state: ParticipantState::Pending,
            door_data: Default::default(),
        }
    }

    fn info(at: i64) -> ActiveInfo {
        ActiveInfo {
            joined_at: at,
            ip: "127.0.0.1".into(),
            platform: "test".into(),
            client_data: String::new(),
            door: "test".to_owned(),
            streams: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    fn id(s: &str) -> ParticipantId {
        ParticipantId::new(s)
    }

    fn stream(id: &str) -> StreamInfo {
        StreamInfo {
            id: StreamId::new(id),
            created_at: 0,
            has_audio: true,
            has_video: true,
            audio_active: true,
            video_active: true,
            video_source: super::super::VideoSource::Camera,
            frame_rate: None,
            dimensions: None,
        }
    }

    /// `pending(id, expires_at)` as it is once joined at `at`.
    fn joined(id: &str, expires_at: i64, at: i64) -> Box<Participant> {
        let mut p = pending(id, expires_at);
        p.state = ParticipantState::Active(info(at));
        Box::new(p)
    }

    fn room() -> Room {
        Room::new(RoomId::new("r"), 1_000, RoomOptions::default())
    }

    #[test]
    fn grant_is_single_use() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        assert!(!r.is_active());
        let (p, ev) = r.join(&id("a"), 2_000, info(2_000)).expect("pending grant");
        assert!(p.is_active());
        assert_eq!(
            ev,
            vec![RoomEvent::ParticipantJoined(joined("a", 10_000, 2_000))]
        );
        assert!(r.is_active());
        assert_eq!(
            r.join(&id("a"), 2_001, info(2_001)).map(|_| ()),
            Err(JoinError::GrantNotPending(ParticipantId::new("a")))
        );
    }

    #[test]
    fn expired_grant_is_refused_and_pruned() {
        let mut r = room();
        r.grant(pending("a", 5_000)).expect("fresh id");
        r.grant(pending("b", 9_000)).expect("fresh id");
        assert_eq!(
            r.join(&id("a"), 5_000, info(5_000)).map(|_| ()),
            Err(JoinError::GrantExpired(ParticipantId::new("a")))
        );
        assert_eq!(
            r.expire_grants(6_000),
            vec![RoomEvent::GrantRevoked(ParticipantId::new("a"))]
        );
        assert!(r.participant(&id("a")).is_none());
        assert!(r.participant(&id("b")).is_some());
    }

    #[test]
    fn duplicate_and_unknown_participants() {
        let mut r = room();
        r.grant(pending("a", 10)).expect("fresh id");
        assert_eq!(
            r.grant(pending("a", 10)),
            Err(RoomError::DuplicateParticipant(ParticipantId::new("a")))
        );
        assert_eq!(
            r.remove(&id("zz"), EndReason::EvictedByApi),
            Err(RoomError::ParticipantNotFound(ParticipantId::new("zz")))
        );
        assert_eq!(
            r.update(&id("zz"), Some(Role::Moderator), None).map(|_| ()),
            Err(RoomError::ParticipantNotFound(ParticipantId::new("zz")))
        );
        let p = r
            .update(&id("a"), Some(Role::Moderator), Some(false))
            .expect("exists");
        assert_eq!((p.role, p.record), (Role::Moderator, false));
    }

    #[test]
    fn a_persistent_room_outlives_its_participants_and_caps_its_publishers() {
        let options = RoomOptions {
            persistent: true,
            max_publishers: Some(1),
            ..RoomOptions::default()
        };
        let mut r = Room::new(RoomId::new("1234"), 1_000, options);
        assert!(!r.is_garbage(1_000_000, 1_000), "never swept");
        for p in ["a", "b"] {
            r.grant(pending(p, 10_000)).expect("fresh id");
            r.join(&id(p), 2_000, info(2_000)).expect("pending");
        }
        r.publish(&id("a"), stream("cam"), true).expect("the first");
        assert_eq!(
            r.publish(&id("b"), stream("cam2"), true),
            Err(MediaError::PublishersFull(1))
        );
        r.remove(&id("a"), EndReason::Left).expect("active");
        r.publish(&id("b"), stream("cam2"), true)
            .expect("room for one again");
        let ev = r.remove(&id("b"), EndReason::Left).expect("active");
        assert!(!ev.iter().any(|e| matches!(e, RoomEvent::RoomClosed(_))));
        assert_eq!(r.closed(), None, "open with nobody in it");
        let mut edited = r.options().clone();
        edited.description = Some("renamed".into());
        r.set_options(edited).expect("open");
        assert_eq!(r.options().description.as_deref(), Some("renamed"));
        r.close(EndReason::ClosedByApi);
        assert_eq!(
            r.set_options(RoomOptions::default()),
            Err(RoomError::Closed)
        );
    }

    #[test]
    fn last_leaver_closes_room_and_closed_room_refuses_everything() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.grant(pending("b", 10_000)).expect("fresh id");
        r.join(&id("a"), 2_000, info(2_000)).expect("pending");
        let ev = r.remove(&id("a"), EndReason::Left).expect("active");
        assert_eq!(
            ev,
            vec![
                RoomEvent::ParticipantLeft(joined("a", 10_000, 2_000), EndReason::Left),
                RoomEvent::RoomClosed(EndReason::LastParticipantLeft)
            ]
        );
        assert_eq!(r.closed(), Some(EndReason::LastParticipantLeft));
        assert_eq!(r.grant(pending("c", 10)), Err(RoomError::Closed));
        assert_eq!(
            r.join(&id("b"), 2_000, info(2_000)).map(|_| ()),
            Err(JoinError::RoomClosed)
        );
        assert!(r.close(EndReason::ClosedByApi).is_empty());
    }

    #[test]
    fn a_held_room_outlives_its_last_participant_until_released() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.grant(pending("b", 10_000)).expect("fresh id");
        r.join(&id("a"), 2_000, info(2_000)).expect("pending");
        assert!(r.hold(true, EndReason::RecordingEnded).is_empty());
        let ev = r.remove(&id("a"), EndReason::Left).expect("active");
        assert_eq!(
            ev,
            vec![RoomEvent::ParticipantLeft(
                joined("a", 10_000, 2_000),
                EndReason::Left
            )]
        );
        assert_eq!(r.closed(), None);
        // Someone may still come back while it is held.
        r.join(&id("b"), 3_000, info(3_000)).expect("still open");
        r.remove(&id("b"), EndReason::Left).expect("active");
        assert_eq!(
            r.hold(false, EndReason::RecordingEnded),
            vec![RoomEvent::RoomClosed(EndReason::RecordingEnded)]
        );
        assert_eq!(r.closed(), Some(EndReason::RecordingEnded));
        // A room released with people in it stays open; one never joined is not closed.
        let mut r = room();
        r.hold(true, EndReason::RecordingEnded);
        assert!(r.hold(false, EndReason::RecordingEnded).is_empty());
        assert_eq!(r.closed(), None);
    }

    #[test]
    fn revoking_a_grant_does_not_close_room() {
        let mut r = room();
        r.grant(pending("a", 10)).expect("fresh id");
        assert_eq!(
            r.remove(&id("a"), EndReason::EvictedByApi),
            Ok(vec![RoomEvent::GrantRevoked(ParticipantId::new("a"))])
        );
        assert_eq!(r.closed(), None);
    }

    #[test]
    fn close_evicts_active_participants() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.grant(pending("b", 10_000)).expect("fresh id");
        r.join(&id("a"), 2_000, info(2_000)).expect("pending");
        assert_eq!(
            r.close(EndReason::ClosedByApi),
            vec![
                RoomEvent::ParticipantLeft(joined("a", 10_000, 2_000), EndReason::ClosedByApi),
                RoomEvent::ParticipantEvicted(ParticipantId::new("a"), EndReason::ClosedByApi),
                RoomEvent::RoomClosed(EndReason::ClosedByApi)
            ]
        );
        assert_eq!(r.participants().count(), 0);
    }

    #[test]
    fn signals_go_to_active_participants_only() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.grant(pending("b", 10_000)).expect("fresh id");
        assert_eq!(
            r.signal(None, &[], None, None),
            Err(SignalError::NobodyConnected)
        );
        r.join(&id("a"), 2_000, info(2_000)).expect("pending");
        assert_eq!(
            r.signal(None, &[id("b"), id("zz")], None, None),
            Err(SignalError::RecipientsNotConnected(vec![id("b"), id("zz")]))
        );
        assert_eq!(
            r.signal(None, &[], Some("chat".into()), Some("hi".into())),
            Ok(RoomEvent::SignalSent {
                from: None,
                to: vec![ParticipantId::new("a")],
                kind: Some("chat".into()),
                data: Some("hi".into())
            })
        );
    }

    #[test]
    fn garbage_means_never_active_and_old() {
        let mut r = room();
        assert!(!r.is_garbage(1_500, 1_000));
        assert!(r.is_garbage(2_000, 1_000));
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.join(&id("a"), 1_200, info(1_200)).expect("pending");
        assert!(!r.is_garbage(5_000, 1_000));
    }

    #[test]
    fn a_participant_publishes_several_streams_and_each_has_its_subscribers() {
        let mut r = room();
        for p in ["a", "b"] {
            r.grant(pending(p, 10_000)).expect("fresh id");
            r.join(&id(p), 2_000, info(2_000)).expect("pending");
        }
        let (cam, screen) = (StreamId::new("cam"), StreamId::new("screen"));
        assert_eq!(
            r.publish(&id("a"), stream("cam"), false),
            Ok(vec![RoomEvent::StreamPublished(id("a"), stream("cam"))])
        );
        r.publish(&id("a"), stream("screen"), false)
            .expect("a second stream");
        // A door with one stream per participant asks for exclusivity.
        assert_eq!(
            r.publish(&id("a"), stream("third"), true),
            Err(MediaError::AlreadyPublishing(id("a")))
        );
        assert_eq!(
            r.publish(&id("b"), stream("cam"), false),
            Err(MediaError::DuplicateStream(cam.clone()))
        );
        assert_eq!(
            r.subscribe(&id("b"), &cam, 3_000).map(|(p, _)| p),
            Ok(id("a"))
        );
        assert_eq!(
            r.subscribe(&id("b"), &screen, 3_000).map(|(p, _)| p),
            Ok(id("a"))
        );
        assert_eq!(
            r.participant(&id("b")).map(|p| p.subscriptions().len()),
            Some(2)
        );
        // Ending one stream ends only its subscriptions.
        r.unpublish(&id("a"), &screen, EndReason::Unpublished)
            .expect("published");
        let subs = r
            .participant(&id("b"))
            .expect("in")
            .subscriptions()
            .to_vec();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].stream, cam);
        assert_eq!(
            r.unsubscribe(&id("b"), &screen),
            Err(MediaError::NotSubscribed(screen.clone()))
        );
        // Typed property changes land on the stream they name.
        let d = super::super::Dimensions {
            width: 640,
            height: 480,
        };
        r.change_stream(
            &id("a"),
            &cam,
            StreamChange::Dimensions(d),
            "screenResized".into(),
        )
        .expect("published");
        r.change_stream(
            &id("a"),
            &cam,
            StreamChange::AudioActive(false),
            String::new(),
        )
        .expect("published");
        let (_, info) = r.published(&cam).expect("published");
        assert_eq!((info.dimensions, info.audio_active), (Some(d), false));
        assert_eq!(
            r.change_stream(
                &id("a"),
                &screen,
                StreamChange::VideoActive(false),
                String::new()
            )
            .map(|_| ()),
            Err(MediaError::NotPublishing(id("a")))
        );
    }

    /// A short name for each event, to read an event sequence at a glance.
    fn said(events: &[RoomEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                RoomEvent::Subscribed {
                    subscriber, stream, ..
                } => format!("subscribed {subscriber} {}", stream.id),
                RoomEvent::SubscriptionEnded {
                    subscriber,
                    stream,
                    reason,
                    ..
                } => format!("unsubscribed {subscriber} {} {reason:?}", stream.id),
                RoomEvent::StreamUnpublished(p, s, reason) => {
                    format!("unpublished {p} {} {reason:?}", s.id)
                }
                RoomEvent::ParticipantLeft(p, reason) => format!("left {} {reason:?}", p.id),
                RoomEvent::ParticipantEvicted(p, reason) => format!("evicted {p} {reason:?}"),
                RoomEvent::RoomClosed(reason) => format!("closed {reason:?}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn what_ends_is_told_once_in_the_order_it_ends() {
        let mut r = room();
        for p in ["a", "b", "c"] {
            r.grant(pending(p, 10_000)).expect("fresh id");
            r.join(&id(p), 2_000, info(2_000)).expect("pending");
        }
        r.publish(&id("a"), stream("a1"), false)
            .expect("a publishes");
        r.publish(&id("b"), stream("b1"), false)
            .expect("b publishes");
        for (sub, s) in [("a", "b1"), ("b", "a1"), ("c", "a1"), ("c", "b1")] {
            r.subscribe(&id(sub), &StreamId::new(s), 3_000)
                .expect("published");
        }
        // Subscribing again to the same stream replaces the subscription.
        let (_, again) = r
            .subscribe(&id("c"), &StreamId::new("b1"), 3_500)
            .expect("published");
        assert_eq!(said(&again), ["unsubscribed c b1 None", "subscribed c b1"]);
        // Leaving: its own subscriptions, then its stream's subscribers and the stream.
        let ev = r.remove(&id("a"), EndReason::EvictedByApi).expect("in");
        assert_eq!(
            said(&ev),
            [
                "unsubscribed a b1 Some(EvictedByApi)",
                "unsubscribed b a1 Some(EvictedByApi)",
                "unsubscribed c a1 Some(EvictedByApi)",
                "unpublished a a1 EvictedByApi",
                "left a EvictedByApi",
                "evicted a EvictedByApi",
            ]
        );
        // Closing: each participant in the order they joined; nothing twice.
        let ev = r.close(EndReason::ClosedByApi);
        assert_eq!(
            said(&ev),
            [
                "unsubscribed c b1 Some(ClosedByApi)",
                "unpublished b b1 ClosedByApi",
                "left b ClosedByApi",
                "evicted b ClosedByApi",
                "left c ClosedByApi",
                "evicted c ClosedByApi",
                "closed ClosedByApi",
            ]
        );
    }
}
