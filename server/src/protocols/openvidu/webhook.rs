//! OpenVidu's events: rendered from room changes into the outbox (the `Observer`), and
//! their payloads as the delivery engine (`crate::delivery`) sends and writes them.
//!
//! Rendering follows the CE event catalogue: `sessionCreated`, `sessionDestroyed`,
//! `participantJoined`, `participantLeft`, `webrtcConnectionCreated`,
//! `webrtcConnectionDestroyed` and `signalSent`, with their keys, timestamps and durations.
//! The body is stored without its `event` member; the sender appends it last, the CDR writer
//! wraps the body in `{"<event>": ...}`.

use crate::config::Settled;
use crate::delivery::Payloads;
use crate::room::{EndReason, Participant, ParticipantId, Room, RoomEvent, StreamInfo};
use crate::rooms::Observer;
use crate::spelling::WireEnum;
use crate::store::Event;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// Renders room changes as OpenVidu events, for the webhook (the names it sends) and the CDR.
pub struct OpenViduEvents {
    hook: HashSet<String>,
    cdr: bool,
}

impl OpenViduEvents {
    /// The renderer for `settled`; `None` when neither webhook nor CDR is on.
    pub fn for_settings(settled: &Settled) -> Option<Arc<dyn Observer>> {
        Self::renderer(settled).map(|r| r as Arc<dyn Observer>)
    }

    /// `recordingStatusChanged` for `r` as it is now (`None` when neither webhook nor CDR
    /// wants it). Its `duration` is the recording's, in seconds as a double.
    pub fn recording_event(&self, r: &crate::recording::Recording) -> Option<Event> {
        let at = if r.status == crate::recording::Status::Started {
            r.created_at
        } else {
            crate::rooms::now_ms()
        };
        let mut body = Map::new();
        body.insert("startTime".into(), r.created_at.into());
        body.insert("duration".into(), r.duration.into());
        if r.status != crate::recording::Status::Started
            && let Some(reason) = r.stop_reason()
        {
            body.insert(
                "reason".into(),
                super::wire::stop_reason_name(reason).into(),
            );
        }
        body.insert("id".into(), r.id.clone().into());
        body.insert("name".into(), r.name.clone().into());
        body.insert("outputMode".into(), r.output_mode.clone().into());
        if let Some(v) = &r.resolution {
            body.insert("resolution".into(), v.clone().into());
        }
        if let Some(v) = r.frame_rate {
            body.insert("frameRate".into(), v.into());
        }
        if let Some(v) = &r.recording_layout {
            body.insert("recordingLayout".into(), v.clone().into());
        }
        if let Some(v) = &r.custom_layout {
            body.insert("customLayout".into(), v.clone().into());
        }
        body.insert("hasAudio".into(), r.has_audio.into());
        body.insert("hasVideo".into(), r.has_video.into());
        body.insert("size".into(), r.size.into());
        body.insert(
            "status".into(),
            serde_json::to_value(r.status).unwrap_or_default(),
        );
        let session = (r.session_id.as_str(), r.unique_session_id.as_str());
        self.event_in(session, "recordingStatusChanged", at, body)
    }

    /// The renderer itself, for the recording events too.
    pub fn renderer(settled: &Settled) -> Option<Arc<Self>> {
        let hook: HashSet<String> = settled
            .webhook
            .iter()
            .flat_map(|w| w.events.iter().cloned())
            .collect();
        let cdr = settled.config.cdr;
        if hook.is_empty() && !cdr {
            return None;
        }
        Some(Arc::new(Self { hook, cdr }))
    }

    fn event(&self, room: &Room, name: &str, at: i64, fields: Map<String, Value>) -> Option<Event> {
        let unique = unique_session_id(room);
        self.event_in((room.id().as_str(), &unique), name, at, fields)
    }

    /// Event `name` of the session `(id, unique id)` at `at`: the common members, then
    /// `fields`; `None` when neither webhook nor CDR wants it.
    fn event_in(
        &self,
        (session, unique): (&str, &str),
        name: &str,
        at: i64,
        fields: Map<String, Value>,
    ) -> Option<Event> {
        let hook = self.hook.contains(name);
        if !hook && !self.cdr {
            return None;
        }
        let mut body = Map::new();
        body.insert("sessionId".into(), session.into());
        body.insert("uniqueSessionId".into(), unique.into());
        body.insert("timestamp".into(), at.into());
        body.extend(fields);
        Some(Event {
            id: event_id(),
            session: session.to_owned(),
            name: name.to_owned(),
            body: Value::Object(body).to_string(),
            created_at: at,
            hook,
            cdr: self.cdr,
        })
    }
}

/// OpenVidu's id of one life of a session: its id and creation time.
fn unique_session_id(room: &Room) -> String {
    format!("{}_{}", room.id().as_str(), room.created_at())
}

/// A random id no other event has.
fn event_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `startTime`, `duration` (whole seconds) and `reason` of an end event.
fn ended(fields: &mut Map<String, Value>, start: i64, now: i64, reason: &str) {
    fields.insert("startTime".into(), start.into());
    fields.insert("duration".into(), ((now - start).max(0) / 1000).into());
    fields.insert("reason".into(), reason.into());
}

/// The members of `participantJoined` after the common ones.
fn participant_fields(p: &Participant) -> Map<String, Value> {
    let (ip, platform, client_data) = p
        .active()
        .map(|a| (a.ip.as_str(), a.platform.as_str(), a.client_data.as_str()))
        .unwrap_or_default();
    let mut m = Map::new();
    m.insert("participantId".into(), p.id.as_str().into());
    m.insert("connectionId".into(), p.id.as_str().into());
    m.insert("location".into(), "unknown".into());
    m.insert("ip".into(), ip.into());
    m.insert("platform".into(), platform.into());
    m.insert("clientData".into(), client_data.into());
    m.insert("serverData".into(), p.data.as_str().into());
    m
}

/// The members of a `webrtcConnection*` event after the common ones: `owner`'s connection
/// sending `stream` (OUTBOUND), or receiving it from `from` (INBOUND).
fn connection_fields(
    owner: &ParticipantId,
    stream: &StreamInfo,
    from: Option<&ParticipantId>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("streamId".into(), stream.id.as_str().into());
    m.insert("participantId".into(), owner.as_str().into());
    m.insert("connectionId".into(), owner.as_str().into());
    match from {
        None => {
            m.insert("connection".into(), "OUTBOUND".into());
        }
        Some(publisher) => {
            m.insert("connection".into(), "INBOUND".into());
            m.insert("receivingFrom".into(), publisher.as_str().into());
        }
    }
    if stream.has_video {
        m.insert("videoSource".into(), stream.video_source.name().into());
        m.insert(
            "videoFramerate".into(),
            super::wire::frame_rate_value(stream.frame_rate).into(),
        );
        m.insert(
            "videoDimensions".into(),
            super::wire::dimensions_text(stream.dimensions).into(),
        );
    }
    m.insert("audioEnabled".into(), stream.has_audio.into());
    m.insert("videoEnabled".into(), stream.has_video.into());
    m
}

impl OpenViduEvents {
    /// The OpenVidu event of one room event, if it has one.
    fn render(&self, room: &Room, event: &RoomEvent, now: i64) -> Option<Event> {
        let (name, at, fields) = match event {
            RoomEvent::ParticipantJoined(p) => {
                let at = p.active().map_or(now, |a| a.joined_at);
                ("participantJoined", at, participant_fields(p))
            }
            RoomEvent::ParticipantLeft(p, reason) => {
                let mut fields = participant_fields(p);
                let joined = p.active().map_or(now, |a| a.joined_at);
                ended(&mut fields, joined, now, super::wire::reason_name(*reason));
                ("participantLeft", now, fields)
            }
            RoomEvent::StreamPublished(publisher, s) => (
                "webrtcConnectionCreated",
                s.created_at,
                connection_fields(publisher, s, None),
            ),
            RoomEvent::StreamUnpublished(publisher, s, reason) => {
                let mut fields = connection_fields(publisher, s, None);
                ended(
                    &mut fields,
                    s.created_at,
                    now,
                    super::wire::reason_name(*reason),
                );
                ("webrtcConnectionDestroyed", now, fields)
            }
            RoomEvent::Subscribed {
                subscriber,
                subscription,
                stream,
            } => (
                "webrtcConnectionCreated",
                subscription.created_at,
                connection_fields(subscriber, stream, Some(&subscription.publisher)),
            ),
            RoomEvent::SubscriptionEnded {
                subscriber,
                subscription,
                stream,
                reason,
            } => {
                let mut fields =
                    connection_fields(subscriber, stream, Some(&subscription.publisher));
                let reason = reason.map_or("unsubscribe", super::wire::reason_name);
                ended(&mut fields, subscription.created_at, now, reason);
                ("webrtcConnectionDestroyed", now, fields)
            }
            RoomEvent::SignalSent {
                from,
                to,
                kind,
                data,
            } => {
                // A browser's type carries the `signal:` prefix; the event drops it. The
                // server API's type is reported as it was given.
                let kind = match (from, kind) {
                    (Some(_), Some(k)) => Value::from(k.strip_prefix("signal:").unwrap_or(k)),
                    (_, k) => k.clone().map_or(Value::Null, Value::from),
                };
                let mut fields = Map::new();
                fields.insert(
                    "from".into(),
                    from.as_ref().map_or(Value::Null, |f| f.as_str().into()),
                );
                fields.insert(
                    "to".into(),
                    to.iter().map(|t| Value::from(t.as_str())).collect(),
                );
                fields.insert("type".into(), kind);
                fields.insert("data".into(), data.clone().map_or(Value::Null, Value::from));
                ("signalSent", now, fields)
            }
            RoomEvent::RoomClosed(reason) => {
                let mut fields = Map::new();
                ended(
                    &mut fields,
                    room.created_at(),
                    now,
                    super::wire::reason_name(*reason),
                );
                ("sessionDestroyed", now, fields)
            }
            RoomEvent::ParticipantGranted(_)
            | RoomEvent::GrantRevoked(_)
            | RoomEvent::ParticipantEvicted(..)
            | RoomEvent::StreamChanged { .. } => return None,
        };
        self.event(room, name, at, fields)
    }
}

impl Observer for OpenViduEvents {
    fn created(&self, room: &Room) -> Vec<Event> {
        self.event(room, "sessionCreated", room.created_at(), Map::new())
            .into_iter()
            .collect()
    }

    fn changed(&self, room: &Room, events: &[RoomEvent], now: i64) -> Vec<Event> {
        events
            .iter()
            .filter_map(|e| self.render(room, e, now))
            .collect()
    }

    fn vanished(
        &self,
        room: &Room,
        participant: &Participant,
        now: i64,
        reason: EndReason,
    ) -> Vec<Event> {
        let mut fields = participant_fields(participant);
        let joined = participant.active().map_or(now, |a| a.joined_at);
        ended(&mut fields, joined, now, super::wire::reason_name(reason));
        self.event(room, "participantLeft", now, fields)
            .into_iter()
            .collect()
    }
}

impl crate::calls::recording::RecordingEvents for OpenViduEvents {
    fn recording_event(&self, r: &crate::recording::Recording) -> Option<Event> {
        OpenViduEvents::recording_event(self, r)
    }
}

impl Payloads for OpenViduEvents {
    fn webhook_body(&self, e: &Event) -> String {
        webhook_body(e)
    }
    fn cdr_line(&self, e: &Event) -> String {
        cdr_line(e)
    }
    fn cdr_file_name(&self, now_ms: i64, started_ms: i64) -> String {
        cdr_file_name(now_ms, started_ms)
    }
}

/// The webhook request body: the stored body with `event` appended last.
pub fn webhook_body(e: &Event) -> String {
    let name = Value::from(e.name.as_str()).to_string();
    match e.body.strip_suffix('}') {
        Some(open) if open.trim_end().ends_with('{') => format!("{open}\"event\":{name}}}"),
        Some(open) => format!("{open},\"event\":{name}}}"),
        None => e.body.clone(),
    }
}

/// The CDR line of an event: `{"<event>": body}`.
pub fn cdr_line(e: &Event) -> String {
    format!("{{{}:{}}}", Value::from(e.name.as_str()), e.body)
}

/// The CDR file for events of the day of `now_ms` (UTC), for a server started at
/// `started_ms`: `CDR.<yyyy-MM-dd>_<HH-mm-ss of the start>.log`, a new file each day.
pub fn cdr_file_name(now_ms: i64, started_ms: i64) -> String {
    let (y, m, d) = crate::protocols::civil_from_days(now_ms.div_euclid(86_400_000));
    let secs = started_ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "CDR.{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}.log",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdr_file_names_follow_the_day_and_the_start_time() {
        // 2026-11-24 14:30:59 UTC, started at 2026-11-24 09:05:07 UTC.
        let now = 1_795_530_659_000;
        let started = 1_795_511_107_000;
        assert_eq!(cdr_file_name(now, started), "CDR.2026-11-24_09-05-07.log");
        use crate::protocols::civil_from_days;
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn bodies_get_their_event_member_last() {
        let e = Event {
            id: "1".into(),
            session: "s".into(),
            name: "sessionCreated".into(),
            body: r#"{"sessionId":"s","timestamp":1}"#.into(),
            created_at: 1,
            hook: true,
            cdr: true,
        };
        assert_eq!(
            webhook_body(&e),
            r#"{"sessionId":"s","timestamp":1,"event":"sessionCreated"}"#
        );
        assert_eq!(
            cdr_line(&e),
            r#"{"sessionCreated":{"sessionId":"s","timestamp":1}}"#
        );
        let empty = Event {
            body: "{}".into(),
            ..e
        };
        assert_eq!(webhook_body(&empty), r#"{"event":"sessionCreated"}"#);
    }
}
