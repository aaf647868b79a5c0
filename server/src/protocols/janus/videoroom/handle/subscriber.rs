//! A subscriber handle: one peer connection carrying the streams of one or more feeds (the
//! multistream API of VideoRoom 1.x). The server offers; `subscribe`, `unsubscribe` and
//! `update` change what the peer connection carries and offer again; `start` takes the
//! answer (or resumes), `pause` and `configure` stop and resume sections.

use super::super::params::{Body, VrError};
use super::super::{Section, call_error, sections, settings};
use super::{Reply, State, Task};
use crate::calls::{Candidates, Kinds, Member};
use crate::media::{Description, SentTrack};
use crate::room::{Role, Room, StreamId, StreamInfo};
use serde_json::{Map, Value, json};

/// One media section of a subscription, as VideoRoom lists it.
#[derive(Clone, Debug)]
pub(super) struct SubStream {
    /// The subscriber's mid.
    pub mid: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// The publisher.
    pub feed: u64,
    /// The publisher's mid of this kind.
    pub feed_mid: String,
    /// The publisher's display.
    pub feed_display: Option<String>,
    /// The publisher's description of the section it carries.
    pub feed_description: Option<String>,
    /// The stream it carries.
    pub stream: StreamId,
    /// Still carried (unsubscribed sections stay in the SDP, inactive).
    pub active: bool,
}

/// A subscriber handle's state.
pub(super) struct Subscriber {
    /// The room.
    pub room: u64,
    /// Who receives: the participant whose private id was given, or the stand-in.
    pub member: Member,
    /// The member is this handle's own stand-in participant.
    pub stand_in: bool,
    /// Its sections, in the order they were added.
    pub streams: Vec<SubStream>,
    /// The server's last offer (the order of its sections).
    pub sdp: String,
    /// Renegotiate by itself when a feed it carries goes away (Janus's `autoupdate`).
    pub autoupdate: bool,
}

impl Subscriber {
    /// The streams it carries now, each once.
    pub fn live(&self) -> Vec<StreamId> {
        let mut out: Vec<StreamId> = Vec::new();
        for s in self.streams.iter().filter(|s| s.active) {
            if !out.contains(&s.stream) {
                out.push(s.stream.clone());
            }
        }
        out
    }

    /// A stream that names its peer connection (any it carries).
    pub fn through(&self) -> Option<StreamId> {
        self.live().into_iter().next()
    }

    /// Every stream that may name its peer connection, those that ended included (the room
    /// forgets a subscription whose publisher left; the others still name it).
    pub fn names(&self) -> Vec<StreamId> {
        let mut out: Vec<StreamId> = Vec::new();
        for s in &self.streams {
            if !out.contains(&s.stream) {
                out.push(s.stream.clone());
            }
        }
        out
    }
}

/// What a subscriber asks of one feed: its stream and the kinds wanted.
struct Want {
    feed: u64,
    display: Option<String>,
    stream: StreamInfo,
    mids: Vec<Section>,
    kinds: Kinds,
}

/// The `streams` items of a request as (feed, publisher mid) pairs.
fn items(list: &[&Map<String, Value>]) -> Result<Vec<(u64, Option<String>)>, VrError> {
    list.iter()
        .map(|item| {
            let item = Body(item);
            Ok((item.req_uint("feed")?, item.str("mid")?.map(str::to_owned)))
        })
        .collect()
}

impl Task {
    /// The feeds asked for, each once in order of appearance, with the kinds their mids name.
    fn wants(&self, room: &Room, asked: &[(u64, Option<String>)]) -> Result<Vec<Want>, VrError> {
        let mut out: Vec<Want> = Vec::new();
        for (feed, mid) in asked {
            if !out.iter().any(|w| w.feed == *feed) {
                let publisher = self
                    .vr
                    .participant(room, *feed)
                    .filter(|p| !p.streams().is_empty())
                    .ok_or_else(|| VrError::no_feed(*feed))?;
                let stream = publisher.streams()[0].clone();
                out.push(Want {
                    feed: *feed,
                    display: super::super::display(publisher),
                    mids: self.vr.mids(&stream),
                    stream,
                    kinds: Kinds {
                        audio: false,
                        video: false,
                    },
                });
            }
            let want = out
                .iter_mut()
                .find(|w| w.feed == *feed)
                .expect("added just above");
            let Some(mid) = mid else {
                want.kinds = Kinds::ALL;
                continue;
            };
            match want.mids.iter().find(|s| &s.mid == mid).map(|s| s.kind) {
                Some("audio") => want.kinds.audio = true,
                Some("video") => want.kinds.video = true,
                Some(_) => {}
                None => return Err(VrError::no_mid(mid, *feed)),
            }
        }
        Ok(out)
    }

    /// The sections an offer added for `want`.
    fn added(want: &Want, tracks: &[SentTrack]) -> Vec<SubStream> {
        tracks
            .iter()
            .map(|t| {
                let kind = if t.video { "video" } else { "audio" };
                SubStream {
                    mid: t.mid.clone(),
                    kind,
                    feed: want.feed,
                    feed_mid: want
                        .mids
                        .iter()
                        .find(|m| m.kind == kind)
                        .map_or_else(String::new, |m| m.mid.clone()),
                    feed_description: want
                        .mids
                        .iter()
                        .find(|m| m.kind == kind)
                        .and_then(|m| m.description.clone()),
                    feed_display: want.display.clone(),
                    stream: want.stream.id.clone(),
                    active: true,
                }
            })
            .collect()
    }

    /// The subscription's sections as VideoRoom lists them, in the order of `sdp`.
    fn listed(&self, room: &Room, sdp: &str) -> Vec<Value> {
        let State::Subscriber(s) = &self.state else {
            return Vec::new();
        };
        let video = super::super::video_codec_name(room);
        sections(sdp)
            .iter()
            .filter_map(|sec| {
                let sub = s.streams.iter().rev().find(|x| x.mid == sec.mid)?;
                let mut v = json!({
                    "type": sub.kind,
                    "active": sub.active,
                    "mindex": sec.mindex,
                    "mid": sub.mid,
                    "ready": false,
                    "send": true,
                });
                if sub.active {
                    v["feed_id"] = sub.feed.into();
                    if let Some(d) = &sub.feed_display {
                        v["feed_display"] = d.clone().into();
                    }
                    if let Some(d) = &sub.feed_description {
                        v["feed_description"] = d.clone().into();
                    }
                    v["feed_mid"] = sub.feed_mid.clone().into();
                    v["codec"] = if sub.kind == "audio" { "opus" } else { video }.into();
                }
                Some(v)
            })
            .collect()
    }

    pub(super) async fn join_subscriber(&mut self, b: &Body<'_>) -> Result<Reply, VrError> {
        let id = b.room()?;
        let (handle, room) = self.vr.lookup(id).await?;
        let s = settings(&room);
        b.credential("pin", s.pin.as_deref())?;
        let asked = match (b.objects("streams")?, b.uint("feed")?) {
            (Some(list), _) => items(&list)?,
            (None, Some(feed)) => vec![(feed, None)],
            (None, None) => return Err(VrError::missing("feed")),
        };
        let wants = self.wants(&room, &asked)?;
        let Some(first) = wants.first() else {
            return Err(VrError::bad_sdp("Can't offer an SDP with no stream"));
        };
        let owner = b
            .uint("private_id")?
            .and_then(|pvt| u32::try_from(pvt).ok())
            .and_then(|pvt| self.vr.private_owner(pvt, room.id()));
        if s.require_pvtid && owner.is_none() {
            return Err(VrError::unauthorized(
                "this room requires a valid private_id",
            ));
        }
        let (member, stand_in) = match owner {
            Some(participant) => (
                Member {
                    room: handle.clone(),
                    participant,
                    role: Role::Publisher,
                    via: None,
                },
                false,
            ),
            None => (self.join_stand_in(id, &room).await?, true),
        };
        let offered = self
            .vr
            .inner
            .calls
            .offer_subscription(&member, &first.stream.id, first.kinds, Candidates::InSdp)
            .await;
        let mut offer = match offered {
            Ok((_, offer)) => offer,
            Err(e) => {
                if stand_in {
                    self.vr.forget_stand_in(&member).await;
                    self.notices = None;
                }
                return Err(match e {
                    crate::calls::CallError::Negotiation(_) => {
                        VrError::bad_sdp("Can't offer an SDP with no stream")
                    }
                    other => call_error(other, id),
                });
            }
        };
        self.watch(offer.status.clone(), Vec::new());
        let through = vec![first.stream.id.clone()];
        self.state = State::Subscriber(Subscriber {
            room: id,
            member: member.clone(),
            stand_in,
            streams: Self::added(first, &offer.tracks),
            sdp: offer.sdp.clone(),
            autoupdate: b.bool("autoupdate")?.unwrap_or(true),
        });
        for want in &wants[1..] {
            offer = self.extend(&member, &through, want, id).await?;
        }
        if let State::Subscriber(s) = &mut self.state {
            offer.sdp.clone_into(&mut s.sdp);
        }
        let streams = self.listed(&room, &offer.sdp);
        let mut data = json!({ "videoroom": "attached", "room": id, "streams": streams });
        if b.0.contains_key("feed") && !b.0.contains_key("streams") {
            data["id"] = first.feed.into();
            if let Some(d) = &first.display {
                data["display"] = d.clone().into();
            }
            data["warning"] = "deprecated_api".into();
        }
        Ok((data, Some(json!({ "type": "offer", "sdp": offer.sdp }))))
    }

    /// Adds `want` to the peer connection named by any of `through`: the new offer.
    async fn extend(
        &mut self,
        member: &Member,
        through: &[StreamId],
        want: &Want,
        room: u64,
    ) -> Result<Description, VrError> {
        let (_, offer) = self
            .vr
            .inner
            .calls
            .extend_subscription(member, through, &want.stream.id, want.kinds)
            .await
            .map_err(|e| call_error(e, room))?;
        if let State::Subscriber(s) = &mut self.state {
            s.streams.extend(Self::added(want, &offer.tracks));
        }
        Ok(offer)
    }

    /// `subscribe`, `unsubscribe` and `update`: what the peer connection carries changes; the
    /// reply lists every section and carries the new offer (none when nothing changed).
    pub(super) async fn change_subscription(
        &mut self,
        request: &str,
        b: &Body<'_>,
    ) -> Result<Reply, VrError> {
        let State::Subscriber(s) = &self.state else {
            return Err(VrError::join_first());
        };
        let (id, member) = (s.room, s.member.clone());
        let (room_handle, room) = self.vr.lookup(id).await?;
        drop(room_handle);
        let (add, remove) = match request {
            "subscribe" => (
                Some(
                    b.objects("streams")?
                        .ok_or_else(|| VrError::missing("streams"))?,
                ),
                None,
            ),
            "unsubscribe" => (
                None,
                Some(
                    b.objects("streams")?
                        .ok_or_else(|| VrError::missing("streams"))?,
                ),
            ),
            _ => {
                let (add, remove) = (b.objects("subscribe")?, b.objects("unsubscribe")?);
                if add.is_none() && remove.is_none() {
                    return Err(VrError::missing("subscribe|unsubscribe"));
                }
                (add, remove)
            }
        };
        // Validate everything before changing anything.
        let wants = match &add {
            Some(list) => self.wants(&room, &items(list)?)?,
            None => Vec::new(),
        };
        let dropped = match &remove {
            Some(list) => self.unsubscribed(list)?,
            None => Vec::new(),
        };
        let mut offer: Option<Description> = None;
        for stream in dropped {
            let through = self.subscriber().map(Subscriber::names).unwrap_or_default();
            if let State::Subscriber(s) = &mut self.state {
                for sub in s.streams.iter_mut().filter(|x| x.stream == stream) {
                    sub.active = false;
                }
            }
            let live = self.subscriber().is_some_and(|s| !s.live().is_empty());
            let shrunk = self
                .vr
                .inner
                .calls
                .shrink_subscription(&member, &through, Some(&stream))
                .await
                .map_err(|e| call_error(e, id))?;
            // The last stream gone, the peer connection closes with it (a `hangup` follows).
            offer = live.then_some(shrunk);
        }
        let carried = self.subscriber().map(Subscriber::live).unwrap_or_default();
        for want in wants.iter().filter(|w| !carried.contains(&w.stream.id)) {
            let through = self.subscriber().map(Subscriber::names).unwrap_or_default();
            offer = Some(self.extend(&member, &through, want, id).await?);
        }
        let Some(offer) = offer else {
            return Ok((json!({ "videoroom": "updated", "room": id }), None));
        };
        if let State::Subscriber(s) = &mut self.state {
            offer.sdp.clone_into(&mut s.sdp);
        }
        let streams = self.listed(&room, &offer.sdp);
        Ok((
            json!({ "videoroom": "updated", "room": id, "streams": streams }),
            Some(json!({ "type": "offer", "sdp": offer.sdp })),
        ))
    }

    /// Streams this subscription carried ended (their publishers went away): with
    /// `autoupdate`, their sections go inactive in a new offer, sent as an unsolicited
    /// `updated` event; without, they wait for the next change.
    pub(super) async fn autoupdate(&mut self) {
        let Some(s) = self.subscriber() else {
            return;
        };
        if !s.autoupdate {
            return;
        }
        let (id, member, names) = (s.room, s.member.clone(), s.names());
        let Ok((_, room)) = self.vr.lookup(id).await else {
            return;
        };
        let offer = match self
            .vr
            .inner
            .calls
            .shrink_subscription(&member, &names, None)
            .await
        {
            Ok(offer) => offer,
            Err(e) => {
                tracing::debug!(error = %e, "no update of a subscription");
                return;
            }
        };
        if let State::Subscriber(s) = &mut self.state {
            for x in s.streams.iter_mut() {
                if room.published(&x.stream).is_none() {
                    x.active = false;
                }
            }
            offer.sdp.clone_into(&mut s.sdp);
        }
        let streams = self.listed(&room, &offer.sdp);
        self.session.push(self.event(
            None,
            json!({ "videoroom": "updated", "room": id, "streams": streams }),
            Some(json!({ "type": "offer", "sdp": offer.sdp })),
        ));
    }

    /// `switch`: sections carry other feeds' tracks of the same kind, without renegotiating.
    pub(super) async fn switch(&mut self, b: &Body<'_>) -> Result<Reply, VrError> {
        let Some(s) = self.subscriber() else {
            return Err(VrError::join_first());
        };
        let (id, member) = (s.room, s.member.clone());
        let (_, room) = self.vr.lookup(id).await?;
        let list = b
            .objects("streams")?
            .ok_or_else(|| VrError::missing("streams"))?;
        // Validate everything before changing anything.
        let mut moves = Vec::new();
        for item in &list {
            let item = Body(item);
            let feed = item.req_uint("feed")?;
            let feed_mid = item.req_str("mid")?.to_owned();
            let sub_mid = item.req_str("sub_mid")?.to_owned();
            let current = self
                .subscriber()
                .and_then(|s| {
                    s.streams
                        .iter()
                        .find(|x| x.mid == sub_mid && x.active)
                        .cloned()
                })
                .ok_or_else(|| VrError::no_sub_mid(&sub_mid))?;
            let want = self
                .wants(&room, &[(feed, Some(feed_mid.clone()))])?
                .pop()
                .ok_or_else(|| VrError::no_feed(feed))?;
            let kind = want.mids.iter().find(|m| m.mid == feed_mid).map(|m| m.kind);
            if kind != Some(current.kind) {
                return Err(VrError::bad_value(format!(
                    "Invalid element (mid '{feed_mid}' of feed {feed} is not {})",
                    current.kind
                )));
            }
            moves.push((current, want, feed_mid));
        }
        let mut changes = 0u64;
        for (current, want, feed_mid) in moves {
            if current.stream == want.stream.id && current.feed_mid == feed_mid {
                continue;
            }
            let names = self.subscriber().map(Subscriber::names).unwrap_or_default();
            // The old stream's subscription ends with its last section.
            let others = self.subscriber().is_some_and(|s| {
                s.streams
                    .iter()
                    .any(|x| x.active && x.stream == current.stream && x.mid != current.mid)
            });
            self.vr
                .inner
                .calls
                .switch_subscription(
                    &member,
                    &names,
                    &current.mid,
                    &want.stream.id,
                    (!others).then_some(&current.stream),
                )
                .await
                .map_err(|e| call_error(e, id))?;
            if let State::Subscriber(s) = &mut self.state
                && let Some(x) = s
                    .streams
                    .iter_mut()
                    .find(|x| x.mid == current.mid && x.active)
            {
                x.feed = want.feed;
                x.feed_mid = feed_mid;
                x.feed_display = want.display.clone();
                x.feed_description = want
                    .mids
                    .iter()
                    .find(|m| m.mid == x.feed_mid)
                    .and_then(|m| m.description.clone());
                x.stream = want.stream.id.clone();
            }
            changes += 1;
        }
        let sdp = self.subscriber().map(|s| s.sdp.clone()).unwrap_or_default();
        let streams = self.listed(&room, &sdp);
        Ok((
            json!({
                "videoroom": "event",
                "switched": "ok",
                "room": id,
                "changes": changes,
                "streams": streams,
            }),
            None,
        ))
    }

    /// The streams an `unsubscribe` list takes away (`sub_mid`, or `feed` with or without
    /// its `mid`); a stream goes once all its sections are named.
    fn unsubscribed(&self, list: &[&Map<String, Value>]) -> Result<Vec<StreamId>, VrError> {
        let Some(s) = self.subscriber() else {
            return Err(VrError::join_first());
        };
        let mut named: Vec<String> = Vec::new();
        for item in list {
            let item = Body(item);
            let (feed, mid, sub_mid) = (item.uint("feed")?, item.str("mid")?, item.str("sub_mid")?);
            let hit: Vec<&SubStream> = s
                .streams
                .iter()
                .filter(|x| x.active)
                .filter(|x| sub_mid.is_none_or(|m| x.mid == m))
                .filter(|x| feed.is_none_or(|f| x.feed == f))
                .filter(|x| mid.is_none_or(|m| x.feed_mid == m))
                .collect();
            if feed.is_none() && sub_mid.is_none() {
                return Err(VrError::missing("feed"));
            }
            named.extend(hit.into_iter().map(|x| x.mid.clone()));
        }
        let mut out: Vec<StreamId> = Vec::new();
        for stream in s.live() {
            let all_named = s
                .streams
                .iter()
                .filter(|x| x.active && x.stream == stream)
                .all(|x| named.contains(&x.mid));
            if all_named {
                out.push(stream);
            }
        }
        Ok(out)
    }

    /// This handle's subscription.
    pub(super) fn subscriber(&self) -> Option<&Subscriber> {
        match &self.state {
            State::Subscriber(s) => Some(s),
            _ => None,
        }
    }

    pub(super) async fn start(&mut self, jsep: Option<Value>) -> Result<Reply, VrError> {
        let Some(s) = self.subscriber() else {
            return Err(VrError::join_first());
        };
        let (id, member, names) = (s.room, s.member.clone(), s.names());
        if let Some(jsep) = jsep {
            if jsep["type"] != "answer" {
                return Err(VrError::sdp_type("Only publishers send offers"));
            }
            let sdp = jsep["sdp"].as_str().unwrap_or_default().to_owned();
            self.vr
                .inner
                .calls
                .answer_subscription(&member, &names, sdp)
                .await
                .map_err(|e| call_error(e, id))?;
            if let Some(through) = self.subscriber().and_then(Subscriber::through) {
                self.flush_early(crate::calls::Leg::Receiving(through))
                    .await;
            }
        } else {
            // Resumes what `pause` stopped.
            self.receiving(None, Kinds::ALL, true).await?;
        }
        Ok((
            json!({ "videoroom": "event", "room": id, "started": "ok" }),
            None,
        ))
    }

    /// This subscription stops or resumes sending `kinds` of `only` one stream, or of all.
    pub(super) async fn receiving(
        &self,
        only: Option<&StreamId>,
        kinds: Kinds,
        on: bool,
    ) -> Result<(), VrError> {
        let Some(s) = self.subscriber() else {
            return Err(VrError::join_first());
        };
        for stream in s.live().iter().filter(|x| only.is_none_or(|o| o == *x)) {
            self.vr
                .inner
                .calls
                .set_receiving(&s.member, stream, kinds, on)
                .await
                .map_err(|e| call_error(e, s.room))?;
        }
        Ok(())
    }

    /// A subscriber's `configure`: each section's `send` (by the subscriber's mid; the
    /// legacy form puts `mid` and `send` at the top level) and `keyframe`. Layer choices are
    /// moot without simulcast, as on Janus for a stream that has none; an ICE restart is not
    /// served.
    pub(super) async fn configure_subscription(&mut self, b: &Body<'_>) -> Result<Reply, VrError> {
        let Some(s) = self.subscriber() else {
            return Err(VrError::join_first());
        };
        let room = s.room;
        if b.bool("restart")? == Some(true) {
            return Err(VrError::unsupported("configure restart"));
        }
        let mut changes: Vec<(Option<String>, bool)> = Vec::new();
        let mut keyframe = false;
        match b.objects("streams")? {
            Some(list) => {
                for item in &list {
                    let item = Body(item);
                    let mid = item.str("mid")?.map(str::to_owned);
                    if mid.is_none() && list.len() > 1 {
                        return Err(VrError::bad_value("Invalid element (mid)"));
                    }
                    if let Some(send) = item.bool("send")? {
                        changes.push((mid, send));
                    }
                    keyframe |= item.bool("keyframe")? == Some(true);
                }
            }
            None => {
                if let Some(send) = b.bool("send")? {
                    changes.push((b.str("mid")?.map(str::to_owned), send));
                }
                keyframe |= b.bool("keyframe")? == Some(true);
            }
        }
        for (mid, send) in changes {
            let Some(mid) = mid else {
                self.receiving(None, Kinds::ALL, send).await?;
                continue;
            };
            let sub = self
                .subscriber()
                .and_then(|s| s.streams.iter().find(|x| x.mid == mid && x.active).cloned())
                .ok_or_else(|| VrError::no_sub_mid(&mid))?;
            let kinds = Kinds {
                audio: sub.kind == "audio",
                video: sub.kind == "video",
            };
            self.receiving(Some(&sub.stream), kinds, send).await?;
        }
        if keyframe {
            self.keyframe().await;
        }
        Ok((
            json!({ "videoroom": "event", "room": room, "configured": "ok" }),
            None,
        ))
    }
}
