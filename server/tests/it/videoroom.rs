//! The VideoRoom plugin through the Janus API, as a plain HTTP client drives it: rooms and
//! their settings, a webrtc-rs publisher and subscriber whose media flows through Camerata,
//! the room's news as events, the side ports, and requests that are malformed or come in
//! the wrong state, each answered with VideoRoom's error code while the other rooms go on.

use crate::media::{Peer, closed_by_server, feed, feed_every, packets, publisher_offer};
use crate::support::{Server, TempDir, request};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

/// A Janus session over HTTP, with the events its long poll brought kept until asked for.
struct Client {
    addr: SocketAddr,
    session: u64,
    events: Vec<Value>,
    next: u64,
}

impl Client {
    async fn new(addr: SocketAddr) -> Self {
        let created = post(
            addr,
            "/janus",
            json!({"janus": "create", "transaction": "c"}),
        )
        .await;
        Self {
            addr,
            session: created["data"]["id"].as_u64().expect("a session id"),
            events: Vec::new(),
            next: 0,
        }
    }

    async fn attach(&self) -> u64 {
        let r = post(
            self.addr,
            &format!("/janus/{}", self.session),
            json!({"janus": "attach", "transaction": "a", "plugin": "janus.plugin.videoroom"}),
        )
        .await;
        r["data"]["id"].as_u64().expect("a handle id")
    }

    /// Sends a `message`; the reply (`success` with plugin data, or `ack`) and its transaction.
    async fn send(&mut self, handle: u64, body: Value, jsep: Option<Value>) -> (Value, String) {
        self.next += 1;
        let transaction = format!("t{}", self.next);
        let mut m = json!({"janus": "message", "transaction": transaction, "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let path = format!("/janus/{}/{handle}", self.session);
        (post(self.addr, &path, m).await, transaction)
    }

    /// A synchronous request: its plugin data.
    async fn sync(&mut self, handle: u64, body: Value) -> Value {
        let (r, _) = self.send(handle, body, None).await;
        assert_eq!(r["janus"], "success", "{r}");
        assert_eq!(r["sender"].as_u64(), Some(handle));
        r["plugindata"]["data"].clone()
    }

    /// An asynchronous request: acked, then answered by an event with its transaction.
    async fn ask(&mut self, handle: u64, body: Value, jsep: Option<Value>) -> Value {
        let (r, t) = self.send(handle, body, jsep).await;
        assert_eq!(r["janus"], "ack", "{r}");
        self.event(|e| e["transaction"] == t.as_str()).await
    }

    /// The first event `wanted` takes, from those kept or the long poll.
    async fn event(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.events.iter().position(&wanted) {
                return self.events.remove(i);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "event not seen; got {:?}",
                self.events
            );
            let path = format!("/janus/{}?maxev=10", self.session);
            let r = request(self.addr, "GET", &path, None, None, &[]).await;
            match r.json {
                Value::Array(list) => self.events.extend(list),
                other => self.events.push(other),
            }
        }
    }

    /// A plugin event from `handle` whose data has `key`.
    async fn plugin_event(&mut self, handle: u64, key: &str) -> Value {
        let key = key.to_owned();
        let e = self
            .event(move |e| {
                e["sender"].as_u64() == Some(handle)
                    && e["plugindata"]["data"].get(key.as_str()).is_some()
            })
            .await;
        e["plugindata"]["data"].clone()
    }
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> Value {
    let r = request(addr, "POST", path, None, Some(&body.to_string()), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// What was in flight arrives; then nothing for a while (the track is still open).
async fn quiet(
    remote: &std::sync::Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
    what: &str,
) {
    let quiet = async {
        loop {
            match tokio::time::timeout(Duration::from_millis(1500), remote.poll()).await {
                Err(_) => return true,
                Ok(None) => return false,
                Ok(Some(_)) => {}
            }
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(15), quiet)
            .await
            .unwrap_or(false),
        "{what}"
    );
}

fn code(data: &Value) -> Option<u64> {
    data["error_code"].as_u64()
}

#[tokio::test]
async fn rooms_settings_and_wrong_requests_get_videoroom_errors() {
    let dir = TempDir::new();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--janus-http-port", "0", "--janus-ws-port", "0"],
    )
    .await;
    // The side HTTP port serves the same API as the main port's /janus.
    let side = s
        .sides
        .iter()
        .find(|(n, _)| *n == "janus-http")
        .map(|(_, a)| *a)
        .expect("the HTTP side port");
    let mut c = Client::new(side).await;
    let h = c.attach().await;

    let created = c
        .sync(
            h,
            json!({"request": "create", "room": 1234, "description": "Demo", "secret": "adminpwd",
                   "pin": "1111", "publishers": 1, "bitrate": 1000}),
        )
        .await;
    assert_eq!(
        created,
        json!({"videoroom": "created", "room": 1234, "permanent": false})
    );
    assert_eq!(
        code(&c.sync(h, json!({"request": "create", "room": 1234})).await),
        Some(427)
    );
    assert_eq!(
        code(&c.sync(h, json!({"request": "create", "room": "abc"})).await),
        Some(430)
    );
    assert_eq!(
        code(
            &c.sync(h, json!({"request": "create", "videocodec": "theora"}))
                .await
        ),
        Some(430)
    );
    let list = c.sync(h, json!({"request": "list"})).await;
    let room = list["list"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["room"] == 1234))
        .cloned()
        .expect("listed");
    assert_eq!(room["description"], "Demo");
    assert_eq!(room["pin_required"], true);
    assert_eq!(room["max_publishers"], 1);
    assert_eq!(room["bitrate"], 64000, "raised to Janus's floor");
    assert_eq!(
        c.sync(h, json!({"request": "exists", "room": 99})).await,
        json!({"videoroom": "success", "room": 99, "exists": false})
    );
    // Secret: missing 429, wrong 433, right edits; the edit is stored.
    let edit = json!({"request": "edit", "room": 1234, "new_description": "Renamed"});
    assert_eq!(code(&c.sync(h, edit.clone()).await), Some(429));
    let mut wrong = edit.clone();
    wrong["secret"] = "nope".into();
    let refused = c.sync(h, wrong).await;
    assert_eq!(
        (code(&refused), refused["error"].as_str()),
        (Some(433), Some("Unauthorized (wrong secret)"))
    );
    let mut right = edit;
    right["secret"] = "adminpwd".into();
    assert_eq!(c.sync(h, right).await["videoroom"], "edited");
    let allowed = c
        .sync(
            h,
            json!({"request": "allowed", "room": 1234, "secret": "adminpwd", "action": "add",
                   "allowed": ["t1", "t2"]}),
        )
        .await;
    assert_eq!(allowed["allowed"], json!(["t1", "t2"]));
    assert_eq!(
        code(
            &c.sync(
                h,
                json!({"request": "allowed", "room": 1234, "secret": "adminpwd", "action": "fly"})
            )
            .await
        ),
        Some(430)
    );
    // The OpenVidu REST API sees the same room.
    let ov = s.call("GET", "/openvidu/api/sessions/1234", None).await;
    assert_eq!(ov.status, 200, "{}", ov.text);
    assert_eq!(ov.json["customSessionId"], "1234");

    // Malformed messages and unknown requests.
    let (no_body, _) = c.send(h, Value::Null, None).await;
    assert_eq!(no_body["janus"], "error", "{no_body}");
    let (r, _) = c.send(h, json!({}), None).await;
    assert_eq!(code(&r["plugindata"]["data"]), Some(429));
    assert_eq!(code(&c.sync(h, json!({"request": "fly"})).await), Some(423));
    assert_eq!(
        code(
            &c.sync(h, json!({"request": "rtp_forward", "room": 1234}))
                .await
        ),
        Some(423)
    );
    // Requests in the wrong state, or with the wrong credentials.
    let e = c.ask(h, json!({"request": "configure"}), None).await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(424));
    let e = c
        .ask(
            h,
            json!({"request": "join", "room": 77, "ptype": "publisher"}),
            None,
        )
        .await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(426));
    let e = c
        .ask(
            h,
            json!({"request": "join", "room": 1234, "ptype": "publisher", "pin": "0"}),
            None,
        )
        .await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(433));
    let e = c
        .ask(
            h,
            json!({"request": "join", "room": 1234, "ptype": "publisher", "pin": "1111"}),
            None,
        )
        .await;
    assert_eq!(
        e["plugindata"]["data"]["error"], "Unauthorized (not in the allowed list)",
        "{e}"
    );
    let joined = c
        .ask(
            h,
            json!({"request": "join", "room": 1234, "ptype": "publisher", "pin": "1111",
                   "token": "t2", "id": 7001, "display": "alice"}),
            None,
        )
        .await;
    let data = &joined["plugindata"]["data"];
    assert_eq!(data["videoroom"], "joined", "{joined}");
    assert_eq!(
        (data["id"].as_u64(), data["room"].as_u64()),
        (Some(7001), Some(1234))
    );
    assert!(data["private_id"].as_u64().is_some_and(|p| p > 0));
    let again = c
        .ask(
            h,
            json!({"request": "join", "room": 1234, "ptype": "publisher"}),
            None,
        )
        .await;
    assert_eq!(code(&again["plugindata"]["data"]), Some(425));
    let e = c.ask(h, json!({"request": "unpublish"}), None).await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(435));
    let e = c.ask(h, json!({"request": "publish"}), None).await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(429), "{e}");
    // A subscriber: no feed named, then a feed that does not publish.
    let sub = c.attach().await;
    let e = c
        .ask(
            sub,
            json!({"request": "join", "room": 1234, "ptype": "subscriber", "pin": "1111"}),
            None,
        )
        .await;
    assert_eq!(
        e["plugindata"]["data"]["error"],
        "Missing mandatory element (feed)"
    );
    let e = c
        .ask(
            sub,
            json!({"request": "join", "room": 1234, "ptype": "subscriber", "pin": "1111",
                   "streams": [{"feed": 7001}]}),
            None,
        )
        .await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(428));
    let listed = c
        .sync(h, json!({"request": "listparticipants", "room": 1234}))
        .await;
    assert_eq!(
        listed["participants"],
        json!([{"id": 7001, "display": "alice", "publisher": false}])
    );
    // A second session is kicked out by the server API; the first sees `kicked`.
    let mut other = Client::new(s.addr).await;
    let oh = other.attach().await;
    let j = other
        .ask(
            oh,
            json!({"request": "join", "room": 1234, "ptype": "publisher", "pin": "1111",
                   "token": "t1", "id": 7002}),
            None,
        )
        .await;
    assert_eq!(j["plugindata"]["data"]["videoroom"], "joined");
    assert_eq!(
        code(
            &c.sync(
                h,
                json!({"request": "kick", "room": 1234, "secret": "adminpwd", "id": 9})
            )
            .await
        ),
        Some(428)
    );
    assert_eq!(
        c.sync(
            h,
            json!({"request": "kick", "room": 1234, "secret": "adminpwd", "id": 7002})
        )
        .await,
        json!({"videoroom": "success"})
    );
    let kicked = other.plugin_event(oh, "leaving").await;
    assert_eq!(
        (kicked["leaving"].as_str(), kicked["reason"].as_str()),
        (Some("ok"), Some("kicked"))
    );
    assert_eq!(c.plugin_event(h, "kicked").await["kicked"], 7002);
    // As on Janus, a kicked handle's next request finds no room.
    let e = other.ask(oh, json!({"request": "configure"}), None).await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(426));

    // Destroying the room tells its participants; the room is gone for both doors.
    let destroyed = c
        .sync(
            h,
            json!({"request": "destroy", "room": 1234, "secret": "adminpwd"}),
        )
        .await;
    assert_eq!(destroyed["videoroom"], "destroyed");
    let told = c
        .event(|e| e["plugindata"]["data"]["videoroom"] == "destroyed")
        .await;
    assert_eq!(told["sender"].as_u64(), Some(h));
    assert_eq!(
        s.call("GET", "/openvidu/api/sessions/1234", None)
            .await
            .status,
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn a_publisher_and_a_subscriber_exchange_media_through_videoroom() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let mut c = Client::new(s.addr).await;
    let ph = c.attach().await;
    assert_eq!(
        c.sync(
            ph,
            json!({"request": "create", "room": 5555, "fir_freq": 1})
        )
        .await["videoroom"],
        "created"
    );
    // Another room carries on whatever happens in this one.
    assert_eq!(
        c.sync(ph, json!({"request": "create", "room": 6666})).await["videoroom"],
        "created"
    );

    let (mut publisher, track, offer) = publisher_offer().await;
    let joined = c
        .ask(
            ph,
            json!({"request": "joinandconfigure", "room": 5555, "ptype": "publisher",
                   "id": 8001, "display": "pub",
                   "descriptions": [{"mid": "0", "description": "front camera"}]}),
            Some(json!({"type": "offer", "sdp": offer})),
        )
        .await;
    assert_eq!(
        joined["plugindata"]["data"]["videoroom"], "joined",
        "{joined}"
    );
    let answer = joined["jsep"]["sdp"]
        .as_str()
        .expect("an answer")
        .to_owned();
    assert_eq!(joined["jsep"]["type"], "answer");
    assert!(
        answer.contains("a=candidate:"),
        "Janus clients expect the server's candidates in the SDP: {answer}"
    );
    publisher.accept(&answer, &[]).await;
    let feeding = feed(track.clone());
    // Keyframe requests reaching the publisher: the room's fir_freq asks every second.
    let (plis_tx, mut plis) = tokio::sync::mpsc::unbounded_channel();
    let watched = std::sync::Arc::clone(&track);
    tokio::spawn(async move {
        use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
        while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = watched.poll().await {
            if packets
                .iter()
                .any(|p| camerata_server::media::is_keyframe_request(p.as_ref()))
            {
                let _ = plis_tx.send(());
            }
        }
    });
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(10), plis.recv())
            .await
            .expect("keyframe requests keep coming")
            .expect("the track is open");
    }
    // The core events of the publisher's peer connection: up, then its video arriving.
    c.event(|e| e["janus"] == "webrtcup" && e["sender"].as_u64() == Some(ph))
        .await;
    let media = c
        .event(|e| e["janus"] == "media" && e["sender"].as_u64() == Some(ph))
        .await;
    assert_eq!(
        (media["type"].as_str(), media["receiving"].as_bool()),
        (Some("video"), Some(true)),
        "{media}"
    );
    assert_eq!(media["mid"], "0");
    // Publishing again is refused.
    let (_, _, offer2) = publisher_offer().await;
    let twice = c
        .ask(
            ph,
            json!({"request": "publish"}),
            Some(json!({"type": "offer", "sdp": offer2})),
        )
        .await;
    assert_eq!(code(&twice["plugindata"]["data"]), Some(434));

    // A subscriber handle, receiving as the publisher's private id.
    let private_id = joined["plugindata"]["data"]["private_id"].clone();
    let sh = c.attach().await;
    let attached = c
        .ask(
            sh,
            json!({"request": "join", "room": 5555, "ptype": "subscriber",
                   "private_id": private_id, "streams": [{"feed": 8001}]}),
            None,
        )
        .await;
    let data = &attached["plugindata"]["data"];
    assert_eq!(data["videoroom"], "attached", "{attached}");
    assert_eq!(data["streams"][0]["feed_id"], 8001);
    assert_eq!(data["streams"][0]["type"], "video");
    assert_eq!(data["streams"][0]["codec"], "vp8");
    assert_eq!(data["streams"][0]["feed_description"], "front camera");
    let offer = attached["jsep"]["sdp"]
        .as_str()
        .expect("an offer")
        .to_owned();
    let mut subscriber = Peer::new().await;
    let answer = subscriber.answer(&offer).await;
    let started = c
        .ask(
            sh,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )
        .await;
    assert_eq!(started["plugindata"]["data"]["started"], "ok", "{started}");
    c.event(|e| e["janus"] == "webrtcup" && e["sender"].as_u64() == Some(sh))
        .await;
    let remote = tokio::time::timeout(Duration::from_secs(15), subscriber.tracks.recv())
        .await
        .expect("a track within 15 s")
        .expect("a remote track");
    packets(&remote, 20).await;

    // The OpenVidu REST API sees the Janus publisher and its stream.
    let ov = s.call("GET", "/openvidu/api/sessions/5555", None).await;
    let connections = ov.json["connections"]["content"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(connections.len(), 1, "{}", ov.text);
    assert_eq!(connections[0]["connectionId"], "8001");
    assert_eq!(connections[0]["clientData"], "pub");
    assert_eq!(
        connections[0]["publishers"].as_array().map(Vec::len),
        Some(1)
    );

    // Moderation stops the forwarding of the video (the publisher keeps sending); every
    // publisher in the room hears of it, the target included; unmuting resumes it.
    let moderate = |mute: bool| json!({"request": "moderate", "room": 5555, "id": 8001, "mid": "0", "mute": mute});
    assert_eq!(
        code(
            &c.sync(
                ph,
                json!({"request": "moderate", "room": 5555, "id": 8001, "mid": "7", "mute": true})
            )
            .await
        ),
        Some(428)
    );
    assert_eq!(
        c.sync(ph, moderate(true)).await,
        json!({"videoroom": "success"})
    );
    let told = c.plugin_event(ph, "moderation").await;
    assert_eq!(
        (told["id"].as_u64(), told["moderation"].as_str()),
        (Some(8001), Some("muted"))
    );
    let ov = s.call("GET", "/openvidu/api/sessions/5555", None).await;
    assert_eq!(
        ov.json["connections"]["content"][0]["publishers"][0]["mediaOptions"]["videoActive"], false,
        "{}",
        ov.text
    );
    quiet(&remote, "the muted video stops reaching the subscriber").await;
    c.sync(ph, moderate(false)).await;
    packets(&remote, 10).await;

    // The subscriber pauses and starts again; then stops its video by mid, and resumes it.
    let paused = c.ask(sh, json!({"request": "pause"}), None).await;
    assert_eq!(paused["plugindata"]["data"]["paused"], "ok", "{paused}");
    quiet(&remote, "a paused subscription receives nothing").await;
    let started = c.ask(sh, json!({"request": "start"}), None).await;
    assert_eq!(started["plugindata"]["data"]["started"], "ok");
    packets(&remote, 10).await;
    let mid = data["streams"][0]["mid"]
        .as_str()
        .expect("a mid")
        .to_owned();
    let unknown = c
        .ask(
            sh,
            json!({"request": "configure", "streams": [{"mid": "9", "send": false}]}),
            None,
        )
        .await;
    assert_eq!(code(&unknown["plugindata"]["data"]), Some(428));
    let off = c
        .ask(
            sh,
            json!({"request": "configure", "streams": [{"mid": mid, "send": false}]}),
            None,
        )
        .await;
    assert_eq!(off["plugindata"]["data"]["configured"], "ok", "{off}");
    quiet(&remote, "a stream not sent stops").await;
    c.ask(
        sh,
        json!({"request": "configure", "streams": [{"mid": mid, "send": true}]}),
        None,
    )
    .await;
    packets(&remote, 10).await;

    // Unpublishing ends the subscription's peer connection and hangs up the publisher's.
    let unpublished = c.ask(ph, json!({"request": "unpublish"}), None).await;
    assert_eq!(unpublished["plugindata"]["data"]["unpublished"], "ok");
    let hangup = c
        .event(|e| e["janus"] == "hangup" && e["sender"].as_u64() == Some(ph))
        .await;
    assert_eq!(hangup["reason"], "Close PC");
    closed_by_server(&mut subscriber).await;
    feeding.abort();
    assert_eq!(
        c.sync(ph, json!({"request": "exists", "room": 6666})).await["exists"],
        true
    );

    // Detaching the publisher's handle leaves the room; the room stays, empty.
    let detached = post(
        s.addr,
        &format!("/janus/{}/{ph}", c.session),
        json!({"janus": "detach", "transaction": "d"}),
    )
    .await;
    assert_eq!(detached["janus"], "success");
    let ov = s.call("GET", "/openvidu/api/sessions/5555", None).await;
    assert_eq!(ov.status, 200, "a Janus room outlives its participants");
    let _ = publisher.pc.close().await;
    let _ = subscriber.pc.close().await;
    s.stop().await;
}

#[tokio::test]
async fn the_websocket_side_port_upgrades_any_path() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &["--janus-ws-port", "0"]).await;
    let addr = s
        .sides
        .iter()
        .find(|(n, _)| *n == "janus-ws")
        .map(|(_, a)| *a)
        .expect("the WebSocket side port");
    assert!(
        !s.sides.iter().any(|(n, _)| *n == "janus-http"),
        "the HTTP side port is off"
    );
    let mut request = format!("ws://{addr}/any/path")
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "janus-protocol".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    ws.send(Message::Text(
        json!({"janus": "create", "transaction": "c"})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a reply")
        .expect("open")
        .expect("frame");
    let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("JSON");
    assert_eq!(reply["janus"], "success");
    // A session made over HTTP is claimed by the socket: its events come there from now on.
    let mut c = Client::new(s.addr).await;
    let h = c.attach().await;
    ws.send(Message::Text(
        json!({"janus": "claim", "transaction": "cl", "session_id": c.session})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    let mut next = async || -> Value {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message")
            .expect("open")
            .expect("frame");
        serde_json::from_str(m.to_text().expect("text")).expect("JSON")
    };
    let claimed = next().await;
    assert_eq!(
        (claimed["janus"].as_str(), claimed["session_id"].as_u64()),
        (Some("success"), Some(c.session)),
        "{claimed}"
    );
    let (acked, t) = c.send(h, json!({"request": "configure"}), None).await;
    assert_eq!(acked["janus"], "ack");
    let event = next().await;
    assert_eq!(event["transaction"], t.as_str(), "{event}");
    assert_eq!(code(&event["plugindata"]["data"]), Some(424));
    s.stop().await;
}

#[tokio::test]
async fn an_api_secret_or_a_signed_token_is_required_when_configured() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let dir = TempDir::new();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--janus-api-secret", "s3", "--janus-token-secret", "k"],
    )
    .await;
    let info = request(s.addr, "GET", "/janus/info", None, None, &[]).await;
    assert_eq!(
        (
            info.json["api_secret"].as_bool(),
            info.json["auth_token"].as_bool()
        ),
        (Some(true), Some(true)),
        "info needs no credentials and tells what is on"
    );
    let refused = post(
        s.addr,
        "/janus",
        json!({"janus": "create", "transaction": "c"}),
    )
    .await;
    assert_eq!(refused["error"]["code"], 403, "{refused}");
    let created = post(
        s.addr,
        "/janus",
        json!({"janus": "create", "transaction": "c", "apisecret": "s3"}),
    )
    .await;
    let sid = created["data"]["id"]
        .as_u64()
        .expect("created with the secret");
    let sign = |text: &str| {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"k").expect("a key");
        mac.update(text.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("{text}:{sig}")
    };
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let echo_only = sign(&format!("{later},janus,janus.plugin.echotest"));
    let r = post(
        s.addr,
        &format!("/janus/{sid}"),
        json!({"janus": "attach", "transaction": "a", "plugin": "janus.plugin.videoroom",
               "token": echo_only}),
    )
    .await;
    assert_eq!(r["error"]["code"], 405, "{r}");
    let videoroom = sign(&format!("{later},janus,janus.plugin.videoroom"));
    let r = post(
        s.addr,
        &format!("/janus/{sid}"),
        json!({"janus": "attach", "transaction": "a", "plugin": "janus.plugin.videoroom",
               "token": videoroom}),
    )
    .await;
    assert!(r["data"]["id"].as_u64().is_some(), "{r}");
    let expired = sign("1000,janus,janus.plugin.videoroom");
    let r = post(
        s.addr,
        &format!("/janus/{sid}"),
        json!({"janus": "keepalive", "transaction": "k", "token": expired}),
    )
    .await;
    assert_eq!(r["error"]["code"], 403, "{r}");
    // The long poll carries them in its query.
    let poll = request(
        s.addr,
        "GET",
        &format!("/janus/{sid}?maxev=1"),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(poll.status, 403);
    post(
        s.addr,
        &format!("/janus/{sid}"),
        json!({"janus": "destroy", "transaction": "d", "apisecret": "s3"}),
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn one_subscription_carries_two_feeds_and_drops_one() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let mut c = Client::new(s.addr).await;
    let h = c.attach().await;
    c.sync(h, json!({"request": "create", "room": 7777})).await;
    // Two publishers.
    let mut publishers = Vec::new();
    let mut publisher_handles = Vec::new();
    for id in [8101, 8102, 8103] {
        let ph = c.attach().await;
        publisher_handles.push(ph);
        let (mut peer, track, offer) = publisher_offer().await;
        let joined = c
            .ask(
                ph,
                json!({"request": "joinandconfigure", "room": 7777, "ptype": "publisher",
                       "id": id}),
                Some(json!({"type": "offer", "sdp": offer})),
            )
            .await;
        peer.accept(joined["jsep"]["sdp"].as_str().expect("an answer"), &[])
            .await;
        publishers.push((peer, feed(track)));
    }
    // One subscriber handle, first with one feed.
    let sh = c.attach().await;
    let attached = c
        .ask(
            sh,
            json!({"request": "join", "room": 7777, "ptype": "subscriber",
                   "streams": [{"feed": 8101}]}),
            None,
        )
        .await;
    assert_eq!(
        attached["plugindata"]["data"]["streams"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let mut subscriber = Peer::new().await;
    let answer = subscriber
        .answer(attached["jsep"]["sdp"].as_str().expect("an offer"))
        .await;
    c.ask(
        sh,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    )
    .await;
    let first = tokio::time::timeout(Duration::from_secs(15), subscriber.tracks.recv())
        .await
        .expect("a track")
        .expect("the first feed");
    packets(&first, 10).await;

    // The second and third feeds join the same peer connection: `updated` with a new offer.
    let updated = c
        .ask(
            sh,
            json!({"request": "update", "subscribe": [{"feed": 8102}, {"feed": 8103}]}),
            None,
        )
        .await;
    let data = &updated["plugindata"]["data"];
    assert_eq!(data["videoroom"], "updated", "{updated}");
    let feeds: Vec<u64> = data["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|x| x["feed_id"].as_u64())
        .collect();
    assert_eq!(feeds, vec![8101, 8102, 8103]);
    let answer = subscriber
        .reanswer(updated["jsep"]["sdp"].as_str().expect("an offer"))
        .await;
    c.ask(
        sh,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    )
    .await;
    let mut later = Vec::new();
    for _ in 0..2 {
        later.push(
            tokio::time::timeout(Duration::from_secs(15), subscriber.tracks.recv())
                .await
                .expect("another track")
                .expect("a later feed"),
        );
    }
    for track in &later {
        packets(track, 10).await;
    }
    packets(&first, 10).await;

    // The third publisher leaves: the subscription updates by itself (autoupdate), its
    // section inactive in a new offer sent without a transaction.
    let gone = post(
        s.addr,
        &format!("/janus/{}/{}", c.session, publisher_handles[2]),
        json!({"janus": "detach", "transaction": "gone"}),
    )
    .await;
    assert_eq!(gone["janus"], "success");
    let auto = c
        .event(|e| {
            e["sender"].as_u64() == Some(sh)
                && e["plugindata"]["data"]["videoroom"] == "updated"
                && e.get("transaction").is_none()
        })
        .await;
    let actives: Vec<(Option<u64>, Option<bool>)> = auto["plugindata"]["data"]["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|x| (x["feed_id"].as_u64(), x["active"].as_bool()))
        .collect();
    assert_eq!(
        actives,
        vec![
            (Some(8101), Some(true)),
            (Some(8102), Some(true)),
            (None, Some(false))
        ],
        "{auto}"
    );
    let answer = subscriber
        .reanswer(auto["jsep"]["sdp"].as_str().expect("an offer"))
        .await;
    c.ask(
        sh,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    )
    .await;
    // Of the two later tracks (they opened in either order), the second feed's goes on.
    let mut second = None;
    for track in later {
        if tokio::time::timeout(Duration::from_secs(3), packets(&track, 5))
            .await
            .is_ok()
        {
            second = Some(track);
            break;
        }
    }
    let second = second.expect("the second feed's track goes on");
    packets(&first, 10).await;
    // Subscribing to a feed already carried changes nothing.
    let same = c
        .ask(
            sh,
            json!({"request": "subscribe", "streams": [{"feed": 8102}]}),
            None,
        )
        .await;
    assert_eq!(
        same["plugindata"]["data"],
        json!({"videoroom": "updated", "room": 7777})
    );
    assert!(same.get("jsep").is_none());

    // The first feed leaves the subscription: its section goes inactive, the second goes on.
    let updated = c
        .ask(
            sh,
            json!({"request": "unsubscribe", "streams": [{"feed": 8101}]}),
            None,
        )
        .await;
    let streams = updated["plugindata"]["data"]["streams"]
        .as_array()
        .cloned()
        .expect("streams");
    assert_eq!(
        streams
            .iter()
            .map(|x| x["active"].as_bool())
            .collect::<Vec<_>>(),
        vec![Some(false), Some(true), Some(false)],
        "{updated}"
    );
    let answer = subscriber
        .reanswer(updated["jsep"]["sdp"].as_str().expect("an offer"))
        .await;
    c.ask(
        sh,
        json!({"request": "start"}),
        Some(json!({"type": "answer", "sdp": answer})),
    )
    .await;
    quiet(&first, "the unsubscribed feed stops").await;
    packets(&second, 10).await;

    // The remaining section switches to the first feed's video without renegotiating: it
    // keeps flowing once the second publisher stops sending.
    let sub_mid = streams[1]["mid"].as_str().expect("a mid").to_owned();
    let switched = c
        .ask(
            sh,
            json!({"request": "switch", "streams": [{"feed": 8101, "mid": "0", "sub_mid": sub_mid}]}),
            None,
        )
        .await;
    let data = &switched["plugindata"]["data"];
    assert_eq!(
        (data["switched"].as_str(), data["changes"].as_u64()),
        (Some("ok"), Some(1)),
        "{switched}"
    );
    assert!(switched.get("jsep").is_none(), "no renegotiation");
    let carried: Vec<u64> = data["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|x| x["feed_id"].as_u64())
        .collect();
    assert_eq!(carried, vec![8101]);
    publishers[1].1.abort();
    packets(&second, 20).await;
    let e = c
        .ask(
            sh,
            json!({"request": "switch", "streams": [{"feed": 8101, "mid": "0", "sub_mid": "nine"}]}),
            None,
        )
        .await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(428));
    // update with neither list is refused.
    let e = c.ask(sh, json!({"request": "update"}), None).await;
    assert_eq!(code(&e["plugindata"]["data"]), Some(429));
    for (peer, feeding) in publishers {
        feeding.abort();
        let _ = peer.pc.close().await;
    }
    let _ = subscriber.pc.close().await;
    s.stop().await;
}

#[tokio::test]
async fn floods_of_bad_polls_and_bodies_are_each_answered_and_rooms_go_on() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let mut c = Client::new(s.addr).await;
    let h = c.attach().await;
    c.sync(h, json!({"request": "create", "room": 9090})).await;
    let addr = s.addr;
    let polls = (0..200u64).map(|i| {
        tokio::spawn(async move {
            request(
                addr,
                "GET",
                &format!("/janus/{}?maxev=5", 1000 + i),
                None,
                None,
                &[],
            )
            .await
            .status
        })
    });
    let bodies = (0..200).map(|i| {
        tokio::spawn(async move {
            let body = if i % 2 == 0 { "{\"janus\": " } else { "[1, 2]" };
            request(addr, "POST", "/janus", None, Some(body), &[])
                .await
                .json["error"]["code"]
                .as_u64()
        })
    });
    let polls = futures_util::future::join_all(polls).await;
    let bodies = futures_util::future::join_all(bodies).await;
    assert!(
        polls.iter().all(|r| matches!(r, Ok(404))),
        "a poll on no session: 404"
    );
    assert!(
        bodies
            .iter()
            .all(|r| matches!(r, Ok(Some(454)) | Ok(Some(455)))),
        "malformed bodies: Janus's JSON errors"
    );
    // The room and its session are untouched.
    assert_eq!(
        c.sync(h, json!({"request": "exists", "room": 9090})).await["exists"],
        true
    );
    s.stop().await;
}

#[tokio::test]
async fn a_publisher_losing_packets_gets_slowlink_events_over_the_threshold() {
    let dir = TempDir::new();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--janus-slowlink-threshold", "5"],
    )
    .await;
    let mut c = Client::new(s.addr).await;
    let ph = c.attach().await;
    c.sync(ph, json!({"request": "create", "room": 3131})).await;
    let (mut publisher, track, offer) = publisher_offer().await;
    let joined = c
        .ask(
            ph,
            json!({"request": "joinandconfigure", "room": 3131, "ptype": "publisher"}),
            Some(json!({"type": "offer", "sdp": offer})),
        )
        .await;
    publisher
        .accept(joined["jsep"]["sdp"].as_str().expect("an answer"), &[])
        .await;
    // Every other packet never leaves: the server sees half of them missing.
    let sending = feed_every(track, 2);
    let slow = c
        .event(|e| e["janus"] == "slowlink" && e["sender"].as_u64() == Some(ph))
        .await;
    assert_eq!(slow["uplink"], true, "{slow}");
    assert_eq!(slow["media"], "video");
    assert!(slow["lost"].as_u64().is_some_and(|n| n >= 5), "{slow}");
    sending.abort();
    let _ = publisher.pc.close().await;
    s.stop().await;
}
