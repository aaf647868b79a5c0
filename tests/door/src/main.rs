//! A second front door, used only by the tests: a tiny JSON-over-WebSocket protocol at
//! `/tiny`, served beside OpenVidu's on the same rooms. It is the design test of the call
//! layer: it speaks only to `camerata_server::calls` (admission, publish, subscribe with the
//! server offering, leave) and renders room notices, deciding nothing itself, so that a
//! participant it admits and an openvidu-browser participant see and hear each other.
//!
//! Requests are JSON objects with an `op` and an optional `ref` echoed in the reply:
//! `join {room, name}` -> `joined {id, streams}`; `publish {sdp, audio, video}` (the client
//! offers) -> `published {stream, sdp, candidates}`; `subscribe {stream}` (the server offers,
//! candidates in the SDP) -> `offer {stream, sdp}`; `answer {stream, sdp}` -> `ok`. Events:
//! `stream {stream, publisher, audio, video}` and `gone {stream}`. Failures: `error {message}`.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use camerata_server::calls::{Admission, Calls, Candidates, Kinds, Member};
use camerata_server::protocols::{Door, DoorEvents, Served};
use camerata_server::room::{
    ActiveInfo, ParticipantId, Role, RoomId, StreamId, StreamInfo, VideoSource,
};
use camerata_server::rooms::{Notice, SINK_CAPACITY};
use camerata_server::{Config, Listeners};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The tiny door: no events of its own, one WebSocket route.
struct Tiny;

impl Door for Tiny {
    fn events(&self) -> Option<DoorEvents> {
        None
    }

    fn recording_notice_roles(&self) -> Vec<Role> {
        Vec::new()
    }

    fn routes(&self, served: Served) -> camerata_server::protocols::Routes {
        axum::Router::new()
            .route("/tiny", axum::routing::get(upgrade))
            .with_state(served.calls)
            .into()
    }
}

async fn upgrade(State(calls): State<Calls>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| connection(calls, socket))
}

/// What one socket holds: the participant it admitted and that participant's notices.
struct Session {
    calls: Calls,
    member: Option<Member>,
    notices: Option<mpsc::Receiver<Arc<Notice>>>,
}

fn stream_json(publisher: &ParticipantId, s: &StreamInfo) -> Value {
    json!({ "stream": s.id.as_str(), "publisher": publisher.as_str(),
            "audio": s.has_audio, "video": s.has_video })
}

fn text(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("'{key}' must be a string"))
}

impl Session {
    fn member(&self) -> Result<&Member, String> {
        self.member.as_ref().ok_or_else(|| "join first".to_owned())
    }

    async fn request(&mut self, req: &Value) -> Result<Value, String> {
        match req.get("op").and_then(Value::as_str).unwrap_or_default() {
            "join" => {
                if self.member.is_some() {
                    return Err("already joined".into());
                }
                let room = RoomId::new(text(req, "room")?);
                let id = ParticipantId::new(format!("tiny_{:08x}", rand::random::<u32>()));
                let info = ActiveInfo {
                    joined_at: camerata_server::rooms::now_ms(),
                    ip: "127.0.0.1".into(),
                    platform: "tiny".into(),
                    client_data: text(req, "name").unwrap_or_default(),
                    door: "door".to_owned(),
                    streams: Vec::new(),
                    subscriptions: Vec::new(),
                };
                let (tx, rx) = mpsc::channel(SINK_CAPACITY);
                let admission = Admission::Door {
                    id,
                    role: Role::Publisher,
                    data: String::new(),
                };
                let (member, me, others) = self
                    .calls
                    .join(&room, admission, info, tx)
                    .await
                    .map_err(|e| e.to_string())?;
                self.member = Some(member);
                self.notices = Some(rx);
                let streams: Vec<Value> = others
                    .iter()
                    .flat_map(|p| p.streams().iter().map(|s| stream_json(&p.id, s)))
                    .collect();
                Ok(json!({ "op": "joined", "id": me.id.as_str(), "streams": streams }))
            }
            "publish" => {
                let m = self.member()?.clone();
                let flag = |k: &str| req.get(k).and_then(Value::as_bool).unwrap_or(true);
                let id = StreamId::new(format!("{}_{:04x}", m.participant, rand::random::<u16>()));
                let stream = StreamInfo {
                    id: id.clone(),
                    created_at: camerata_server::rooms::now_ms(),
                    has_audio: flag("audio"),
                    has_video: flag("video"),
                    audio_active: true,
                    video_active: true,
                    video_source: VideoSource::Camera,
                    frame_rate: None,
                    dimensions: None,
                };
                let answer = self
                    .calls
                    .publish(&m, stream, text(req, "sdp")?, false, Candidates::Trickled)
                    .await
                    .map_err(|e| e.to_string())?;
                let candidates: Vec<Value> = answer
                    .candidates
                    .iter()
                    .map(|c| {
                        json!({ "candidate": c.candidate, "sdpMid": c.sdp_mid,
                                     "sdpMLineIndex": c.sdp_mline_index })
                    })
                    .collect();
                Ok(
                    json!({ "op": "published", "stream": id.as_str(), "sdp": answer.sdp,
                           "candidates": candidates }),
                )
            }
            "subscribe" => {
                let m = self.member()?.clone();
                let stream = StreamId::new(text(req, "stream")?);
                let (_, offer) = self
                    .calls
                    .offer_subscription(&m, &stream, Kinds::ALL, Candidates::InSdp)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({ "op": "offer", "stream": stream.as_str(), "sdp": offer.sdp }))
            }
            "answer" => {
                let m = self.member()?.clone();
                let stream = StreamId::new(text(req, "stream")?);
                self.calls
                    .answer_subscription(&m, std::slice::from_ref(&stream), text(req, "sdp")?)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({ "op": "ok" }))
            }
            other => Err(format!("unknown op '{other}'")),
        }
    }
}

/// A room notice as a tiny event; `None` for what this protocol does not tell.
fn event(notice: &Notice) -> Option<Value> {
    match notice {
        Notice::Published(publisher, s) => {
            let mut v = stream_json(publisher, s);
            v["op"] = "stream".into();
            Some(v)
        }
        Notice::Unpublished(_, stream, _) => {
            Some(json!({ "op": "gone", "stream": stream.as_str() }))
        }
        _ => None,
    }
}

async fn next(rx: &mut Option<mpsc::Receiver<Arc<Notice>>>) -> Option<Arc<Notice>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn connection(calls: Calls, socket: WebSocket) {
    let (mut out, mut input) = socket.split();
    let mut s = Session {
        calls,
        member: None,
        notices: None,
    };
    loop {
        let reply = tokio::select! {
            frame = input.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let req: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    let mut reply = s.request(&req).await.unwrap_or_else(|message| {
                        json!({ "op": "error", "message": message })
                    });
                    if let Some(r) = req.get("ref") {
                        reply["ref"] = r.clone();
                    }
                    reply
                }
                Some(Ok(_)) => continue,
                _ => break,
            },
            notice = next(&mut s.notices) => match notice {
                Some(n) => match event(&n) {
                    Some(e) => e,
                    None => continue,
                },
                None => break,
            },
        };
        if out
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    if let Some(m) = &s.member {
        let _ = s.calls.leave(m).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::from_args();
    let listeners = Listeners::bind(&config)?;
    let local = listeners.local_addr()?;
    let settled = config.settle(local)?;
    tracing::info!("Camerata with the tiny test door listening on {local}");
    let (ready, _) = tokio::sync::oneshot::channel();
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    let shutdown = async move {
        tokio::select! { () = stop => {}, () = term => {} }
    };
    camerata_server::run_with_doors(settled, listeners, shutdown, ready, vec![Box::new(Tiny)]).await
}
