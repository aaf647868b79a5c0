//! The call layer: everything a user would call "the server", written once for every door.
//!
//! A door (OpenVidu's JSON-RPC and REST, later Janus and OpenTok) translates its wire
//! protocol into calls on [`Calls`] and renders what comes back; it decides nothing. This
//! layer owns the call flows: admission (a signed grant, or a door's own rule), publish,
//! subscribe, unpublish, unsubscribe, reconnecting a stream, changing a stream's properties,
//! moderation, signals, and keeping a participant through a dropped connection. It also owns
//! the media policies those flows apply: the room's one video codec and the bitrate caps.
//!
//! Layer rule: `calls` names no door and no wire format; doors import it, never the other way
//! round. It reaches the room through `rooms` and media through `media`.
//!
//! Invariant most likely to be broken: a flow that asks the media loop for an endpoint hands
//! it to the room task (or drops it) before returning, so a failed or abandoned call leaves no
//! peer connection behind.

pub mod recording;

use crate::media::{Description, Endpoint, Media, VideoChoice};
use crate::room::{
    ActiveInfo, EndReason, MediaError as RoomMediaError, Participant, ParticipantId, Role, Room,
    RoomId, StreamChange, StreamId, StreamInfo, VideoCodec,
};
pub use crate::rooms::Leg;
use crate::rooms::{AdmitError, RoomHandle, Rooms, SignalRequest, Sink};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The media policies every door's flows apply.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The most video kbps the server takes from a publisher unless its grant says
    /// otherwise; 0 = unlimited.
    pub default_max_recv_kbps: u32,
    /// How long a participant whose connection dropped stays in its room for a resume.
    pub reconnect_grace: Duration,
    /// STUN and TURN servers handed to a participant whose grant names none.
    pub default_ice_servers: Vec<crate::room::IceServer>,
}

/// What a backend asks for when it grants a participant entry to a room.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    /// The participant's id, chosen by the door (unique in the room).
    pub id: ParticipantId,
    /// What it may do.
    pub role: Role,
    /// Data shown to the others.
    pub data: String,
    /// Whether its streams are recorded by individual recordings.
    pub record: bool,
    /// Bandwidth limits and filters.
    pub limits: Option<crate::room::MediaLimits>,
    /// STUN and TURN servers for it; `None`: the policy's defaults.
    pub ice_servers: Option<Vec<crate::room::IceServer>>,
}

/// A call that cannot be carried out, in the call layer's words; each door maps these to
/// its own error codes in one table.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The room closed, or never existed.
    #[error("the room is closed")]
    RoomGone,
    /// The participant's role does not allow the call.
    #[error("the role {0:?} does not allow this")]
    RoleForbids(Role),
    /// The room refused the media command.
    #[error(transparent)]
    Room(#[from] RoomMediaError),
    /// The media stack could not negotiate (bad SDP, a stack failure).
    #[error("{0}")]
    Negotiation(String),
    /// The participant has no such peer connection.
    #[error("no media endpoint for {0:?}")]
    NoEndpoint(Leg),
    /// The participant named is not in the room.
    #[error("participant '{0}' is not in the room")]
    NotInRoom(ParticipantId),
    /// No stream of that id is published in the room.
    #[error("stream '{0}' is not published")]
    StreamNotPublished(StreamId),
    /// The room or the store refused the change.
    #[error(transparent)]
    Rooms(#[from] crate::rooms::RoomsError),
    /// The signal cannot be sent.
    #[error(transparent)]
    Signal(#[from] crate::room::SignalError),
}

impl From<crate::rooms::RoomGone> for CallError {
    fn from(_: crate::rooms::RoomGone) -> Self {
        CallError::RoomGone
    }
}

impl From<crate::media::MediaError> for CallError {
    fn from(e: crate::media::MediaError) -> Self {
        CallError::Negotiation(e.to_string())
    }
}

/// Where the server's candidates go when it makes an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidates {
    /// In the SDP (a door without trickle, such as Janus's usual flow).
    InSdp,
    /// Out of band: the door trickles them from the returned list.
    Trickled,
}

/// The kinds of media a client asks to receive from a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds {
    /// Its audio.
    pub audio: bool,
    /// Its video.
    pub video: bool,
}

impl Kinds {
    /// Everything the stream carries.
    pub const ALL: Kinds = Kinds {
        audio: true,
        video: true,
    };
}

/// How a participant gets into a room: the protocol-neutral admission call takes one.
pub enum Admission<'a> {
    /// A grant signed by this server (carried in a token a backend obtained).
    Signed(&'a str),
    /// The door admitted the client by its own rule (a room pin, an open room): the
    /// participant is created and joins at once.
    Door {
        /// Its id, chosen by the door (unique in the room).
        id: ParticipantId,
        /// What it may do.
        role: Role,
        /// Data shown to the others.
        data: String,
    },
    /// A credential minted outside this server, which a registered [`CredentialCheck`]
    /// verifies for the room; the participant is created and joins at once.
    Credential(&'a str),
}

/// Checks credentials that were minted outside this server by a backend holding a shared
/// key (such as the tokens an SDK signs locally), for the rooms a door created; registered
/// with [`Calls::accept_credentials`].
pub trait CredentialCheck: Send + Sync {
    /// `None` when `credential` is not of the kind this check knows; otherwise who it
    /// admits to `room` at `now_ms`, or why it is refused.
    fn check(
        &self,
        room: &Room,
        credential: &str,
        now_ms: i64,
    ) -> Option<Result<Entry, EntryRefused>>;
}

/// Who a credential admits.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The new participant's id (unique in the room).
    pub id: ParticipantId,
    /// What it may do.
    pub role: Role,
    /// Data shown to the others.
    pub data: String,
    /// What the door keeps with the participant, by door name.
    pub door_data: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Why a credential is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryRefused {
    /// Malformed, signed with another key, by an unknown issuer, or with values out of range.
    #[error("{0}")]
    Forged(String),
    /// Past its expiry.
    #[error("the credential has expired")]
    Expired,
    /// Valid, but for another room.
    #[error("the credential is for another room")]
    OtherRoom,
}

/// The reason of the stream change that mutes a new stream in a room that mutes newcomers
/// ([`crate::room::RoomOptions::mute_new_audio`]).
pub const MUTED_BY_ROOM: &str = "moderated";

/// The node a signaling connection came through, when another node of a cluster passed it
/// on (a request extension the cluster's routing sets; a door hands it to
/// [`Calls::serve_via`]).
#[derive(Clone, Debug)]
pub struct Via(pub String);

/// The media of members whose signaling another cluster node passes on: that node serves
/// their subscriptions, receiving each stream once over a media relay.
pub trait EdgeMedia: Send + Sync {
    /// Subscribes there to `out` (a stream published here) with the client's `offer`.
    fn subscribe(
        &self,
        out: &crate::media::StreamOut,
        offer: String,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<(Endpoint, Description), crate::media::MediaError>,
    >;
    /// Offers there a subscription to `out` (the kinds `audio` and `video_track`), the
    /// server offering; the client's answer goes to the endpoint.
    fn offer(
        &self,
        out: &crate::media::StreamOut,
        audio: bool,
        video_track: bool,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<(Endpoint, Description), crate::media::MediaError>,
    >;
}

/// What a cluster adds to the call layer.
pub trait ClusterHooks: Send + Sync {
    /// The signaling base URL (`ws://host:port`) of another node that is to carry a new
    /// participant of `room` with `role` (a subscriber of a room with `subscribers` already),
    /// or `None`: this node.
    fn place(
        &self,
        room: &str,
        role: Role,
        subscribers: usize,
    ) -> futures_util::future::BoxFuture<'static, Option<String>>;
    /// The media of members whose connection came through node `via`.
    fn edge(&self, via: &str) -> Option<Arc<dyn EdgeMedia>>;
}

/// A participant in a room, as a door holds it: which room, who.
#[derive(Clone)]
pub struct Member {
    /// The room.
    pub room: RoomHandle,
    /// The participant.
    pub participant: ParticipantId,
    /// Its role at join time; permission checks read the current one, since the REST API
    /// may change it.
    pub role: Role,
    /// Where its subscriptions are served when another node passes its signaling on.
    pub via: Option<Arc<dyn EdgeMedia>>,
}

/// Where a participant stands across connections: bumped each time a connection takes it
/// over, so that the grace timer of an older connection knows it lost.
struct Resumable {
    member: Member,
    epoch: u64,
}

/// The protocol-neutral server: rooms, media and the policies (cheap to clone).
#[derive(Clone)]
pub struct Calls {
    inner: Arc<Inner>,
}

struct Inner {
    rooms: Rooms,
    media: Media,
    policy: Policy,
    /// Joined participants a door may resume on a new connection, by the door's resume key.
    resumable: Mutex<HashMap<String, Resumable>>,
    /// The checks of credentials minted outside this server, registered by doors.
    credential_checks: std::sync::RwLock<Vec<Arc<dyn CredentialCheck>>>,
    /// The cluster's hooks, in cluster mode.
    cluster: std::sync::OnceLock<Arc<dyn ClusterHooks>>,
}

/// The video codec a room forwards: its forced codec; VP8 when it forces none, since an SFU
/// that does not transcode needs every peer to agree on one.
pub fn room_video(room: &Room) -> VideoChoice {
    match room.options().forced_video_codec {
        VideoCodec::H264 => VideoChoice::H264,
        VideoCodec::Vp9 => VideoChoice::Vp9,
        _ => VideoChoice::Vp8,
    }
}

/// A new stream id: `str_` + the first three letters of `kind` (what the stream shows, such
/// as `CAMERA`, `SCREEN`, or `MIC` for audio only) + `_` + one letter and three
/// alphanumerics + `_` + the owner's id. OpenVidu clients read ids of this shape, whichever
/// door published the stream.
pub fn new_stream_id(kind: &str, owner: &ParticipantId) -> StreamId {
    use rand::Rng;
    use rand::distr::{Alphanumeric, SampleString};
    let kind: String = kind
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(3)
        .collect::<String>()
        .to_ascii_uppercase();
    let mut rng = rand::rng();
    let first = char::from(b'A' + rng.random_range(0..26u8));
    StreamId::new(format!(
        "str_{kind}_{first}{}_{owner}",
        Alphanumeric.sample_string(&mut rng, 3)
    ))
}

impl Calls {
    /// The call layer over `rooms` and `media` with `policy`.
    pub fn new(rooms: Rooms, media: Media, policy: Policy) -> Self {
        Self {
            inner: Arc::new(Inner {
                rooms,
                media,
                policy,
                resumable: Mutex::new(HashMap::new()),
                credential_checks: std::sync::RwLock::new(Vec::new()),
                cluster: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Takes the cluster's hooks (cluster mode; once).
    pub fn join_cluster(&self, hooks: Arc<dyn ClusterHooks>) {
        let _ = self.inner.cluster.set(hooks);
    }

    /// The signaling base URL of another node that is to carry a new participant of `room`
    /// with `role` (the cluster spreads a large room's subscribers), or `None`: this node.
    pub async fn signaling_node(&self, room: &RoomHandle, role: Role) -> Option<String> {
        let hooks = self.inner.cluster.get()?.clone();
        let subscribers = room.snapshot(true).await.ok().map_or(0, |r| {
            r.participants()
                .filter(|p| p.role == Role::Subscriber)
                .count()
        });
        hooks.place(room.id().as_str(), role, subscribers).await
    }

    /// `m`'s connection came through cluster node `via`: its subscriptions are served
    /// there from now on.
    pub fn serve_via(&self, m: &mut Member, via: &Via) {
        m.via = self.inner.cluster.get().and_then(|h| h.edge(&via.0));
    }

    /// The live rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    /// The media loop.
    pub fn media(&self) -> &Media {
        &self.inner.media
    }

    /// The policies applied.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    fn resumable(&self) -> std::sync::MutexGuard<'_, HashMap<String, Resumable>> {
        // Every critical section is one map call; a panic cannot leave it half-changed.
        self.inner
            .resumable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a client into `room`: the one admission call of every door. Notices for the
    /// participant go to `sink`. Returns the member, the participant and the others in the
    /// room.
    pub async fn join(
        &self,
        room: &RoomId,
        admission: Admission<'_>,
        info: ActiveInfo,
        sink: Sink,
    ) -> Result<(Member, Participant, Vec<Participant>), AdmitError> {
        let (handle, me, others) = match admission {
            Admission::Signed(signed) => {
                self.inner
                    .rooms
                    .admit(room, signed, info, Some(sink))
                    .await?
            }
            Admission::Door { id, role, data } => {
                let participant = Self::admitted(id, role, data, Vec::new());
                self.inner
                    .rooms
                    .admit_by_door(room, participant, info, sink)
                    .await?
            }
            Admission::Credential(credential) => {
                let handle = self.inner.rooms.get(room).ok_or(AdmitError::RoomNotFound)?;
                let snapshot = handle
                    .snapshot(false)
                    .await
                    .map_err(|_| AdmitError::RoomNotFound)?;
                let entry = self.check_credential(&snapshot, credential)?;
                let mut participant = Self::admitted(
                    entry.id,
                    entry.role,
                    entry.data,
                    self.inner.policy.default_ice_servers.clone(),
                );
                participant.door_data = entry.door_data;
                self.inner
                    .rooms
                    .admit_by_door(room, participant, info, sink)
                    .await?
            }
        };
        let member = Member {
            room: handle,
            participant: me.id.clone(),
            role: me.role,
            via: None,
        };
        tracing::info!(room = %room, participant = %me.id, role = ?me.role, "joined");
        Ok((member, me, others))
    }

    /// A participant a door admits at once (never left pending).
    fn admitted(
        id: ParticipantId,
        role: Role,
        data: String,
        ice_servers: Vec<crate::room::IceServer>,
    ) -> Participant {
        let now = crate::rooms::now_ms();
        Participant {
            id,
            role,
            data,
            record: true,
            created_at: now,
            // Used at once by the join; never left pending.
            expires_at: now.saturating_add(60_000),
            grant: String::new(),
            limits: None,
            ice_servers,
            state: crate::room::ParticipantState::Pending,
            door_data: Default::default(),
        }
    }

    /// Accepts credentials minted outside this server that `check` knows (a door's SDK
    /// tokens) at every door's join.
    pub fn accept_credentials(&self, check: Arc<dyn CredentialCheck>) {
        self.inner
            .credential_checks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(check);
    }

    /// What the registered checks say of `credential` for `room`: the first check that
    /// knows the credential decides.
    fn check_credential(&self, room: &Room, credential: &str) -> Result<Entry, AdmitError> {
        let now = crate::rooms::now_ms();
        let checks = self
            .inner
            .credential_checks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let verdict = checks
            .iter()
            .find_map(|c| c.check(room, credential, now))
            .unwrap_or_else(|| {
                Err(EntryRefused::Forged(
                    "neither a token of this server nor one of a configured project".into(),
                ))
            });
        verdict.map_err(|e| match e {
            EntryRefused::Forged(why) => AdmitError::Grant(crate::grant::GrantError::Invalid(why)),
            EntryRefused::Expired => AdmitError::Grant(crate::grant::GrantError::Expired),
            EntryRefused::OtherRoom => AdmitError::WrongRoom,
        })
    }

    /// Grants a participant entry to `room`: a signed grant that expires after the grant
    /// lifetime, handed to `credential` for the door to wrap (OpenVidu: its token URL); the
    /// pending participant is stored, then live. Returns it with its credential.
    pub async fn grant(
        &self,
        room: &RoomHandle,
        request: GrantRequest,
        credential: impl FnOnce(&str) -> String,
    ) -> Result<Participant, crate::rooms::RoomsError> {
        let rooms = &self.inner.rooms;
        let now = crate::rooms::now_ms();
        let ttl = i64::try_from(rooms.lifetimes().grant_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl);
        let signed = rooms.grant_key().sign(&crate::grant::Grant {
            room: room.id().clone(),
            sub: request.id.clone(),
            role: request.role,
            data: request.data.clone(),
            iat: now / 1000,
            exp: expires_at / 1000,
        });
        let participant = Participant {
            id: request.id,
            role: request.role,
            data: request.data,
            record: request.record,
            created_at: now,
            expires_at,
            grant: credential(&signed),
            limits: request.limits,
            ice_servers: request
                .ice_servers
                .unwrap_or_else(|| self.inner.policy.default_ice_servers.clone()),
            state: crate::room::ParticipantState::Pending,
            door_data: Default::default(),
        };
        rooms.grant(room, participant.clone()).await?;
        Ok(participant)
    }

    /// Keeps `member` resumable under `key` (a door's own id for the joined connection).
    pub fn keep_resumable(&self, key: &str, member: &Member) {
        self.resumable().insert(
            key.to_owned(),
            Resumable {
                member: member.clone(),
                epoch: 0,
            },
        );
    }

    /// Forgets the resume key of a participant that left for good.
    pub fn forget(&self, key: &str) {
        self.resumable().remove(key);
    }

    /// Resumes the participant kept under `key` on a new connection whose notices go to
    /// `sink`; `None` when there is none to resume (never kept, left, or evicted). The new
    /// connection may come through another cluster node than the old one (`via`; `None`:
    /// straight to this node): its subscriptions are served where it came through from now
    /// on, so a client whose node died gets its media again from the node it reconnected to.
    pub async fn resume(&self, key: &str, sink: Sink, via: Option<&Via>) -> Option<(Member, u64)> {
        let edge = via.and_then(|v| self.inner.cluster.get().and_then(|h| h.edge(&v.0)));
        let taken = self.resumable().get_mut(key).map(|r| {
            r.epoch += 1;
            r.member.via = edge;
            (r.member.clone(), r.epoch)
        });
        let (member, epoch) = taken?;
        match member.room.attach(&member.participant, sink).await {
            Ok(true) => Some((member, epoch)),
            _ => {
                self.forget(key);
                None
            }
        }
    }

    /// The connection of the participant kept under `key` (taken over at `epoch`) is gone:
    /// it stays in its room for the reconnect grace, and leaves with `NetworkDisconnect` if
    /// no connection resumes it by then.
    pub fn connection_lost(&self, key: String, epoch: u64) {
        let calls = self.clone();
        let grace = self.inner.policy.reconnect_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let member = {
                let mut map = calls.resumable();
                match map.get(&key) {
                    Some(r) if r.epoch == epoch => map.remove(&key).map(|r| r.member),
                    _ => None,
                }
            };
            if let Some(m) = member {
                let _ = calls
                    .inner
                    .rooms
                    .remove(&m.room, &m.participant, EndReason::ConnectionLost)
                    .await;
            }
        });
    }

    /// The participant's role now (the REST API may have changed it since the join).
    pub async fn current_role(&self, m: &Member) -> Role {
        self.participant(m).await.map_or(m.role, |p| p.role)
    }

    /// The participant as it is now (its streams, its subscriptions, its role); `None` once
    /// it left.
    pub async fn participant(&self, m: &Member) -> Option<Participant> {
        m.room
            .snapshot(false)
            .await
            .ok()
            .and_then(|r| r.participant(&m.participant).cloned())
    }

    async fn require(&self, m: &Member, allowed: impl Fn(Role) -> bool) -> Result<(), CallError> {
        let role = self.current_role(m).await;
        if allowed(role) {
            Ok(())
        } else {
            Err(CallError::RoleForbids(role))
        }
    }

    /// The participant leaves by itself.
    pub async fn leave(&self, m: &Member) -> Result<(), CallError> {
        self.inner
            .rooms
            .remove(&m.room, &m.participant, EndReason::Left)
            .await
            .map(|_| ())
            .map_err(CallError::from)
    }

    /// The most video kbps the server takes from `m`'s publisher: its grant's limit, else
    /// the policy's default; `None` when that is 0 (unlimited).
    async fn publish_cap(&self, m: &Member) -> Option<u32> {
        let Ok(room) = m.room.snapshot(false).await else {
            return None;
        };
        let own = room
            .participant(&m.participant)
            .and_then(|p| p.limits.as_ref().and_then(|l| l.video_max_recv_kbps));
        let kbps = own.map_or(self.inner.policy.default_max_recv_kbps, |k| {
            u32::try_from(k.max(0)).unwrap_or(u32::MAX)
        });
        let own = (kbps > 0).then_some(kbps);
        match (own, room.options().max_publish_kbps.filter(|k| *k > 0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Caps the video a publisher sends at its receive limit.
    async fn cap(&self, m: &Member, answer: &mut Description) {
        if let Some(kbps) = self.publish_cap(m).await {
            answer.sdp = crate::media::cap_video_bitrate(&answer.sdp, kbps);
        }
    }

    async fn video(&self, room: &RoomHandle) -> VideoChoice {
        room.snapshot(false)
            .await
            .map_or(VideoChoice::Vp8, |r| room_video(&r))
    }

    /// `m` publishes `stream`, offered by the client as `offer`: a publisher peer connection
    /// in the room's codec, its answer capped at the participant's bitrate, with the
    /// server's candidates where `candidates` says. `exclusive`: refused when `m` already
    /// publishes (a door with one stream per participant).
    pub async fn publish(
        &self,
        m: &Member,
        stream: StreamInfo,
        offer: String,
        exclusive: bool,
        candidates: Candidates,
    ) -> Result<Description, CallError> {
        self.require(m, Role::can_publish).await?;
        let (endpoint, out, mut answer) = self
            .inner
            .media
            .publish(
                offer,
                self.video(&m.room).await,
                candidates == Candidates::InSdp,
            )
            .await?;
        self.cap(m, &mut answer).await;
        let id = stream.id.clone();
        let audio = stream.has_audio;
        tracing::info!(room = %m.room.id(), participant = %m.participant, stream = %id, "publishing");
        m.room
            .publish(&m.participant, stream, exclusive, endpoint, out.clone())
            .await??;
        let muted_room = m
            .room
            .snapshot(false)
            .await
            .is_ok_and(|r| r.options().mute_new_audio);
        if audio && muted_room {
            // The room's moderation mutes newcomers: the audio is held back from the start.
            self.inner.media.mute(&out, false, true)?;
            m.room
                .change_stream(
                    &m.participant,
                    &id,
                    StreamChange::AudioActive(false),
                    MUTED_BY_ROOM.to_owned(),
                )
                .await??;
        }
        Ok(answer)
    }

    /// A new publisher peer connection for `m`'s stream `stream` whose media failed; the
    /// subscribers keep theirs and see one continuous stream. `None` when `m` does not
    /// publish that stream.
    pub async fn republish(
        &self,
        m: &Member,
        stream: &StreamId,
        offer: String,
        candidates: Candidates,
    ) -> Result<Option<(StreamInfo, Description)>, CallError> {
        let Some((info, out)) = m.room.published_stream(&m.participant, stream).await? else {
            return Ok(None);
        };
        let (endpoint, mut answer) = self
            .inner
            .media
            .republish(
                &out,
                offer,
                self.video(&m.room).await,
                candidates == Candidates::InSdp,
            )
            .await?;
        self.cap(m, &mut answer).await;
        m.room.replace_publisher(stream, endpoint).await;
        Ok(Some((info, answer)))
    }

    /// `m` receives `stream`, the client offering `offer`; returns the publisher and the
    /// answer (the server's candidates where `candidates` says). A subscription to the same
    /// stream replaces the earlier one.
    pub async fn subscribe(
        &self,
        m: &Member,
        stream: &StreamId,
        offer: String,
        candidates: Candidates,
    ) -> Result<(ParticipantId, Description), CallError> {
        let (publisher, _, out) = m
            .room
            .prepare_subscribe(&m.participant, stream, crate::rooms::now_ms())
            .await??;
        let video = self.video(&m.room).await;
        let in_sdp = candidates == Candidates::InSdp;
        let (endpoint, answer): (Endpoint, Description) = match &m.via {
            Some(edge) => edge.subscribe(&out, offer, video, in_sdp).await?,
            None => {
                self.inner
                    .media
                    .subscribe(&out, offer, video, in_sdp)
                    .await?
            }
        };
        m.room
            .attach_subscriber(&m.participant, stream.clone(), endpoint)
            .await;
        Ok((publisher, answer))
    }

    /// `m` receives `stream`, the server offering: returns the publisher and the offer (one
    /// media section per kind the stream carries and `wanted` asks for, audio first), with
    /// the server's candidates where `candidates` says. The client's answer goes to
    /// [`Calls::answer_subscription`].
    pub async fn offer_subscription(
        &self,
        m: &Member,
        stream: &StreamId,
        wanted: Kinds,
        candidates: Candidates,
    ) -> Result<(ParticipantId, Description), CallError> {
        let (publisher, info, out) = m
            .room
            .prepare_subscribe(&m.participant, stream, crate::rooms::now_ms())
            .await??;
        let (audio, video_track) = (
            info.has_audio && wanted.audio,
            info.has_video && wanted.video,
        );
        let (video, in_sdp) = (self.video(&m.room).await, candidates == Candidates::InSdp);
        let (endpoint, offer) = match &m.via {
            Some(edge) => edge.offer(&out, audio, video_track, video, in_sdp).await?,
            None => {
                self.inner
                    .media
                    .offer(&out, audio, video_track, video, in_sdp)
                    .await?
            }
        };
        m.room
            .attach_subscriber(&m.participant, stream.clone(), endpoint)
            .await;
        Ok((publisher, offer))
    }

    /// The client's answer to the server's offer for the peer connection that carries
    /// `m`'s subscriptions to `any_of` (one of them suffices).
    pub async fn answer_subscription(
        &self,
        m: &Member,
        any_of: &[StreamId],
        answer: String,
    ) -> Result<(), CallError> {
        let endpoint = Self::receiving(m, any_of).await?;
        endpoint.accept_answer(answer).await?;
        Ok(())
    }

    /// The peer connection that carries `m`'s subscription to any of `any_of` (the first
    /// still subscribed).
    async fn receiving(m: &Member, any_of: &[StreamId]) -> Result<Endpoint, CallError> {
        for stream in any_of {
            let leg = Leg::Receiving(stream.clone());
            if let Some(endpoint) = m.room.endpoint_for(&m.participant, leg).await? {
                return Ok(endpoint);
            }
        }
        let named = any_of.first().cloned().unwrap_or_else(|| StreamId::new(""));
        Err(CallError::NoEndpoint(Leg::Receiving(named)))
    }

    /// Asks the publisher of `stream` in `room` for a keyframe (a door's periodic or
    /// requested refresh).
    pub async fn request_keyframe(
        &self,
        room: &RoomHandle,
        stream: &StreamId,
    ) -> Result<(), CallError> {
        let (_, out) = Self::fan_out(room, stream).await?;
        self.inner.media.request_keyframe(&out)?;
        Ok(())
    }

    /// The participant that publishes `stream` in `room`.
    async fn publisher(room: &RoomHandle, stream: &StreamId) -> Result<ParticipantId, CallError> {
        room.snapshot(false)
            .await?
            .publisher_of(stream)
            .map(|p| p.id.clone())
            .ok_or_else(|| CallError::StreamNotPublished(stream.clone()))
    }

    /// The publisher of `stream` in `room` and the stream's fan-out.
    async fn fan_out(
        room: &RoomHandle,
        stream: &StreamId,
    ) -> Result<(ParticipantId, crate::media::StreamOut), CallError> {
        let owner = Self::publisher(room, stream).await?;
        let (_, out) = room
            .published_stream(&owner, stream)
            .await?
            .ok_or_else(|| CallError::StreamNotPublished(stream.clone()))?;
        Ok((owner, out))
    }

    /// Caps the video of `stream` in `room` at `bps` while it is published (the publisher is
    /// told with REMB), or lifts the cap; the cap of the answer stays.
    pub async fn cap_bitrate(
        &self,
        room: &RoomHandle,
        stream: &StreamId,
        bps: Option<u32>,
    ) -> Result<(), CallError> {
        let (_, out) = Self::fan_out(room, stream).await?;
        self.inner.media.cap_bitrate(&out, bps)?;
        Ok(())
    }

    /// Measures the voice activity of `m`'s stream `stream` (see `Media::watch_speech`).
    pub async fn watch_speech(
        &self,
        m: &Member,
        stream: &StreamId,
        every: u32,
        threshold: u8,
    ) -> Result<tokio::sync::watch::Receiver<crate::media::Speech>, CallError> {
        let (_, out) = m
            .room
            .published_stream(&m.participant, stream)
            .await?
            .ok_or_else(|| CallError::StreamNotPublished(stream.clone()))?;
        Ok(self
            .inner
            .media
            .watch_speech(&out, every, threshold)
            .await?)
    }

    /// `m`'s subscription to `stream` stops (`on` false) or resumes sending it the kinds
    /// `kinds` names; the subscription stays.
    pub async fn set_receiving(
        &self,
        m: &Member,
        stream: &StreamId,
        kinds: Kinds,
        on: bool,
    ) -> Result<(), CallError> {
        let leg = Leg::Receiving(stream.clone());
        let endpoint = m
            .room
            .endpoint_for(&m.participant, leg.clone())
            .await?
            .ok_or(CallError::NoEndpoint(leg))?;
        let video = match (kinds.audio, kinds.video) {
            (true, true) => None,
            (false, true) => Some(true),
            (true, false) => Some(false),
            (false, false) => return Ok(()),
        };
        let (_, out) = Self::fan_out(&m.room, stream).await?;
        endpoint.set_sending(Some(&out), video, on)?;
        Ok(())
    }

    /// `m` receives `stream` too, on the peer connection that carries its subscriptions to
    /// `through` (any one of them; the kinds `wanted`): the server's new offer, whose answer
    /// goes to [`Calls::answer_subscription`].
    pub async fn extend_subscription(
        &self,
        m: &Member,
        through: &[StreamId],
        stream: &StreamId,
        wanted: Kinds,
    ) -> Result<(ParticipantId, Description), CallError> {
        let endpoint = Self::receiving(m, through).await?;
        let (publisher, info, out) = m
            .room
            .prepare_subscribe(&m.participant, stream, crate::rooms::now_ms())
            .await??;
        let extended = endpoint
            .extend(
                &out,
                info.has_audio && wanted.audio,
                info.has_video && wanted.video,
                self.video(&m.room).await,
            )
            .await;
        match extended {
            Ok(offer) => {
                m.room
                    .attach_subscriber(&m.participant, stream.clone(), endpoint)
                    .await;
                Ok((publisher, offer))
            }
            Err(e) => {
                // The subscription the room recorded has no media: it ends.
                let _ = m.room.unsubscribe(&m.participant, stream).await;
                Err(e.into())
            }
        }
    }

    /// `m`'s section `mid`, on the peer connection that carries its subscriptions to
    /// `through`, carries `to` from now on (a stream with a track of the same kind); no
    /// renegotiation. `drop` ends the subscription the section carried (when no other
    /// section carries it). Returns the new stream's publisher.
    pub async fn switch_subscription(
        &self,
        m: &Member,
        through: &[StreamId],
        mid: &str,
        to: &StreamId,
        drop: Option<&StreamId>,
    ) -> Result<ParticipantId, CallError> {
        let endpoint = Self::receiving(m, through).await?;
        let (publisher, _, out) = m
            .room
            .prepare_subscribe(&m.participant, to, crate::rooms::now_ms())
            .await??;
        if let Err(e) = endpoint.switch(mid, &out).await {
            let _ = m.room.unsubscribe(&m.participant, to).await;
            return Err(e.into());
        }
        m.room
            .attach_subscriber(&m.participant, to.clone(), endpoint)
            .await;
        if let Some(old) = drop {
            let _ = m.room.unsubscribe(&m.participant, old).await;
        }
        Ok(publisher)
    }

    /// `m` stops receiving `stream` on the peer connection that carries its subscriptions to
    /// `through` (any one of them; `stream` `None`: prunes the streams that ended): the
    /// server's new offer, whose answer goes to [`Calls::answer_subscription`].
    pub async fn shrink_subscription(
        &self,
        m: &Member,
        through: &[StreamId],
        stream: Option<&StreamId>,
    ) -> Result<Description, CallError> {
        let endpoint = Self::receiving(m, through).await?;
        let Some(stream) = stream else {
            return Ok(endpoint.shrink(None).await?);
        };
        let offer = match Self::fan_out(&m.room, stream).await {
            Ok((_, out)) => endpoint.shrink(Some(&out)).await?,
            Err(_) => endpoint.shrink(None).await?,
        };
        let _ = m.room.unsubscribe(&m.participant, stream).await;
        Ok(offer)
    }

    /// `m` stops publishing `stream`.
    pub async fn unpublish(&self, m: &Member, stream: &StreamId) -> Result<(), CallError> {
        m.room
            .unpublish(&m.participant, stream, EndReason::Unpublished)
            .await??;
        Ok(())
    }

    /// `m` stops receiving `stream`.
    pub async fn unsubscribe(&self, m: &Member, stream: &StreamId) -> Result<(), CallError> {
        m.room.unsubscribe(&m.participant, stream).await??;
        Ok(())
    }

    /// `m`'s stream `stream` changed (muted, resized); the room records it and tells the
    /// others.
    pub async fn change_stream(
        &self,
        m: &Member,
        stream: &StreamId,
        change: StreamChange,
        reason: String,
    ) -> Result<(), CallError> {
        m.room
            .change_stream(&m.participant, stream, change, reason)
            .await??;
        Ok(())
    }

    /// A candidate the client trickled for one of `m`'s peer connections.
    pub async fn add_candidate(
        &self,
        m: &Member,
        leg: Leg,
        candidate: String,
        mid: Option<String>,
        index: Option<u16>,
    ) -> Result<(), CallError> {
        let endpoint = m
            .room
            .endpoint_for(&m.participant, leg.clone())
            .await?
            .ok_or(CallError::NoEndpoint(leg))?;
        endpoint.add_candidate(candidate, mid, index).await?;
        Ok(())
    }

    /// A moderator puts `target` out of the room.
    pub async fn force_disconnect(
        &self,
        m: &Member,
        target: &ParticipantId,
    ) -> Result<(), CallError> {
        self.require(m, Role::can_moderate).await?;
        let present = matches!(
            m.room
                .snapshot(false)
                .await
                .map(|r| r.participant(target).is_some()),
            Ok(true)
        );
        if !present {
            return Err(CallError::NotInRoom(target.clone()));
        }
        self.inner
            .rooms
            .remove(&m.room, target, EndReason::EvictedByModerator)
            .await?;
        Ok(())
    }

    /// A moderator stops the stream `stream`.
    pub async fn force_unpublish(&self, m: &Member, stream: &StreamId) -> Result<(), CallError> {
        self.require(m, Role::can_moderate).await?;
        let owner = m
            .room
            .snapshot(false)
            .await
            .ok()
            .and_then(|r| r.publisher_of(stream).map(|p| p.id.clone()))
            .ok_or_else(|| CallError::StreamNotPublished(stream.clone()))?;
        m.room
            .unpublish(&owner, stream, EndReason::UnpublishedByModerator)
            .await??;
        Ok(())
    }

    /// A server API (a backend, not a participant) closes the room.
    pub async fn close_by_api(&self, room: &RoomHandle) -> Result<(), crate::rooms::RoomsError> {
        self.inner
            .rooms
            .close(room, EndReason::ClosedByApi)
            .await
            .map(|_| ())
    }

    /// The server stops: nothing new is admitted (no room, grant or join, in any door), and
    /// every participant is put out with [`EndReason::ServerStopped`] (each door tells its
    /// clients its way); the rooms and pending grants stay stored for the next start.
    pub async fn drain(&self) {
        let rooms = &self.inner.rooms;
        rooms.drain();
        for handle in rooms.all() {
            let Ok(room) = handle.snapshot(false).await else {
                continue;
            };
            for p in room.active_participants() {
                if let Err(e) = rooms.remove(&handle, &p.id, EndReason::ServerStopped).await {
                    tracing::warn!(room = %handle.id(), participant = %p.id, error = %e, "not put out at stop");
                }
            }
        }
    }

    /// A server API puts `id` out of the room, or withdraws its grant.
    pub async fn evict_by_api(
        &self,
        room: &RoomHandle,
        id: &ParticipantId,
    ) -> Result<(), crate::rooms::RoomsError> {
        self.inner
            .rooms
            .remove(room, id, EndReason::EvictedByApi)
            .await
            .map(|_| ())
    }

    /// A server API stops the stream `stream`.
    pub async fn unpublish_by_api(
        &self,
        room: &RoomHandle,
        stream: &StreamId,
    ) -> Result<(), CallError> {
        let owner = Self::publisher(room, stream).await?;
        room.unpublish(&owner, stream, EndReason::UnpublishedByApi)
            .await??;
        Ok(())
    }

    /// A moderator, through a server API, stops (`muted`) or resumes the forwarding of
    /// `stream`'s video (`video`) or audio; the publisher keeps sending, the room records the
    /// stream as inactive (or active again) for the others, for `reason`. Returns the
    /// publisher.
    pub async fn mute_by_api(
        &self,
        room: &RoomHandle,
        stream: &StreamId,
        video: bool,
        muted: bool,
        reason: &str,
    ) -> Result<ParticipantId, CallError> {
        let (owner, out) = Self::fan_out(room, stream).await?;
        self.inner.media.mute(&out, video, muted)?;
        let change = if video {
            StreamChange::VideoActive(!muted)
        } else {
            StreamChange::AudioActive(!muted)
        };
        room.change_stream(&owner, stream, change, reason.to_owned())
            .await??;
        Ok(owner)
    }

    /// A server API sends a signal through `room`.
    pub async fn signal_by_api(
        &self,
        room: &RoomHandle,
        request: SignalRequest,
    ) -> Result<(), CallError> {
        room.signal(request).await??;
        Ok(())
    }

    /// `m` sends a signal through its room.
    pub async fn signal(&self, m: &Member, request: SignalRequest) -> Result<(), CallError> {
        m.room.signal(request).await??;
        Ok(())
    }
}
