//! The `Room` state machine.

use super::{
    ActiveInfo, Participant, ParticipantId, ParticipantState, Role, RoomId, RoomOptions,
    StreamInfo, Subscription,
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
    /// Whether the participant was put out rather than leaving: it is told so itself.
    pub fn is_eviction(self) -> bool {
        matches!(
            self,
            EndReason::EvictedByModerator | EndReason::EvictedByApi | EndReason::ClosedByApi
        )
    }
}

/// Something that happened in a room, for the consumers of room events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomEvent {
    /// A participant was granted (pending).
    ParticipantGranted(ParticipantId),
    /// A pending grant was withdrawn before use.
    GrantRevoked(ParticipantId),
    /// A participant joined.
    ParticipantJoined(ParticipantId),
    /// A participant left.
    ParticipantLeft(ParticipantId, EndReason),
    /// A participant was put out (it is told, as are all who were in the room).
    ParticipantEvicted(ParticipantId, EndReason),
    /// The room closed.
    RoomClosed(EndReason),
    /// A participant started publishing its stream.
    StreamPublished(ParticipantId),
    /// A participant's stream ended (the participant stays).
    StreamUnpublished(ParticipantId, EndReason),
    /// A property of a participant's stream changed.
    StreamChanged {
        /// The publisher.
        participant: ParticipantId,
        /// The property, in the client's words.
        property: String,
        /// The new value, as the client encoded it.
        value: String,
        /// Why, in the client's words.
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
    RecipientsNotConnected(Vec<String>),
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
    /// The participant already publishes a stream.
    #[error("participant {0} already publishes a stream")]
    AlreadyPublishing(ParticipantId),
    /// The participant publishes nothing.
    #[error("participant {0} publishes no stream")]
    NotPublishing(ParticipantId),
    /// No such stream in the room.
    #[error("stream {0} is not published in this room")]
    StreamNotFound(String),
    /// The participant does not receive that publisher.
    #[error("not subscribed to {0}")]
    NotSubscribed(String),
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
    pub fn participant(&self, id: &str) -> Option<&Participant> {
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
        if !on && self.ever_active && self.active.is_empty() {
            return self.close(reason);
        }
        Vec::new()
    }

    /// Adds a pending participant (a grant not yet used).
    pub fn grant(&mut self, participant: Participant) -> Result<Vec<RoomEvent>, RoomError> {
        self.open()?;
        if self.participant(participant.id.as_str()).is_some() {
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
        id: &str,
        role: Option<Role>,
        record: Option<bool>,
    ) -> Result<&Participant, RoomError> {
        self.open()?;
        let p = match self.active.get_mut(id) {
            Some(p) => p,
            None => self
                .pending
                .get_mut(id)
                .ok_or_else(|| RoomError::ParticipantNotFound(ParticipantId::new(id)))?,
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
        id: &str,
        now: i64,
        info: ActiveInfo,
    ) -> Result<(&Participant, Vec<RoomEvent>), JoinError> {
        if self.closed.is_some() {
            return Err(JoinError::RoomClosed);
        }
        let Some(expires_at) = self.pending.get(id).map(|p| p.expires_at) else {
            return Err(JoinError::GrantNotPending(ParticipantId::new(id)));
        };
        if now >= expires_at {
            return Err(JoinError::GrantExpired(ParticipantId::new(id)));
        }
        let (key, mut p) = self
            .pending
            .shift_remove_entry(id)
            .expect("the grant was found just above");
        p.state = ParticipantState::Active(info);
        self.ever_active = true;
        let event = RoomEvent::ParticipantJoined(key.clone());
        let p = self.active.entry(key).insert_entry(p).into_mut();
        Ok((p, vec![event]))
    }

    /// Removes a participant: an active one leaves for `reason`, a pending one loses its
    /// grant. When the last active participant leaves, the room closes, unless it is held.
    pub fn remove(&mut self, id: &str, reason: EndReason) -> Result<Vec<RoomEvent>, RoomError> {
        self.open()?;
        if let Some(p) = self.pending.shift_remove(id) {
            return Ok(vec![RoomEvent::GrantRevoked(p.id)]);
        }
        let p = self
            .active
            .shift_remove(id)
            .ok_or_else(|| RoomError::ParticipantNotFound(ParticipantId::new(id)))?;
        if let Some(stream) = p.stream() {
            let stream = stream.id.clone();
            self.drop_subscriptions_to(&stream);
        }
        let mut events = vec![RoomEvent::ParticipantLeft(p.id.clone(), reason)];
        if reason.is_eviction() {
            events.push(RoomEvent::ParticipantEvicted(p.id, reason));
        }
        if self.active.is_empty() && !self.held {
            events.extend(self.close(EndReason::LastParticipantLeft));
        }
        Ok(events)
    }

    /// Closes the room: every active participant leaves with `reason`, grants are dropped.
    pub fn close(&mut self, reason: EndReason) -> Vec<RoomEvent> {
        if self.closed.is_some() {
            return Vec::new();
        }
        let mut events = Vec::new();
        for (id, _) in self.active.drain(..) {
            events.push(RoomEvent::ParticipantLeft(id.clone(), reason));
            if reason.is_eviction() {
                events.push(RoomEvent::ParticipantEvicted(id, reason));
            }
        }
        self.pending.clear();
        self.closed = Some(reason);
        events.push(RoomEvent::RoomClosed(reason));
        events
    }

    fn active_mut(&mut self, id: &str) -> Result<&mut ActiveInfo, MediaError> {
        match self.active.get_mut(id).map(|p| &mut p.state) {
            Some(ParticipantState::Active(a)) => Ok(a),
            _ => Err(MediaError::NotJoined(ParticipantId::new(id))),
        }
    }

    /// Starts `id` publishing `stream`.
    pub fn publish(&mut self, id: &str, stream: StreamInfo) -> Result<Vec<RoomEvent>, MediaError> {
        let role = self
            .active
            .get(id)
            .map(|p| p.role)
            .ok_or_else(|| MediaError::NotJoined(ParticipantId::new(id)))?;
        if !role.can_publish() {
            return Err(MediaError::RoleForbids(role));
        }
        let a = self.active_mut(id)?;
        if a.stream.is_some() {
            return Err(MediaError::AlreadyPublishing(ParticipantId::new(id)));
        }
        a.stream = Some(stream);
        Ok(vec![RoomEvent::StreamPublished(ParticipantId::new(id))])
    }

    /// Ends the stream `id` publishes; every subscription to it ends too.
    pub fn unpublish(&mut self, id: &str, reason: EndReason) -> Result<Vec<RoomEvent>, MediaError> {
        let stream = self
            .active_mut(id)?
            .stream
            .take()
            .ok_or_else(|| MediaError::NotPublishing(ParticipantId::new(id)))?;
        self.drop_subscriptions_to(&stream.id);
        Ok(vec![RoomEvent::StreamUnpublished(
            ParticipantId::new(id),
            reason,
        )])
    }

    fn drop_subscriptions_to(&mut self, stream: &str) {
        for p in self.active.values_mut() {
            if let ParticipantState::Active(a) = &mut p.state {
                a.subscriptions.retain(|s| s.stream != stream);
            }
        }
    }

    /// The publisher of `stream`.
    pub fn publisher_of(&self, stream: &str) -> Option<&Participant> {
        self.active
            .values()
            .find(|p| p.stream().is_some_and(|s| s.id == stream))
    }

    /// Starts `id` receiving `stream`; returns the publisher.
    pub fn subscribe(
        &mut self,
        id: &str,
        stream: &str,
        now: i64,
    ) -> Result<ParticipantId, MediaError> {
        let role = self
            .active
            .get(id)
            .map(|p| p.role)
            .ok_or_else(|| MediaError::NotJoined(ParticipantId::new(id)))?;
        if !role.can_subscribe() {
            return Err(MediaError::RoleForbids(role));
        }
        let publisher = self
            .publisher_of(stream)
            .map(|p| p.id.clone())
            .ok_or_else(|| MediaError::StreamNotFound(stream.to_owned()))?;
        let a = self.active_mut(id)?;
        a.subscriptions.retain(|s| s.publisher != publisher);
        a.subscriptions.push(Subscription {
            stream: stream.to_owned(),
            publisher: publisher.clone(),
            created_at: now,
        });
        Ok(publisher)
    }

    /// Stops `id` receiving what `publisher` publishes.
    pub fn unsubscribe(&mut self, id: &str, publisher: &str) -> Result<(), MediaError> {
        let a = self.active_mut(id)?;
        let before = a.subscriptions.len();
        a.subscriptions
            .retain(|s| s.publisher.as_str() != publisher);
        if a.subscriptions.len() == before {
            return Err(MediaError::NotSubscribed(publisher.to_owned()));
        }
        Ok(())
    }

    /// Records a change of `id`'s stream (mute, dimensions) and announces it.
    pub fn change_stream(
        &mut self,
        id: &str,
        property: &str,
        value: String,
        reason: String,
    ) -> Result<Vec<RoomEvent>, MediaError> {
        let a = self.active_mut(id)?;
        let stream = a
            .stream
            .as_mut()
            .ok_or_else(|| MediaError::NotPublishing(ParticipantId::new(id)))?;
        match property {
            "audioActive" => stream.audio_active = value == "true",
            "videoActive" => stream.video_active = value == "true",
            "videoDimensions" => stream.video_dimensions = value.clone(),
            _ => {}
        }
        Ok(vec![RoomEvent::StreamChanged {
            participant: ParticipantId::new(id),
            property: property.to_owned(),
            value,
            reason,
        }])
    }

    /// Sends a signal to `to` (every active participant when empty).
    pub fn signal(
        &self,
        from: Option<ParticipantId>,
        to: &[String],
        kind: Option<String>,
        data: Option<String>,
    ) -> Result<RoomEvent, SignalError> {
        if !self.is_active() {
            return Err(SignalError::NobodyConnected);
        }
        let recipients: Vec<ParticipantId> = if to.is_empty() {
            self.active.keys().cloned().collect()
        } else {
            let unknown: Vec<String> = to
                .iter()
                .filter(|id| !self.active.contains_key(id.as_str()))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(SignalError::RecipientsNotConnected(unknown));
            }
            to.iter()
                .map(|id| ParticipantId::new(id.as_str()))
                .collect()
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
        self.closed.is_none() && !self.ever_active && now - self.created_at >= threshold_ms
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
        }
    }

    fn info(at: i64) -> ActiveInfo {
        ActiveInfo {
            joined_at: at,
            ip: "127.0.0.1".into(),
            platform: "test".into(),
            client_data: String::new(),
            stream: None,
            subscriptions: Vec::new(),
        }
    }

    fn room() -> Room {
        Room::new(RoomId::new("r"), 1_000, RoomOptions::default())
    }

    #[test]
    fn grant_is_single_use() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        assert!(!r.is_active());
        let (p, ev) = r.join("a", 2_000, info(2_000)).expect("pending grant");
        assert!(p.is_active());
        assert_eq!(
            ev,
            vec![RoomEvent::ParticipantJoined(ParticipantId::new("a"))]
        );
        assert!(r.is_active());
        assert_eq!(
            r.join("a", 2_001, info(2_001)).map(|_| ()),
            Err(JoinError::GrantNotPending(ParticipantId::new("a")))
        );
    }

    #[test]
    fn expired_grant_is_refused_and_pruned() {
        let mut r = room();
        r.grant(pending("a", 5_000)).expect("fresh id");
        r.grant(pending("b", 9_000)).expect("fresh id");
        assert_eq!(
            r.join("a", 5_000, info(5_000)).map(|_| ()),
            Err(JoinError::GrantExpired(ParticipantId::new("a")))
        );
        assert_eq!(
            r.expire_grants(6_000),
            vec![RoomEvent::GrantRevoked(ParticipantId::new("a"))]
        );
        assert!(r.participant("a").is_none());
        assert!(r.participant("b").is_some());
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
            r.remove("zz", EndReason::EvictedByApi),
            Err(RoomError::ParticipantNotFound(ParticipantId::new("zz")))
        );
        assert_eq!(
            r.update("zz", Some(Role::Moderator), None).map(|_| ()),
            Err(RoomError::ParticipantNotFound(ParticipantId::new("zz")))
        );
        let p = r
            .update("a", Some(Role::Moderator), Some(false))
            .expect("exists");
        assert_eq!((p.role, p.record), (Role::Moderator, false));
    }

    #[test]
    fn last_leaver_closes_room_and_closed_room_refuses_everything() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.grant(pending("b", 10_000)).expect("fresh id");
        r.join("a", 2_000, info(2_000)).expect("pending");
        let ev = r.remove("a", EndReason::Left).expect("active");
        assert_eq!(
            ev,
            vec![
                RoomEvent::ParticipantLeft(ParticipantId::new("a"), EndReason::Left),
                RoomEvent::RoomClosed(EndReason::LastParticipantLeft)
            ]
        );
        assert_eq!(r.closed(), Some(EndReason::LastParticipantLeft));
        assert_eq!(r.grant(pending("c", 10)), Err(RoomError::Closed));
        assert_eq!(
            r.join("b", 2_000, info(2_000)).map(|_| ()),
            Err(JoinError::RoomClosed)
        );
        assert!(r.close(EndReason::ClosedByApi).is_empty());
    }

    #[test]
    fn a_held_room_outlives_its_last_participant_until_released() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.grant(pending("b", 10_000)).expect("fresh id");
        r.join("a", 2_000, info(2_000)).expect("pending");
        assert!(r.hold(true, EndReason::RecordingEnded).is_empty());
        let ev = r.remove("a", EndReason::Left).expect("active");
        assert_eq!(
            ev,
            vec![RoomEvent::ParticipantLeft(
                ParticipantId::new("a"),
                EndReason::Left
            )]
        );
        assert_eq!(r.closed(), None);
        // Someone may still come back while it is held.
        r.join("b", 3_000, info(3_000)).expect("still open");
        r.remove("b", EndReason::Left).expect("active");
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
            r.remove("a", EndReason::EvictedByApi),
            Ok(vec![RoomEvent::GrantRevoked(ParticipantId::new("a"))])
        );
        assert_eq!(r.closed(), None);
    }

    #[test]
    fn close_evicts_active_participants() {
        let mut r = room();
        r.grant(pending("a", 10_000)).expect("fresh id");
        r.grant(pending("b", 10_000)).expect("fresh id");
        r.join("a", 2_000, info(2_000)).expect("pending");
        assert_eq!(
            r.close(EndReason::ClosedByApi),
            vec![
                RoomEvent::ParticipantLeft(ParticipantId::new("a"), EndReason::ClosedByApi),
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
        r.join("a", 2_000, info(2_000)).expect("pending");
        assert_eq!(
            r.signal(None, &["b".into(), "zz".into()], None, None),
            Err(SignalError::RecipientsNotConnected(vec![
                "b".into(),
                "zz".into()
            ]))
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
        r.join("a", 1_200, info(1_200)).expect("pending");
        assert!(!r.is_garbage(5_000, 1_000));
    }
}
