//! One VideoRoom handle: a task that takes the handle's asynchronous requests and trickled
//! candidates in the order they came, holds what the handle is (a publisher, a subscriber,
//! or nothing yet), and renders its room's news as VideoRoom events on the session.
//!
//! The task owns the handle's state (no lock). It ends when its queue's sender is dropped
//! (detach, session destroyed or timed out, WebSocket closed), and then leaves whatever it
//! joined.

use super::cluster::{Remote, for_client};
use super::params::{Body, VrError};
use super::{Section, VideoRoom, admit_error, call_error, feed_id, random_id, sections, settings};
use crate::calls::{Admission, Candidates, Kinds, Leg, Member, new_stream_id};
use crate::media::{PeerStatus, Speech};
use crate::protocols::janus::api::{Session, VIDEOROOM};
use crate::room::{
    ActiveInfo, EndReason, ParticipantId, Role, StreamChange, StreamId, StreamInfo, VideoSource,
};
use crate::rooms::{Notice, SINK_CAPACITY};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

mod subscriber;

use subscriber::Subscriber;

/// Requests and candidates queued for one handle. Sender: the transports' requests.
/// Receiver: the handle's task. When full, the sending request waits (back-pressure on that
/// client alone).
pub const HANDLE_JOBS: usize = 64;

/// Candidates kept for a peer connection that does not exist yet (Janus queues early
/// trickles too); more are dropped.
const EARLY_CANDIDATES: usize = 64;

/// Something for a handle to do, in arrival order.
pub enum Job {
    /// An asynchronous VideoRoom request.
    Message {
        /// Its transaction, echoed on the event that answers it.
        transaction: String,
        /// The request's name, lower case.
        request: String,
        /// Its body.
        body: Map<String, Value>,
        /// Its JSEP, already checked to have a type and an SDP.
        jsep: Option<Value>,
    },
    /// Candidates the client trickled (`{completed: true}` among them is skipped).
    Trickle(Vec<Value>),
    /// The client hung up its peer connection.
    Hangup,
}

/// Starts the task of `handle` on `session`.
pub fn spawn(vr: VideoRoom, session: Arc<Session>, handle: u64) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(HANDLE_JOBS);
    let task = Task {
        vr,
        session,
        handle,
        state: State::Fresh,
        notices: None,
        early: Vec::new(),
        watched: None,
        speech: None,
        refresh: None,
        remote: None,
    };
    tokio::spawn(task.run(rx));
    tx
}

/// A publisher participant's handle.
struct Publisher {
    room: u64,
    member: Member,
    private_id: u32,
    /// The stream it publishes, when it does.
    stream: Option<StreamId>,
}

enum State {
    Fresh,
    Publisher(Publisher),
    Subscriber(Subscriber),
    /// Left, put out, or its room was destroyed: only a new handle can join again, and
    /// requests find no room, as on Janus.
    Gone,
}

/// What answers a request: the plugin data and a JSEP.
type Reply = (Value, Option<Value>);

struct Task {
    vr: VideoRoom,
    session: Arc<Session>,
    handle: u64,
    state: State,
    /// The room's notices for the participant this handle is (publishers and stand-ins).
    notices: Option<mpsc::Receiver<Arc<Notice>>>,
    /// Candidates that came before their peer connection.
    early: Vec<Value>,
    /// The handle's peer connection, watched for the core events.
    watched: Option<Watched>,
    /// A publisher's voice activity, in a room with `audiolevel_event`.
    speech: Option<watch::Receiver<Speech>>,
    /// A publisher's periodic keyframe requests, in a room with `fir_freq`.
    refresh: Option<tokio::time::Interval>,
    /// The handle joined a room another cluster node owns: everything goes there, and this
    /// room's id (the handle is a go-between from then on, its own state stays `Fresh`).
    remote: Option<(Remote, u64)>,
}

/// A peer connection whose state changes become Janus's core events.
struct Watched {
    status: watch::Receiver<PeerStatus>,
    seen: PeerStatus,
    /// The mids of a publisher's audio and video, for `media` events.
    mids: Vec<Section>,
}

/// The next state of the watched peer connection; `None` once it closed.
async fn next_status(w: &mut Option<Watched>) -> Option<PeerStatus> {
    match w {
        Some(w) => match w.status.changed().await {
            Ok(()) => Some(*w.status.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

async fn next_speech(w: &mut Option<watch::Receiver<Speech>>) -> Option<Speech> {
    match w {
        Some(w) => match w.changed().await {
            Ok(()) => Some(*w.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

async fn next_refresh(every: &mut Option<tokio::time::Interval>) {
    match every {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_remote(remote: &mut Option<(Remote, u64)>) -> Option<Value> {
    match remote {
        Some((r, _)) => r.next().await,
        None => std::future::pending().await,
    }
}

async fn next_notice(rx: &mut Option<mpsc::Receiver<Arc<Notice>>>) -> Option<Arc<Notice>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> i64 {
    crate::rooms::now_ms()
}

impl Task {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => self.job(job).await,
                    None => break,
                },
                notice = next_notice(&mut self.notices) => match notice {
                    Some(n) => self.notice(&n).await,
                    // The room dropped this participant's queue (it closed, or the queue
                    // overflowed): the participant is gone from this handle's view.
                    None => self.notices = None,
                },
                status = next_status(&mut self.watched) => match status {
                    Some(s) => {
                        if self.status(s) {
                            self.autoupdate().await;
                        }
                    }
                    None => self.hangup("Close PC"),
                },
                speech = next_speech(&mut self.speech) => match speech {
                    Some(s) => self.talking(s),
                    None => self.speech = None,
                },
                () = next_refresh(&mut self.refresh) => self.keyframe().await,
                event = next_remote(&mut self.remote) => match event {
                    Some(e) => {
                        if let Some(e) = for_client(e, self.session.id, self.handle) {
                            self.session.push(e);
                        }
                    }
                    None => self.owner_lost(),
                },
            }
        }
        self.end().await;
    }

    /// Watches a new peer connection of this handle.
    fn watch(&mut self, status: watch::Receiver<PeerStatus>, mids: Vec<Section>) {
        self.watched = Some(Watched {
            status,
            seen: PeerStatus::default(),
            mids,
        });
    }

    /// Asks for a keyframe of the stream this handle publishes or receives.
    async fn keyframe(&self) {
        let (room, stream) = match &self.state {
            State::Publisher(p) => match &p.stream {
                Some(s) => (p.member.room.clone(), s.clone()),
                None => return,
            },
            State::Subscriber(s) => {
                for stream in s.live() {
                    if let Err(e) = self
                        .vr
                        .inner
                        .calls
                        .request_keyframe(&s.member.room, &stream)
                        .await
                    {
                        tracing::debug!(error = %e, "no keyframe request");
                    }
                }
                return;
            }
            _ => return,
        };
        if let Err(e) = self.vr.inner.calls.request_keyframe(&room, &stream).await {
            tracing::debug!(error = %e, "no keyframe request");
        }
    }

    /// This publisher started or stopped talking: every publisher of its room hears it, this
    /// one included.
    fn talking(&mut self, speech: Speech) {
        let State::Publisher(p) = &self.state else {
            return;
        };
        let Some(stream) = &p.stream else {
            return;
        };
        let audio = self
            .vr
            .memory()
            .mids
            .get(stream)
            .and_then(|m| m.iter().find(|s| s.kind == "audio").cloned());
        let Some(audio) = audio else {
            return;
        };
        let data = json!({
            "videoroom": if speech.talking { "talking" } else { "stopped-talking" },
            "room": p.room,
            "id": feed_id(&p.member.participant),
            "mindex": audio.mindex,
            "mid": audio.mid,
            "audio-level-dBov-avg": speech.average,
        });
        self.vr
            .set_talking(p.member.room.id(), &p.member.participant, speech.talking);
        self.vr.tell_publishers(p.member.room.id(), &data, None);
    }

    /// The watched peer connection changed: `webrtcup` once it is up, `media` as each kind
    /// starts arriving, `hangup` when it failed. True when streams it carried ended (a
    /// subscription to update).
    fn status(&mut self, now: PeerStatus) -> bool {
        let Some(w) = &mut self.watched else {
            return false;
        };
        let before = std::mem::replace(&mut w.seen, now);
        let (session, sender) = (self.session.id, self.handle);
        if now.connected && !before.connected {
            self.session
                .push(json!({ "janus": "webrtcup", "session_id": session, "sender": sender }));
        }
        for (kind, on, was) in [
            ("audio", now.audio, before.audio),
            ("video", now.video, before.video),
        ] {
            if on && !was {
                let mid = w
                    .mids
                    .iter()
                    .find(|s| s.kind == kind)
                    .map_or_else(String::new, |s| s.mid.clone());
                self.session.push(json!({
                    "janus": "media", "session_id": session, "sender": sender,
                    "mid": mid, "type": kind, "receiving": true,
                }));
            }
        }
        let threshold = self.vr.inner.slowlink;
        if threshold > 0 && now.lossy > before.lossy && now.lost >= threshold {
            let video = w.mids.iter().find(|s| s.kind == "video");
            let (media, mid) = video.map_or(("audio", None), |s| ("video", Some(s.mid.clone())));
            let mut event = json!({
                "janus": "slowlink", "session_id": session, "sender": sender,
                "media": media, "uplink": now.uplink, "lost": now.lost,
            });
            if let Some(mid) = mid {
                event["mid"] = mid.into();
            }
            self.session.push(event);
        }
        if now.failed && !before.failed {
            self.hangup("ICE failed");
        }
        now.ended > before.ended
    }

    /// A plugin event from this handle, answering `transaction` when given.
    fn event(&self, transaction: Option<&str>, data: Value, jsep: Option<Value>) -> Value {
        plugin_event(self.session.id, self.handle, transaction, data, jsep)
    }

    fn push(&self, data: Value) {
        self.session.push(self.event(None, data, None));
    }

    /// The node that owns this handle's room is gone (it died, or closed the handle's
    /// counterpart): the handle leaves as one put out, with the cluster's reason, and its peer
    /// connection (the owner's) is gone.
    fn owner_lost(&mut self) {
        let Some((remote, room)) = self.remote.take() else {
            return;
        };
        tracing::warn!(node = %remote.node, room, "cluster: a Janus handle's room owner is gone");
        self.state = State::Gone;
        // OpenVidu's name for it: Janus has none.
        self.push(json!({ "videoroom": "event", "room": room, "leaving": "ok",
                          "reason": "nodeCrashed" }));
        self.hangup("Cluster node gone");
    }

    /// The core `hangup` event: the handle's peer connection closed (it is watched no
    /// more).
    fn hangup(&mut self, reason: &str) {
        self.watched = None;
        self.session.push(json!({
            "janus": "hangup",
            "session_id": self.session.id,
            "sender": self.handle,
            "reason": reason,
        }));
    }

    async fn job(&mut self, job: Job) {
        if matches!(self.state, State::Fresh)
            && let Job::Message { request, body, .. } = &job
            && self.remote.is_none()
            && (request == "join" || request == "joinandconfigure")
            && let Ok(room) = Body(body).room()
            && let Some((cluster, node)) = self.vr.owner_elsewhere(room).await
        {
            match Remote::open(&cluster, &node).await {
                Ok(remote) => self.remote = Some((remote, room)),
                Err(e) => {
                    let Job::Message { transaction, .. } = &job else {
                        return;
                    };
                    let text = format!(
                        "cluster node '{}' that has this room did not answer: {e}",
                        node.id
                    );
                    let data = VrError::other(text).data();
                    self.session.push(self.event(Some(transaction), data, None));
                    return;
                }
            }
        }
        if let Some((remote, _)) = &self.remote {
            let request = match job {
                Job::Message {
                    transaction,
                    body,
                    jsep,
                    ..
                } => {
                    let mut m =
                        json!({ "janus": "message", "transaction": transaction, "body": body });
                    if let Some(jsep) = jsep {
                        m["jsep"] = jsep;
                    }
                    m
                }
                Job::Trickle(candidates) => {
                    json!({ "janus": "trickle", "transaction": "cluster-trickle", "candidates": candidates })
                }
                Job::Hangup => json!({ "janus": "hangup", "transaction": "cluster-hangup" }),
            };
            if !remote.send(request).await {
                self.owner_lost();
            }
            return;
        }
        match job {
            Job::Message {
                transaction,
                request,
                body,
                jsep,
            } => {
                let (data, jsep) = match self.request(&request, &Body(&body), jsep).await {
                    Ok(reply) => reply,
                    Err(e) => (e.data(), None),
                };
                self.session
                    .push(self.event(Some(&transaction), data, jsep));
            }
            Job::Trickle(candidates) => {
                for c in candidates {
                    if c.get("completed").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    self.candidate(c).await;
                }
            }
            Job::Hangup => self.hang_up("Janus API").await,
        }
    }

    async fn request(
        &mut self,
        request: &str,
        b: &Body<'_>,
        jsep: Option<Value>,
    ) -> Result<Reply, VrError> {
        match (&self.state, request) {
            (State::Fresh, "join" | "joinandconfigure") => {
                let ptype = b.req_str("ptype")?;
                match ptype {
                    "publisher" => {
                        let offer = if request == "joinandconfigure" {
                            jsep
                        } else {
                            None
                        };
                        self.join_publisher(b, offer).await
                    }
                    "subscriber" | "listener" if request == "join" => self.join_subscriber(b).await,
                    _ => Err(VrError::bad_value("Invalid element (ptype)")),
                }
            }
            (State::Fresh, _) => Err(VrError::join_first()),
            (State::Gone, _) => Err(VrError::gone()),
            (State::Publisher(_), "join" | "joinandconfigure") => {
                Err(VrError::already_in("publisher"))
            }
            (State::Subscriber(_), "join" | "joinandconfigure") => {
                Err(VrError::already_in("subscriber"))
            }
            (State::Publisher(_), "publish") => {
                if self.publishing().is_some() {
                    return Err(VrError::already_published());
                }
                let jsep = jsep.ok_or_else(|| VrError::missing("jsep"))?;
                let (room, answer) = self.publish(b, &jsep).await?;
                Ok((room, Some(answer)))
            }
            (State::Publisher(_), "configure") => self.configure(b, jsep).await,
            (State::Publisher(p), "unpublish") => {
                let room = p.room;
                if self.publishing().is_none() {
                    return Err(VrError::not_published());
                }
                // Its peer connection's close is told by the watcher, after this reply.
                self.unpublish().await?;
                Ok((
                    json!({ "videoroom": "event", "room": room, "unpublished": "ok" }),
                    None,
                ))
            }
            (State::Publisher(p), "leave") => {
                let room = p.room;
                self.end().await;
                Ok((
                    json!({ "videoroom": "event", "room": room, "leaving": "ok" }),
                    None,
                ))
            }
            (State::Subscriber(_), "start") => self.start(jsep).await,
            (State::Subscriber(_), "configure") => self.configure_subscription(b).await,
            (State::Subscriber(s), "pause") => {
                let room = s.room;
                self.receiving(None, Kinds::ALL, false).await?;
                Ok((
                    json!({ "videoroom": "event", "room": room, "paused": "ok" }),
                    None,
                ))
            }
            (State::Subscriber(s), "leave") => {
                let room = s.room;
                self.end().await;
                Ok((
                    json!({ "videoroom": "event", "room": room, "left": "ok" }),
                    None,
                ))
            }
            (State::Subscriber(_), "subscribe" | "unsubscribe" | "update") => {
                self.change_subscription(request, b).await
            }
            (State::Subscriber(_), "switch") => self.switch(b).await,
            (_, other) => Err(VrError::unknown(other)),
        }
    }

    /// The stream this publisher handle publishes.
    fn publishing(&self) -> Option<&StreamId> {
        match &self.state {
            State::Publisher(p) => p.stream.as_ref(),
            _ => None,
        }
    }

    async fn join_publisher(
        &mut self,
        b: &Body<'_>,
        offer: Option<Value>,
    ) -> Result<Reply, VrError> {
        let id = b.room()?;
        let (_, room) = self.vr.lookup(id).await?;
        let s = settings(&room);
        b.credential("pin", s.pin.as_deref())?;
        if let Some(allowed) = &s.allowed {
            let token = b.str("token")?;
            if !token.is_some_and(|t| allowed.iter().any(|a| a == t)) {
                return Err(VrError::unauthorized("not in the allowed list"));
            }
        }
        let display = b.str("display")?.map(str::to_owned);
        if let Some(jsep) = &offer
            && jsep["type"] != "offer"
        {
            return Err(VrError::sdp_type(format!(
                "Unknown SDP type '{}'",
                jsep["type"].as_str().unwrap_or_default()
            )));
        }
        let user = match b.uint("id")? {
            None | Some(0) => loop {
                let candidate = random_id();
                if self.vr.participant(&room, candidate).is_none() {
                    break candidate;
                }
            },
            Some(n) if self.vr.participant(&room, n).is_some() => {
                return Err(VrError::id_exists(n));
            }
            Some(n) => n,
        };
        let (sink, notices) = mpsc::channel(SINK_CAPACITY);
        let info = ActiveInfo {
            joined_at: now_ms(),
            ip: String::new(),
            platform: "Janus VideoRoom".into(),
            client_data: display.unwrap_or_default(),
            door: "janus".to_owned(),
            streams: Vec::new(),
            subscriptions: Vec::new(),
        };
        let admission = Admission::Door {
            id: ParticipantId::new(user.to_string()),
            role: Role::Publisher,
            data: String::new(),
        };
        let (member, _, others) = self
            .vr
            .inner
            .calls
            .join(room.id(), admission, info, sink)
            .await
            .map_err(|e| admit_error(e, id, user))?;
        let private_id = self.vr.new_private_id(room.id(), &member.participant);
        self.vr.memory().publishers.insert(
            (room.id().clone(), member.participant.clone()),
            (self.session.clone(), self.handle),
        );
        self.notices = Some(notices);
        self.state = State::Publisher(Publisher {
            room: id,
            member,
            private_id,
            stream: None,
        });
        let stand_ins = self.vr.memory().stand_ins.clone();
        let others: Vec<_> = others
            .into_iter()
            .filter(|p| !stand_ins.contains(&p.id))
            .collect();
        let publishers: Vec<Value> = others
            .iter()
            .filter_map(|p| self.vr.publisher(&room, p))
            .collect();
        let mut data = json!({
            "videoroom": "joined",
            "room": id,
            "description": super::description(id, room.options()),
            "id": user,
            "private_id": private_id,
            "publishers": publishers,
        });
        if s.notify_joining {
            let attendees: Vec<Value> = others
                .iter()
                .filter(|p| p.streams().is_empty())
                .map(attendee)
                .collect();
            data["attendees"] = attendees.into();
        }
        let Some(jsep) = offer else {
            return Ok((data, None));
        };
        // joinandconfigure: the join stands even when the offer is refused, as on Janus.
        let (_, answer) = self.publish(b, &jsep).await?;
        Ok((data, Some(answer)))
    }

    /// Publishes the offer `jsep`: the `configured` data and the answer.
    async fn publish(&mut self, b: &Body<'_>, jsep: &Value) -> Result<(Value, Value), VrError> {
        let State::Publisher(p) = &self.state else {
            return Err(VrError::join_first());
        };
        let (id, member) = (p.room, p.member.clone());
        if jsep["type"] != "offer" {
            return Err(VrError::sdp_type(format!(
                "Unknown SDP type '{}'",
                jsep["type"].as_str().unwrap_or_default()
            )));
        }
        let (_, room) = self.vr.lookup(id).await?;
        let s = settings(&room);
        if let Some(codec) = b.str("audiocodec")?
            && !s.audiocodec.iter().any(|c| c.eq_ignore_ascii_case(codec))
        {
            return Err(VrError::bad_value("Audio codec unavailable in this room"));
        }
        if let Some(codec) = b.str("videocodec")?
            && !s.videocodec.iter().any(|c| c.eq_ignore_ascii_case(codec))
        {
            return Err(VrError::bad_value("Video codec unavailable in this room"));
        }
        if s.require_e2ee && jsep.get("e2ee") != Some(&Value::Bool(true)) {
            return Err(VrError::unauthorized_text(
                "Room requires end-to-end encrypted media",
            ));
        }
        let sdp = jsep["sdp"].as_str().unwrap_or_default().to_owned();
        let mut mids: Vec<Section> = sections(&sdp)
            .into_iter()
            .filter(|s| s.kind != "data")
            .collect();
        describe(&mut mids, b)?;
        if mids.is_empty() {
            return Err(VrError::bad_sdp(
                "Error parsing offer: no audio and no video",
            ));
        }
        let has_audio = mids.iter().any(|s| s.kind == "audio");
        let has_video = mids.iter().any(|s| s.kind == "video");
        let stream = StreamInfo {
            id: new_stream_id(
                if has_video { "CAMERA" } else { "MIC" },
                &member.participant,
            ),
            created_at: now_ms(),
            has_audio,
            has_video,
            audio_active: b.bool("audio")?.unwrap_or(true),
            video_active: b.bool("video")?.unwrap_or(true),
            video_source: VideoSource::Camera,
            frame_rate: None,
            dimensions: None,
        };
        let stream_id = stream.id.clone();
        self.vr
            .memory()
            .mids
            .insert(stream_id.clone(), mids.clone());
        let published = self
            .vr
            .inner
            .calls
            .publish(&member, stream, sdp, true, Candidates::InSdp)
            .await;
        let answer = match published {
            Ok(answer) => answer,
            Err(e) => {
                self.vr.memory().mids.remove(&stream_id);
                return Err(call_error(e, id));
            }
        };
        if let State::Publisher(p) = &mut self.state {
            p.stream = Some(stream_id.clone());
        }
        self.watch(answer.status.clone(), mids.clone());
        self.cap(b, &member, &stream_id, id).await?;
        self.refresh = (s.fir_freq > 0).then(|| {
            let every = std::time::Duration::from_secs(s.fir_freq);
            tokio::time::interval_at(tokio::time::Instant::now() + every, every)
        });
        self.speech = None;
        if s.audiolevel_event && has_audio {
            let every = u32::try_from(s.audio_active_packets).unwrap_or(u32::MAX);
            let threshold = u8::try_from(s.audio_level_average.min(127)).unwrap_or(127);
            match self
                .vr
                .inner
                .calls
                .watch_speech(&member, &stream_id, every, threshold)
                .await
            {
                Ok(speech) => self.speech = Some(speech),
                Err(e) => tracing::debug!(error = %e, "no voice activity for a stream"),
            }
        }
        self.flush_early(Leg::Publishing(stream_id)).await;
        let video = super::video_codec_name(&room);
        let streams: Vec<Value> = mids
            .iter()
            .map(|sec| sec.describe(video, s.opus_fec))
            .collect();
        let mut data = json!({
            "videoroom": "event",
            "room": id,
            "configured": "ok",
            "streams": streams,
        });
        if has_audio {
            data["audio_codec"] = "opus".into();
        }
        if has_video {
            data["video_codec"] = video.into();
        }
        Ok((data, json!({ "type": "answer", "sdp": answer.sdp })))
    }

    /// A publisher's `configure`: with an offer, a publish or a renegotiation; without,
    /// its audio and video switched on or off.
    async fn configure(&mut self, b: &Body<'_>, jsep: Option<Value>) -> Result<Reply, VrError> {
        let State::Publisher(p) = &self.state else {
            return Err(VrError::join_first());
        };
        let (id, member) = (p.room, p.member.clone());
        if let Some(jsep) = jsep {
            let Some(stream) = self.publishing().cloned() else {
                let (data, answer) = self.publish(b, &jsep).await?;
                return Ok((data, Some(answer)));
            };
            if jsep["type"] != "offer" {
                return Err(VrError::sdp_type("Unknown SDP type 'answer'"));
            }
            let sdp = jsep["sdp"].as_str().unwrap_or_default().to_owned();
            let renegotiated = self
                .vr
                .inner
                .calls
                .republish(&member, &stream, sdp, Candidates::InSdp)
                .await
                .map_err(|e| call_error(e, id))?;
            let Some((_, answer)) = renegotiated else {
                return Err(VrError::not_published());
            };
            let mids = sections(jsep["sdp"].as_str().unwrap_or_default())
                .into_iter()
                .filter(|s| s.kind != "data")
                .collect();
            self.watch(answer.status.clone(), mids);
            self.flush_early(Leg::Publishing(stream)).await;
            return Ok((
                json!({ "videoroom": "event", "room": id, "configured": "ok" }),
                Some(json!({ "type": "answer", "sdp": answer.sdp })),
            ));
        }
        if let Some(stream) = self.publishing().cloned() {
            for (key, change, reason) in [
                (
                    "audio",
                    StreamChange::AudioActive as fn(bool) -> StreamChange,
                    "publishAudio",
                ),
                ("video", StreamChange::VideoActive, "publishVideo"),
            ] {
                if let Some(on) = b.bool(key)? {
                    self.vr
                        .inner
                        .calls
                        .change_stream(&member, &stream, change(on), reason.into())
                        .await
                        .map_err(|e| call_error(e, id))?;
                }
            }
            if b.bool("keyframe")? == Some(true) {
                self.keyframe().await;
            }
            self.cap(b, &member, &stream, id).await?;
            if b.0.contains_key("descriptions") {
                let mut mids = self
                    .vr
                    .memory()
                    .mids
                    .get(&stream)
                    .cloned()
                    .unwrap_or_default();
                describe(&mut mids, b)?;
                self.vr.memory().mids.insert(stream.clone(), mids);
                // The others hear the publisher again, with its descriptions.
                if let Ok((_, room)) = self.vr.lookup(id).await
                    && let Some(summary) = room
                        .participant(&member.participant)
                        .and_then(|p| self.vr.publisher(&room, p))
                {
                    let data = json!({ "videoroom": "event", "room": id, "publishers": [summary] });
                    self.vr
                        .tell_publishers(member.room.id(), &data, Some(&member.participant));
                }
            }
        }
        Ok((
            json!({ "videoroom": "event", "room": id, "configured": "ok" }),
            None,
        ))
    }

    /// A publisher's `bitrate`: its video capped there with REMB (0: no cap of its own); in a
    /// room with `bitrate_cap`, never above the room's bitrate.
    async fn cap(
        &self,
        b: &Body<'_>,
        member: &Member,
        stream: &StreamId,
        id: u64,
    ) -> Result<(), VrError> {
        let Some(bps) = b.uint("bitrate")? else {
            return Ok(());
        };
        let (_, room) = self.vr.lookup(id).await?;
        let s = settings(&room);
        let mut cap = (bps > 0).then_some(bps);
        if s.bitrate_cap && s.bitrate > 0 {
            cap = Some(cap.map_or(s.bitrate, |c| c.min(s.bitrate)));
        }
        self.vr
            .inner
            .calls
            .cap_bitrate(
                &member.room,
                stream,
                cap.map(|c| u32::try_from(c).unwrap_or(u32::MAX)),
            )
            .await
            .map_err(|e| call_error(e, id))
    }

    /// Ends this publisher's stream.
    async fn unpublish(&mut self) -> Result<(), VrError> {
        let State::Publisher(p) = &mut self.state else {
            return Err(VrError::not_published());
        };
        let Some(stream) = p.stream.take() else {
            return Err(VrError::not_published());
        };
        let (id, member) = (p.room, p.member.clone());
        self.vr.memory().mids.remove(&stream);
        self.speech = None;
        self.vr
            .set_talking(member.room.id(), &member.participant, false);
        self.vr
            .inner
            .calls
            .unpublish(&member, &stream)
            .await
            .map_err(|e| call_error(e, id))
    }

    /// Joins the participant that receives for a subscriber handle that named no publisher
    /// of its own (no valid `private_id`).
    async fn join_stand_in(
        &mut self,
        id: u64,
        room: &crate::room::Room,
    ) -> Result<Member, VrError> {
        let (sink, notices) = mpsc::channel(SINK_CAPACITY);
        let user = random_id();
        let participant = ParticipantId::new(user.to_string());
        self.vr.memory().stand_ins.insert(participant.clone());
        let info = ActiveInfo {
            joined_at: now_ms(),
            ip: String::new(),
            platform: "Janus VideoRoom subscriber".into(),
            client_data: String::new(),
            door: "janus".to_owned(),
            streams: Vec::new(),
            subscriptions: Vec::new(),
        };
        let admission = Admission::Door {
            id: participant.clone(),
            role: Role::Subscriber,
            data: String::new(),
        };
        match self
            .vr
            .inner
            .calls
            .join(room.id(), admission, info, sink)
            .await
        {
            Ok((member, _, _)) => {
                // Its notices are read and dropped: a subscriber hears nothing of the room.
                self.notices = Some(notices);
                Ok(member)
            }
            Err(e) => {
                self.vr.memory().stand_ins.remove(&participant);
                Err(admit_error(e, id, user))
            }
        }
    }

    /// The leg a trickled candidate is for now, and who owns it.
    fn leg(&self) -> Option<(Member, Leg)> {
        match &self.state {
            State::Publisher(p) => p
                .stream
                .clone()
                .map(|s| (p.member.clone(), Leg::Publishing(s))),
            State::Subscriber(s) => s.through().map(|t| (s.member.clone(), Leg::Receiving(t))),
            _ => None,
        }
    }

    async fn candidate(&mut self, c: Value) {
        let Some((member, leg)) = self.leg() else {
            if self.early.len() < EARLY_CANDIDATES {
                self.early.push(c);
            }
            return;
        };
        self.add_candidate(&member, leg, &c).await;
    }

    async fn add_candidate(&self, member: &Member, leg: Leg, c: &Value) {
        let Some(candidate) = c.get("candidate").and_then(Value::as_str) else {
            return;
        };
        let mid = c.get("sdpMid").and_then(Value::as_str).map(str::to_owned);
        let index = c
            .get("sdpMLineIndex")
            .and_then(Value::as_u64)
            .and_then(|i| u16::try_from(i).ok());
        if let Err(e) = self
            .vr
            .inner
            .calls
            .add_candidate(member, leg, candidate.to_owned(), mid, index)
            .await
        {
            tracing::debug!(error = %e, "a trickled candidate was not taken");
        }
    }

    /// Applies the candidates that came before the peer connection `leg`.
    async fn flush_early(&mut self, leg: Leg) {
        let Some((member, _)) = self.leg() else {
            return;
        };
        for c in std::mem::take(&mut self.early) {
            self.add_candidate(&member, leg.clone(), &c).await;
        }
    }

    /// The client hung up: the handle's peer connection ends (a publisher unpublishes, a
    /// subscription ends).
    async fn hang_up(&mut self, reason: &str) {
        match &self.state {
            State::Publisher(p) if p.stream.is_some() => {
                let room = p.room;
                if self.unpublish().await.is_ok() {
                    self.push(json!({ "videoroom": "event", "room": room, "unpublished": "ok" }));
                }
                self.hangup(reason);
            }
            State::Subscriber(_) => {
                self.end().await;
                self.hangup(reason);
            }
            _ => {}
        }
    }

    /// Leaves whatever the handle joined.
    async fn end(&mut self) {
        let state = std::mem::replace(&mut self.state, State::Gone);
        self.notices = None;
        self.early.clear();
        let calls = &self.vr.inner.calls;
        match state {
            State::Publisher(p) => {
                self.vr.forget_publisher(&p);
                if let Some(stream) = &p.stream {
                    self.vr.memory().mids.remove(stream);
                }
                let _ = calls.leave(&p.member).await;
            }
            State::Subscriber(s) if s.stand_in => self.vr.forget_stand_in(&s.member).await,
            State::Subscriber(s) => {
                for stream in s.live() {
                    let _ = calls.unsubscribe(&s.member, &stream).await;
                }
            }
            State::Fresh | State::Gone => {}
        }
    }

    /// The room's news for this handle's participant, as VideoRoom events (publishers only:
    /// a subscriber hears nothing of the room).
    async fn notice(&mut self, n: &Notice) {
        let State::Publisher(p) = &self.state else {
            return;
        };
        let (id, me) = (p.room, p.member.participant.clone());
        let stand_in = |who: &ParticipantId| self.vr.memory().stand_ins.contains(who);
        match n {
            Notice::Published(who, _) if !stand_in(who) => {
                let Ok((_, room)) = self.vr.lookup(id).await else {
                    return;
                };
                let summary = room
                    .participant(who)
                    .and_then(|p| self.vr.publisher(&room, p));
                if let Some(summary) = summary {
                    self.push(json!({ "videoroom": "event", "room": id, "publishers": [summary] }));
                }
            }
            Notice::Unpublished(who, stream, _) if *who == me => {
                // Put out by a moderator or a server API.
                self.vr.memory().mids.remove(stream);
                self.speech = None;
                self.vr.set_talking(p.member.room.id(), &me, false);
                if let State::Publisher(p) = &mut self.state {
                    p.stream = None;
                }
                self.push(json!({ "videoroom": "event", "room": id, "unpublished": "ok" }));
            }
            Notice::Unpublished(who, _, _) if !stand_in(who) => {
                self.push(json!({ "videoroom": "event", "room": id, "unpublished": feed_id(who) }));
            }
            Notice::Left(who, reason) if !reason.is_eviction() && !stand_in(who) => {
                self.push(json!({ "videoroom": "event", "room": id, "leaving": feed_id(who) }));
            }
            Notice::Evicted(who, reason) if *who == me => {
                let data = match reason {
                    EndReason::ClosedByApi | EndReason::ServerStopped => {
                        json!({ "videoroom": "destroyed", "room": id })
                    }
                    _ => {
                        json!({ "videoroom": "event", "room": id, "leaving": "ok", "reason": "kicked" })
                    }
                };
                // Already out of the room: nothing left to leave.
                if let State::Publisher(p) = std::mem::replace(&mut self.state, State::Gone) {
                    self.vr.forget_publisher(&p);
                }
                self.notices = None;
                self.push(data);
            }
            Notice::Evicted(who, reason) if *reason != EndReason::ClosedByApi && !stand_in(who) => {
                self.push(json!({ "videoroom": "event", "room": id, "kicked": feed_id(who) }));
            }
            Notice::Joined(who) if !stand_in(&who.id) => {
                let Ok((_, room)) = self.vr.lookup(id).await else {
                    return;
                };
                if settings(&room).notify_joining {
                    self.push(
                        json!({ "videoroom": "event", "room": id, "joining": attendee(who) }),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Applies a request's `descriptions` (`[{mid, description}]`) to a publisher's sections.
fn describe(mids: &mut [Section], b: &Body<'_>) -> Result<(), VrError> {
    for item in b.objects("descriptions")?.unwrap_or_default() {
        let item = Body(item);
        let mid = item.req_str("mid")?;
        let text = item.req_str("description")?;
        if let Some(section) = mids.iter_mut().find(|s| s.mid == mid) {
            section.description = Some(text.to_owned());
        }
    }
    Ok(())
}

/// A VideoRoom event from `sender` on `session`, answering `transaction` when given.
pub fn plugin_event(
    session: u64,
    sender: u64,
    transaction: Option<&str>,
    data: Value,
    jsep: Option<Value>,
) -> Value {
    let mut v = json!({
        "janus": "event",
        "session_id": session,
        "sender": sender,
        "plugindata": { "plugin": VIDEOROOM, "data": data },
    });
    if let Some(t) = transaction {
        v["transaction"] = t.into();
    }
    if let Some(j) = jsep {
        v["jsep"] = j;
    }
    v
}

/// A participant as `attendees` and `joining` show it.
fn attendee(p: &crate::room::Participant) -> Value {
    let mut v = json!({ "id": feed_id(&p.id) });
    if let Some(d) = super::display(p) {
        v["display"] = d.into();
    }
    v
}

impl VideoRoom {
    /// A new private id for `participant` of `room`.
    fn new_private_id(&self, room: &crate::room::RoomId, participant: &ParticipantId) -> u32 {
        let mut memory = self.memory();
        loop {
            let id = rand::random::<u32>();
            if id != 0 && !memory.private_ids.contains_key(&id) {
                memory
                    .private_ids
                    .insert(id, (room.clone(), participant.clone()));
                return id;
            }
        }
    }

    /// The participant of `room` whose private id is `pvt`.
    fn private_owner(&self, pvt: u32, room: &crate::room::RoomId) -> Option<ParticipantId> {
        self.memory()
            .private_ids
            .get(&pvt)
            .filter(|(r, _)| r == room)
            .map(|(_, p)| p.clone())
    }

    /// A publisher handle's participant is gone: its private id and handle are forgotten.
    fn forget_publisher(&self, p: &Publisher) {
        let mut memory = self.memory();
        memory.private_ids.remove(&p.private_id);
        let key = (p.member.room.id().clone(), p.member.participant.clone());
        memory.publishers.remove(&key);
        memory.talking.remove(&key);
    }

    /// A subscriber handle's stand-in leaves.
    async fn forget_stand_in(&self, member: &Member) {
        let _ = self.inner.calls.leave(member).await;
        self.memory().stand_ins.remove(&member.participant);
    }
}
