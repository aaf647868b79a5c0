//! The VideoRoom plugin (`janus.plugin.videoroom`) over the call layer: its synchronous
//! requests (rooms and their participants), and one task per handle for the asynchronous
//! ones (joining as a publisher or a subscriber, publishing, answering offers), with the
//! room's news rendered as VideoRoom events.
//!
//! Id mapping: a Janus room `N` (a JSON integer, as Janus without `string_ids`) is the
//! Camerata room whose id is the decimal text `N`; an OpenVidu session whose id is not such a
//! number is not reachable through this door. A Janus publisher `U` is the participant
//! whose id is the decimal text `U`; a participant of another door is shown with a stable
//! 53-bit feed id derived from its id. A subscriber handle receives as the participant
//! whose `private_id` it gives, else as a participant of its own with the subscriber role.
//!
//! Lock rule: the plugin's small memory (private ids, who is a subscriber stand-in, stream
//! mids) is behind one short lock, never held across `.await`.

mod cluster;
mod handle;
mod params;

pub use cluster::routes as cluster_routes;

pub use handle::Job;
pub use params::VrError;

use super::api::Session;
use crate::calls::{CallError, Calls, room_video};
use crate::media::VideoChoice;
use crate::room::{
    MediaError, Participant, ParticipantId, Room, RoomId, RoomOptions, StreamInfo, VideoCodec,
};
use crate::rooms::{AdmitError, RoomHandle, RoomsError};
use params::{Body, DEFAULT_PUBLISHERS, JanusRoom, floor_bitrate};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The name under which the Janus door keeps its settings in a room's options.
const SETTINGS_KEY: &str = "janus";

/// What a `message` comes to.
pub enum Outcome {
    /// Answered at once: the plugin data of the `success` reply.
    Reply(Value),
    /// Queued for the handle: `ack` now, the event later.
    Queued,
}

/// One media section of an SDP, as VideoRoom lists streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// `audio`, `video` or `data`.
    pub kind: &'static str,
    /// Its mid.
    pub mid: String,
    /// Its index in the SDP.
    pub mindex: usize,
    /// Opus in-band forward error correction was offered in it.
    pub fec: bool,
    /// The publisher's description of it (`descriptions` of publish or configure).
    pub description: Option<String>,
}

impl Section {
    /// The `index`-th section, of `kind`, its mid the index until the SDP names one.
    fn numbered(kind: &'static str, index: usize) -> Self {
        Self {
            kind,
            mid: index.to_string(),
            mindex: index,
            fec: false,
            description: None,
        }
    }

    /// The section as VideoRoom lists a publisher's stream, in a room whose video codec is
    /// `video` and whose Opus FEC is `room_fec`.
    pub fn describe(&self, video: &str, room_fec: bool) -> Value {
        let codec = if self.kind == "audio" { "opus" } else { video };
        let mut v =
            json!({ "type": self.kind, "mindex": self.mindex, "mid": self.mid, "codec": codec });
        if self.kind == "audio" && self.fec && room_fec {
            v["fec"] = true.into();
        }
        if let Some(d) = &self.description {
            v["description"] = d.clone().into();
        }
        v
    }
}

/// The media sections of `sdp`.
pub fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            let kind = match m.split(' ').next() {
                Some("audio") => "audio",
                Some("video") => "video",
                _ => "data",
            };
            out.push(Section::numbered(kind, out.len()));
        } else if let (Some(mid), Some(last)) = (line.strip_prefix("a=mid:"), out.last_mut()) {
            mid.trim().clone_into(&mut last.mid);
        } else if let Some(last) = out.last_mut()
            && line.starts_with("a=fmtp:")
            && line.contains("useinbandfec=1")
        {
            last.fec = true;
        }
    }
    out
}

/// The feed id a participant shows through this door: its id when that is a Janus id (a
/// decimal number of at most 53 bits), else a stable 53-bit hash of it (FNV-1a).
pub fn feed_id(p: &ParticipantId) -> u64 {
    let text = p.as_str();
    if let Ok(n) = text.parse::<u64>()
        && n > 0
        && n < (1 << 53)
        && n.to_string() == text
    {
        return n;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & ((1 << 53) - 1)).max(1)
}

/// A random id of 53 bits, never 0, as Janus's.
pub fn random_id() -> u64 {
    (rand::random::<u64>() & ((1 << 53) - 1)).max(1)
}

/// The Janus room id of a Camerata room, when its id is one.
fn janus_room_id(id: &RoomId) -> Option<u64> {
    let n = id.as_str().parse::<u64>().ok()?;
    (n.to_string() == id.as_str()).then_some(n)
}

/// The Camerata room of Janus room `n`.
fn room_key(n: u64) -> RoomId {
    RoomId::new(n.to_string())
}

/// The door's settings of a room (Janus's defaults for a room another door created).
fn settings(room: &Room) -> JanusRoom {
    room.options()
        .door_settings
        .get(SETTINGS_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// A room's description, as Janus shows it.
fn description(id: u64, options: &RoomOptions) -> String {
    options
        .description
        .clone()
        .unwrap_or_else(|| format!("Room {id}"))
}

/// What a participant shows as its `display`.
fn display(p: &Participant) -> Option<String> {
    let client = p.active().map_or("", |a| a.client_data.as_str());
    [client, p.data.as_str()]
        .into_iter()
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The codec name of a room's video.
fn video_codec_name(room: &Room) -> &'static str {
    match room_video(room) {
        VideoChoice::Vp8 => "vp8",
        VideoChoice::Vp9 => "vp9",
        VideoChoice::H264 => "h264",
    }
}

/// The first video codec of a Janus list that Camerata forwards.
fn forced_codec(list: &[String]) -> Option<VideoCodec> {
    list.iter().find_map(|c| match c.as_str() {
        "vp8" => Some(VideoCodec::Vp8),
        "vp9" => Some(VideoCodec::Vp9),
        "h264" => Some(VideoCodec::H264),
        _ => None,
    })
}

/// A call layer error in VideoRoom's words.
pub fn call_error(e: CallError, room: u64) -> VrError {
    match e {
        CallError::RoomGone | CallError::Rooms(RoomsError::RoomNotFound) => VrError::no_room(room),
        CallError::Room(MediaError::PublishersFull(n)) => VrError::publishers_full(n),
        CallError::Room(MediaError::AlreadyPublishing(_) | MediaError::DuplicateStream(_)) => {
            VrError::already_published()
        }
        CallError::Room(MediaError::NotPublishing(_)) => VrError::not_published(),
        CallError::Negotiation(m) => VrError::bad_sdp(format!("Error parsing SDP: {m}")),
        other => VrError::other(other.to_string()),
    }
}

/// An admission error in VideoRoom's words.
fn admit_error(e: AdmitError, room: u64, user: u64) -> VrError {
    match e {
        AdmitError::RoomNotFound | AdmitError::Join(_) => VrError::no_room(room),
        AdmitError::Duplicate(_) => VrError::id_exists(user),
        other => VrError::other(other.to_string()),
    }
}

/// What the plugin remembers beyond the rooms.
#[derive(Default)]
struct Memory {
    /// Each publisher's private id: its room and participant.
    private_ids: HashMap<u32, (RoomId, ParticipantId)>,
    /// Participants that stand for a subscriber handle (not VideoRoom participants).
    stand_ins: HashSet<ParticipantId>,
    /// The media sections of the streams published through this door, by stream.
    mids: HashMap<crate::room::StreamId, Vec<Section>>,
    /// Each publisher participant's handle, for the events no room notice carries.
    publishers: HashMap<(RoomId, ParticipantId), (Arc<Session>, u64)>,
    /// The publishers talking now (rooms with `audiolevel_event`).
    talking: HashSet<(RoomId, ParticipantId)>,
}

/// The VideoRoom plugin (cheap to clone).
#[derive(Clone)]
pub struct VideoRoom {
    inner: Arc<Inner>,
}

struct Inner {
    calls: Calls,
    memory: Mutex<Memory>,
    slowlink: u32,
    /// The cluster this node is part of, once it joined one.
    cluster: Arc<std::sync::OnceLock<crate::cluster::Cluster>>,
}

/// The requests answered at once.
const SYNC: [&str; 10] = [
    "create",
    "edit",
    "destroy",
    "exists",
    "list",
    "allowed",
    "kick",
    "moderate",
    "listparticipants",
    "listforwarders",
];
/// The requests queued for the handle.
const ASYNC: [&str; 12] = [
    "join",
    "joinandconfigure",
    "configure",
    "publish",
    "unpublish",
    "start",
    "pause",
    "switch",
    "subscribe",
    "unsubscribe",
    "update",
    "leave",
];
/// Janus requests this door does not serve (the README names them).
const UNSUPPORTED: [&str; 9] = [
    "enable_recording",
    "rtp_forward",
    "stop_rtp_forward",
    "publish_remotely",
    "unpublish_remotely",
    "listremotes",
    "add_remote_publisher",
    "update_remote_publisher",
    "remove_remote_publisher",
];

impl VideoRoom {
    /// The plugin over `calls`; `slowlink` packets lost in a second on a peer connection
    /// make a `slowlink` event (0: none, as Janus's `slowlink_threshold`); `cluster` is set
    /// when the node joins a cluster (requests about other nodes' rooms go there).
    pub fn new(
        calls: Calls,
        slowlink: u32,
        cluster: Arc<std::sync::OnceLock<crate::cluster::Cluster>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                calls,
                memory: Mutex::default(),
                slowlink,
                cluster,
            }),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // Every critical section is one map call.
        self.inner
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new handle on `session`: its task, reached through the returned queue (the task
    /// ends, leaving whatever it joined, when the queue's sender is dropped).
    pub fn attach(&self, session: Arc<Session>, handle: u64) -> mpsc::Sender<Job> {
        handle::spawn(self.clone(), session, handle)
    }

    /// A `message` for the handle whose queue is `link`.
    pub async fn message(
        &self,
        link: &mpsc::Sender<Job>,
        transaction: &str,
        body: Map<String, Value>,
        jsep: Option<Value>,
    ) -> Outcome {
        let request = match body.get("request") {
            None => return Outcome::Reply(VrError::missing("request").data()),
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            Some(_) => return Outcome::Reply(VrError::bad_type("request", "a string").data()),
        };
        if UNSUPPORTED.contains(&request.as_str()) {
            return Outcome::Reply(VrError::unsupported(&request).data());
        }
        if SYNC.contains(&request.as_str()) {
            if let Some(reply) = self.sync_elsewhere(&request, &body).await {
                return Outcome::Reply(reply);
            }
            let reply = self.sync(&request, &Body(&body)).await;
            return Outcome::Reply(reply.unwrap_or_else(|e| e.data()));
        }
        if !ASYNC.contains(&request.as_str()) {
            return Outcome::Reply(VrError::unknown(&request).data());
        }
        let job = Job::Message {
            transaction: transaction.to_owned(),
            request,
            body,
            jsep,
        };
        match link.send(job).await {
            Ok(()) => Outcome::Queued,
            Err(_) => Outcome::Reply(VrError::not_in_room().data()),
        }
    }

    async fn sync(&self, request: &str, b: &Body<'_>) -> Result<Value, VrError> {
        match request {
            "create" => self.create(b).await,
            "edit" => self.edit(b).await,
            "destroy" => {
                let (id, handle, room) = self.room(b).await?;
                b.credential("secret", settings(&room).secret.as_deref())?;
                let permanent = b.bool("permanent")?.unwrap_or(false);
                self.inner
                    .calls
                    .close_by_api(&handle)
                    .await
                    .map_err(|_| VrError::no_room(id))?;
                Ok(json!({ "videoroom": "destroyed", "room": id, "permanent": permanent }))
            }
            "exists" => {
                let id = b.room()?;
                let exists = self.lookup(id).await.is_ok();
                Ok(json!({ "videoroom": "success", "room": id, "exists": exists }))
            }
            "list" => {
                let mut list = Vec::new();
                for handle in self.inner.calls.rooms().all() {
                    let Some(id) = janus_room_id(handle.id()) else {
                        continue;
                    };
                    let Ok(room) = handle.snapshot(false).await else {
                        continue;
                    };
                    let s = settings(&room);
                    if room.closed().is_none() && !s.is_private {
                        list.push(self.summary(id, &room, &s));
                    }
                }
                Ok(json!({ "videoroom": "success", "list": list }))
            }
            "allowed" => self.allowed(b).await,
            "kick" => {
                let (id, handle, room) = self.room(b).await?;
                b.credential("secret", settings(&room).secret.as_deref())?;
                let user = b.req_uint("id")?;
                let who = self
                    .participant(&room, user)
                    .ok_or_else(|| VrError::no_user(user, id))?;
                self.inner
                    .calls
                    .evict_by_api(&handle, &who.id)
                    .await
                    .map_err(|_| VrError::no_user(user, id))?;
                Ok(json!({ "videoroom": "success" }))
            }
            "moderate" => self.moderate(b).await,
            "listparticipants" => {
                let (id, _, room) = self.room(b).await?;
                let participants: Vec<Value> = self
                    .participants(&room)
                    .map(|p| {
                        let publishing = !p.streams().is_empty();
                        let mut v = json!({ "id": feed_id(&p.id), "publisher": publishing });
                        if publishing {
                            // Janus 1.1.2 shows it for publishers, audio levels on or not.
                            v["talking"] = self.is_talking(room.id(), &p.id).into();
                        }
                        if let Some(d) = display(p) {
                            v["display"] = d.into();
                        }
                        v
                    })
                    .collect();
                Ok(json!({ "videoroom": "participants", "room": id, "participants": participants }))
            }
            "listforwarders" => {
                let (id, _, room) = self.room(b).await?;
                b.credential("secret", settings(&room).secret.as_deref())?;
                // RTP forwarders are not served: there are never any.
                Ok(json!({ "videoroom": "forwarders", "room": id, "publishers": [] }))
            }
            other => Err(VrError::unknown(other)),
        }
    }

    /// The live room Janus calls `id`.
    async fn lookup(&self, id: u64) -> Result<(RoomHandle, Room), VrError> {
        let handle = self
            .inner
            .calls
            .rooms()
            .get(&room_key(id))
            .ok_or_else(|| VrError::no_room(id))?;
        let room = handle
            .snapshot(false)
            .await
            .map_err(|_| VrError::no_room(id))?;
        if room.closed().is_some() {
            return Err(VrError::no_room(id));
        }
        Ok((handle, room))
    }

    /// The room a request names by its `room` element.
    async fn room(&self, b: &Body<'_>) -> Result<(u64, RoomHandle, Room), VrError> {
        let id = b.room()?;
        let (handle, room) = self.lookup(id).await?;
        Ok((id, handle, room))
    }

    async fn create(&self, b: &Body<'_>) -> Result<Value, VrError> {
        let id = match b.uint("room")? {
            None | Some(0) => random_id(),
            Some(n) => n,
        };
        let s = JanusRoom::from_create(b)?;
        let description = b
            .str("description")?
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        let publishers = b.u32("publishers")?.unwrap_or(DEFAULT_PUBLISHERS);
        let forced = forced_codec(&s.videocodec).ok_or_else(|| {
            VrError::bad_value(
                "Invalid element (videocodec): Camerata forwards VP8, VP9 or H.264 video",
            )
        })?;
        if !s.audiocodec.iter().any(|c| c == "opus") {
            return Err(VrError::bad_value(
                "Invalid element (audiocodec): Camerata forwards Opus audio",
            ));
        }
        let mut options = RoomOptions {
            custom_id: id.to_string(),
            forced_video_codec: forced,
            persistent: true,
            max_publishers: Some(publishers),
            max_publish_kbps: kbps(s.bitrate),
            description,
            ..RoomOptions::default()
        };
        let permanent = s.permanent;
        options.door_settings.insert(
            SETTINGS_KEY.to_owned(),
            serde_json::to_value(s).expect("settings serialise"),
        );
        match self
            .inner
            .calls
            .rooms()
            .create(room_key(id), options, crate::rooms::now_ms())
            .await
        {
            Ok(_) => Ok(json!({ "videoroom": "created", "room": id, "permanent": permanent })),
            Err(RoomsError::RoomExists(_)) => Err(VrError::room_exists(id)),
            Err(e) => Err(VrError::other(e.to_string())),
        }
    }

    async fn edit(&self, b: &Body<'_>) -> Result<Value, VrError> {
        let (id, handle, room) = self.room(b).await?;
        let mut s = settings(&room);
        b.credential("secret", s.secret.as_deref())?;
        let mut o = room.options().clone();
        let text = |key: &str| -> Result<Option<String>, VrError> {
            Ok(b.str(key)?.filter(|v| !v.is_empty()).map(str::to_owned))
        };
        if let Some(d) = text("new_description")? {
            o.description = Some(d);
        }
        if let Some(v) = text("new_secret")? {
            s.secret = Some(v);
        }
        if let Some(v) = text("new_pin")? {
            s.pin = Some(v);
        }
        if let Some(v) = b.bool("new_is_private")? {
            s.is_private = v;
        }
        if let Some(v) = b.bool("new_require_pvtid")? {
            s.require_pvtid = v;
        }
        if let Some(v) = b.uint("new_bitrate")? {
            s.bitrate = floor_bitrate(v);
            o.max_publish_kbps = kbps(s.bitrate);
        }
        if let Some(v) = b.uint("new_fir_freq")? {
            s.fir_freq = v;
        }
        if let Some(v) = b.u32("new_publishers")? {
            o.max_publishers = Some(v);
        }
        if let Some(v) = b.bool("new_lock_record")? {
            s.lock_record = v;
        }
        let permanent = b.bool("permanent")?.unwrap_or(false);
        self.store(&handle, id, o, &s).await?;
        Ok(json!({ "videoroom": "edited", "room": id, "permanent": permanent }))
    }

    /// Stops or resumes the forwarding of one stream (mid) of a publisher; every publisher
    /// in the room, the target included, is told.
    async fn moderate(&self, b: &Body<'_>) -> Result<Value, VrError> {
        let (id, handle, room) = self.room(b).await?;
        b.credential("secret", settings(&room).secret.as_deref())?;
        let user = b.req_uint("id")?;
        let mid = b.req_str("mid")?;
        let mute = b.bool("mute")?.ok_or_else(|| VrError::missing("mute"))?;
        let who = self
            .participant(&room, user)
            .ok_or_else(|| VrError::no_user(user, id))?;
        let no_mid = || VrError::no_feed_mid(mid);
        let stream = who.streams().first().ok_or_else(no_mid)?;
        let section = self
            .mids(stream)
            .into_iter()
            .find(|s| s.mid == mid && s.kind != "data")
            .ok_or_else(no_mid)?;
        self.inner
            .calls
            .mute_by_api(
                &handle,
                &stream.id,
                section.kind == "video",
                mute,
                "moderated",
            )
            .await
            .map_err(|e| call_error(e, id))?;
        let data = json!({
            "videoroom": "event",
            "room": id,
            "id": user,
            "mid": mid,
            "moderation": if mute { "muted" } else { "unmuted" },
        });
        self.tell_publishers(room.id(), &data, None);
        Ok(json!({ "videoroom": "success" }))
    }

    /// Sends `data` as an event to every publisher handle in `room` but `except`'s.
    fn tell_publishers(&self, room: &RoomId, data: &Value, except: Option<&ParticipantId>) {
        let told: Vec<(Arc<Session>, u64)> = self
            .memory()
            .publishers
            .iter()
            .filter(|((r, who), _)| r == room && Some(who) != except)
            .map(|(_, to)| to.clone())
            .collect();
        for (session, sender) in told {
            session.push(handle::plugin_event(
                session.id,
                sender,
                None,
                data.clone(),
                None,
            ));
        }
    }

    /// Keeps whether a publisher is talking, for the lists that show it.
    fn set_talking(&self, room: &RoomId, who: &ParticipantId, talking: bool) {
        let key = (room.clone(), who.clone());
        let mut memory = self.memory();
        if talking {
            memory.talking.insert(key);
        } else {
            memory.talking.remove(&key);
        }
    }

    /// Whether a publisher is talking now.
    fn is_talking(&self, room: &RoomId, who: &ParticipantId) -> bool {
        self.memory().talking.contains(&(room.clone(), who.clone()))
    }

    async fn allowed(&self, b: &Body<'_>) -> Result<Value, VrError> {
        let (id, handle, room) = self.room(b).await?;
        let mut s = settings(&room);
        b.credential("secret", s.secret.as_deref())?;
        let action = b.req_str("action")?;
        let given = b.strings("allowed")?;
        match action {
            "enable" => {
                s.allowed.get_or_insert_with(Vec::new);
            }
            "disable" => s.allowed = None,
            "add" | "remove" => {
                let given = given.ok_or_else(|| VrError::missing("allowed"))?;
                let list = s.allowed.get_or_insert_with(Vec::new);
                if action == "add" {
                    for t in given {
                        if !list.contains(&t) {
                            list.push(t);
                        }
                    }
                } else {
                    list.retain(|t| !given.contains(t));
                }
            }
            other => {
                return Err(VrError::bad_value(format!(
                    "Unsupported action '{other}' (allowed)"
                )));
            }
        }
        let list = s.allowed.clone();
        self.store(&handle, id, room.options().clone(), &s).await?;
        let mut v = json!({ "videoroom": "success", "room": id });
        if let Some(list) = list {
            v["allowed"] = list.into();
        }
        Ok(v)
    }

    /// Stores edited options with the door's settings in them.
    async fn store(
        &self,
        handle: &RoomHandle,
        id: u64,
        mut options: RoomOptions,
        s: &JanusRoom,
    ) -> Result<(), VrError> {
        options.door_settings.insert(
            SETTINGS_KEY.to_owned(),
            serde_json::to_value(s).expect("settings serialise"),
        );
        match handle.set_options(options).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(VrError::no_room(id)),
        }
    }

    /// A room as `list` shows it.
    fn summary(&self, id: u64, room: &Room, s: &JanusRoom) -> Value {
        let o = room.options();
        let mut v = json!({
            "room": id,
            "description": description(id, o),
            "pin_required": s.pin.is_some(),
            "is_private": s.is_private,
            "max_publishers": o.max_publishers.unwrap_or(0),
            "bitrate": s.bitrate,
            "fir_freq": s.fir_freq,
            "require_pvtid": s.require_pvtid,
            "require_e2ee": s.require_e2ee,
            "dummy_publisher": false,
            "notify_joining": s.notify_joining,
            "audiocodec": s.audiocodec.join(","),
            "videocodec": s.videocodec.join(","),
            "record": false,
            "lock_record": s.lock_record,
            "num_participants": self.participants(room).count(),
            "audiolevel_ext": s.audiolevel_ext,
            "audiolevel_event": s.audiolevel_event,
            "videoorient_ext": s.videoorient_ext,
            "playoutdelay_ext": s.playoutdelay_ext,
            "transport_wide_cc_ext": s.transport_wide_cc_ext,
        });
        for (key, on) in [
            ("bitrate_cap", s.bitrate_cap),
            ("opus_fec", s.opus_fec),
            ("opus_dtx", s.opus_dtx),
        ] {
            if on {
                v[key] = true.into();
            }
        }
        if s.audiolevel_event {
            v["audio_active_packets"] = s.audio_active_packets.into();
            v["audio_level_average"] = s.audio_level_average.into();
        }
        v
    }

    /// The room's VideoRoom participants: everyone in it but the stand-ins of subscriber
    /// handles.
    fn participants<'a>(&self, room: &'a Room) -> impl Iterator<Item = &'a Participant> {
        let stand_ins = self.memory().stand_ins.clone();
        room.active_participants()
            .filter(move |p| !stand_ins.contains(&p.id))
    }

    /// The VideoRoom participant with feed id `feed`.
    fn participant<'a>(&self, room: &'a Room, feed: u64) -> Option<&'a Participant> {
        self.participants(room).find(|p| feed_id(&p.id) == feed)
    }

    /// The media sections of a participant's first stream: those its offer had when it was
    /// published through this door, else audio then video as that stream carries them.
    fn mids(&self, stream: &StreamInfo) -> Vec<Section> {
        if let Some(known) = self.memory().mids.get(&stream.id) {
            return known.clone();
        }
        let mut out = Vec::new();
        for (on, kind) in [(stream.has_audio, "audio"), (stream.has_video, "video")] {
            if on {
                out.push(Section::numbered(kind, out.len()));
            }
        }
        out
    }

    /// A publisher as the `publishers` lists show it; `None` when it publishes nothing.
    fn publisher(&self, room: &Room, p: &Participant) -> Option<Value> {
        let stream = p.streams().first()?;
        let video = video_codec_name(room);
        let room_fec = settings(room).opus_fec;
        let mids = self.mids(stream);
        let streams: Vec<Value> = mids
            .iter()
            .filter(|s| s.kind != "data")
            .map(|s| {
                let mut v = s.describe(video, room_fec);
                let on = if s.kind == "audio" {
                    stream.audio_active
                } else {
                    stream.video_active
                };
                if !on {
                    v["disabled"] = true.into();
                }
                v
            })
            .collect();
        let talking = self.is_talking(room.id(), &p.id);
        let mut v = json!({ "id": feed_id(&p.id), "streams": streams, "talking": talking });
        if let Some(d) = display(p) {
            v["display"] = d.into();
        }
        if stream.has_audio {
            v["audio_codec"] = "opus".into();
        }
        if stream.has_video {
            v["video_codec"] = video.into();
        }
        Some(v)
    }
}

/// A bitrate cap in bits per second as the neutral kbps cap (`None` for no cap).
fn kbps(bps: u64) -> Option<u32> {
    (bps > 0).then(|| u32::try_from(bps / 1000).unwrap_or(u32::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sections() {
        assert_eq!(feed_id(&ParticipantId::new("7001")), 7001);
        let hashed = feed_id(&ParticipantId::new("con_ABC"));
        assert!(hashed > 0 && hashed < (1 << 53));
        assert_eq!(hashed, feed_id(&ParticipantId::new("con_ABC")), "stable");
        assert_ne!(feed_id(&ParticipantId::new("007")), 7, "not canonical");
        assert_eq!(janus_room_id(&RoomId::new("1234")), Some(1234));
        assert_eq!(janus_room_id(&RoomId::new("ses_1")), None);
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a0\r\na=fmtp:111 minptime=10;useinbandfec=1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(
            sections(sdp),
            vec![
                Section {
                    kind: "audio",
                    mid: "a0".into(),
                    mindex: 0,
                    fec: true,
                    description: None,
                },
                Section {
                    kind: "video",
                    mid: "v1".into(),
                    mindex: 1,
                    fec: false,
                    description: None,
                },
                Section {
                    kind: "data",
                    mid: "2".into(),
                    mindex: 2,
                    fec: false,
                    description: None,
                },
            ]
        );
        assert_eq!(kbps(128_000), Some(128));
        assert_eq!(kbps(0), None);
    }
}
