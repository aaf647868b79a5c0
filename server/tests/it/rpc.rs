//! The JSON-RPC signaling at `/openvidu`, driven over a real WebSocket as openvidu-browser
//! drives it: join with a token, notifications between participants, signals, moderation,
//! leaving, resuming on a new socket, and bad input.

use crate::support::{Server, TempDir};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const API: &str = "/openvidu/api";
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A scripted browser: one socket, a request counter, and the notifications it got.
struct Client {
    ws: Ws,
    next_id: u64,
    notes: Vec<Value>,
}

impl Client {
    async fn open(s: &Server, session: &str) -> Self {
        let url = format!("ws://{}/openvidu?sessionId={session}", s.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket opens");
        Self {
            ws,
            next_id: 0,
            notes: Vec::new(),
        }
    }

    async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next frame as JSON; None when the socket closed.
    async fn frame(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")?;
            match msg {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).expect("JSON frame")),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Sends a request and returns its response; notifications met meanwhile are kept.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let frame = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
        self.send_raw(&frame.to_string()).await;
        loop {
            let f = self.frame().await.expect("socket open");
            assert_eq!(f["jsonrpc"], "2.0", "every frame says jsonrpc 2.0: {f}");
            if f.get("id") == Some(&json!(id)) {
                assert!(
                    f.get("result").is_some() != f.get("error").is_some(),
                    "exactly one of result and error: {f}"
                );
                return f;
            }
            assert!(f.get("id").is_none(), "notifications carry no id: {f}");
            self.notes.push(f);
        }
    }

    /// The next notification with `method` (earlier ones kept or read).
    async fn note(&mut self, method: &str) -> Value {
        if let Some(i) = self.notes.iter().position(|n| n["method"] == method) {
            return self.notes.remove(i)["params"].clone();
        }
        loop {
            let f = self.frame().await.expect("socket open");
            if f["method"] == method {
                return f["params"].clone();
            }
            self.notes.push(f);
        }
    }

    async fn join(&mut self, token: &str, session: &str, client_data: &str) -> Value {
        self.call("ping", json!({"interval": 5000})).await;
        self.call(
            "joinRoom",
            json!({"token": token, "session": session, "platform": "test 1.0", "sdkVersion": "2.32.2",
                   "metadata": format!("{{\"clientData\":\"{client_data}\"}}"), "secret": "",
                   "recorder": false, "stt": false}),
        )
        .await
    }
}

async fn server() -> (Server, TempDir) {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    (s, dir)
}

#[tokio::test]
async fn join_notify_signal_and_leave() {
    let (s, _d) = server().await;
    let sid = s.session(r#"{"customSessionId":"rpc-room"}"#).await;
    let ta = s.token(&sid, &json!({"role": "MODERATOR", "data": "server-a", "customIceServers": [{"url": "turn:t.example.org:3478", "username": "u", "credential": "p"}]}).to_string()).await;
    let tb = s
        .token(&sid, &json!({"role": "SUBSCRIBER"}).to_string())
        .await;

    let mut a = Client::open(&s, &sid).await;
    // ping works before joinRoom
    let pong = a.call("ping", json!({"interval": 5000})).await;
    assert_eq!(pong["result"]["value"], "pong");
    let ja = a.join(&ta, &sid, "alice").await;
    let r = &ja["result"];
    assert_eq!(r["role"], "MODERATOR");
    assert_eq!(r["session"], "rpc-room");
    assert_eq!(r["version"], "2.32.2");
    assert_eq!(r["mediaServer"], "kurento");
    assert_eq!(r["value"], json!([]));
    assert_eq!(
        r["customIceServers"],
        json!([{"url": "turn:t.example.org:3478", "username": "u", "credential": "p"}])
    );
    assert_eq!(r["metadata"], "{\"clientData\":\"alice\"}%/%server-a");
    assert_eq!(r["sessionId"].as_str().expect("rpc session id").len(), 26);
    let a_id = r["id"].as_str().expect("id").to_owned();

    // The REST view shows her active.
    let c = s
        .call(
            "GET",
            &format!("{API}/sessions/{sid}/connection/{a_id}"),
            None,
        )
        .await;
    assert_eq!(c.json["status"], "active");
    assert_eq!(c.json["platform"], "test 1.0");
    assert_eq!(c.json["clientData"], "{\"clientData\":\"alice\"}");
    assert_eq!(c.json["ip"], "127.0.0.1");

    let mut b = Client::open(&s, &sid).await;
    let jb = b.join(&tb, &sid, "bob").await;
    let b_id = jb["result"]["id"].as_str().expect("id").to_owned();
    assert_eq!(jb["result"]["value"][0]["id"], a_id.as_str());
    assert!(
        jb["result"]["value"][0].get("role").is_none(),
        "remote connections carry no role"
    );
    let joined = a.note("participantJoined").await;
    assert_eq!(joined["id"], b_id.as_str());
    assert_eq!(joined["metadata"], "{\"clientData\":\"bob\"}");

    // A token is single use.
    let mut c2 = Client::open(&s, &sid).await;
    let again = c2.join(&tb, &sid, "bob again").await;
    assert_eq!(again["error"]["code"], 401);

    // Signal to everyone (the sender included) and to one.
    let msg = json!({"to": [], "data": "hi all", "type": "signal:chat"}).to_string();
    let r = b.call("sendMessage", json!({"message": msg})).await;
    assert!(r.get("result").is_some(), "{r}");
    for cl in [&mut a, &mut b] {
        let n = cl.note("sendMessage").await;
        assert_eq!(
            n,
            json!({"data": "hi all", "type": "signal:chat", "from": b_id})
        );
    }
    let msg = json!({"to": [a_id], "data": "just you"}).to_string();
    b.call("sendMessage", json!({"message": msg})).await;
    assert_eq!(a.note("sendMessage").await["type"], "signal:signal");
    let bad = json!({"to": ["con_nobody"], "data": "x"}).to_string();
    assert_eq!(
        b.call("sendMessage", json!({"message": bad})).await["error"]["code"],
        601
    );
    // A REST signal reaches the named browser, without `from`.
    let r = s
        .call(
            "POST",
            &format!("{API}/signal"),
            Some(
                &json!({"session": sid, "to": [b_id], "type": "news", "data": "from server"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        b.note("sendMessage").await,
        json!({"type": "news", "data": "from server"})
    );
    // Unknown recipients are refused by REST too.
    let r = s
        .call(
            "POST",
            &format!("{API}/signal"),
            Some(&json!({"session": sid, "to": ["con_nobody"]}).to_string()),
        )
        .await;
    r.assert_error(406);

    // A PUBLISHER_ONLY participant may not subscribe.
    let tp = s
        .token(&sid, &json!({"role": "PUBLISHER_ONLY"}).to_string())
        .await;
    let mut po = Client::open(&s, &sid).await;
    let po_id = po.join(&tp, &sid, "po").await["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = po
        .call(
            "receiveVideoFrom",
            json!({"sender": "str_CAM_AAAA_con_x", "sdpOffer": "v=0"}),
        )
        .await;
    assert_eq!(r["error"]["code"], 401, "{r}");
    po.call("leaveRoom", json!({})).await;
    for cl in [&mut a, &mut b] {
        assert_eq!(
            cl.note("participantLeft").await["connectionId"],
            po_id.as_str()
        );
    }

    // Roles: a SUBSCRIBER may not publish nor force anything.
    let p = b
        .call(
            "publishVideo",
            json!({"sdpOffer": "v=0", "hasAudio": true, "hasVideo": true, "doLoopback": false}),
        )
        .await;
    assert_eq!(p["error"]["code"], 401);
    let f = b
        .call("forceDisconnect", json!({"connectionId": a_id}))
        .await;
    assert_eq!(f["error"]["code"], 401);

    // Bob leaves: Alice hears it; the session stays while she is in it.
    let r = b.call("leaveRoom", json!({})).await;
    assert!(r.get("result").is_some());
    let left = a.note("participantLeft").await;
    assert_eq!(left, json!({"connectionId": b_id, "reason": "disconnect"}));
    assert_eq!(
        s.call("GET", &format!("{API}/sessions/{sid}"), None)
            .await
            .status,
        200
    );
    // The last one leaving closes the session.
    a.call("leaveRoom", json!({})).await;
    s.call("GET", &format!("{API}/sessions/{sid}"), None)
        .await
        .assert_error(404);
    s.stop().await;
}

#[tokio::test]
async fn moderation_and_server_evictions() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    let tm = s
        .token(&sid, &json!({"role": "MODERATOR"}).to_string())
        .await;
    let tp = s
        .token(&sid, &json!({"role": "PUBLISHER"}).to_string())
        .await;
    let tq = s
        .token(&sid, &json!({"role": "PUBLISHER"}).to_string())
        .await;
    let mut m = Client::open(&s, &sid).await;
    m.join(&tm, &sid, "mod").await;
    let mut p = Client::open(&s, &sid).await;
    let p_id = p.join(&tp, &sid, "pub").await["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut q = Client::open(&s, &sid).await;
    let q_id = q.join(&tq, &sid, "q").await["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // A role changed through the REST API applies at once: P is made a moderator and back.
    let promote = s
        .call(
            "PATCH",
            &format!("{API}/sessions/{sid}/connection/{p_id}"),
            Some(r#"{"role":"MODERATOR"}"#),
        )
        .await;
    assert_eq!(promote.status, 200);
    let changed = p.note("connectionPropertyChanged").await;
    assert_eq!(
        changed,
        json!({"property": "role", "newValue": "MODERATOR"})
    );
    // As a moderator now, P may force someone out.
    let tr = s.token(&sid, &json!({}).to_string()).await;
    let mut r_client = Client::open(&s, &sid).await;
    let r_id = r_client.join(&tr, &sid, "r").await["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = p
        .call("forceDisconnect", json!({"connectionId": r_id}))
        .await;
    assert!(
        r.get("result").is_some(),
        "a promoted participant may moderate: {r}"
    );
    assert_eq!(
        r_client.note("participantEvicted").await["connectionId"],
        r_id.as_str()
    );
    for cl in [&mut m, &mut p, &mut q] {
        assert_eq!(
            cl.note("participantLeft").await["connectionId"],
            r_id.as_str()
        );
        assert_eq!(
            cl.note("participantEvicted").await["connectionId"],
            r_id.as_str()
        );
    }
    let demote = s
        .call(
            "PATCH",
            &format!("{API}/sessions/{sid}/connection/{p_id}"),
            Some(r#"{"role":"SUBSCRIBER"}"#),
        )
        .await;
    assert_eq!(demote.status, 200);
    let r = p
        .call("forceDisconnect", json!({"connectionId": q_id}))
        .await;
    assert_eq!(
        r["error"]["code"], 401,
        "a demoted participant may not moderate: {r}"
    );
    let r = p
        .call(
            "publishVideo",
            json!({"sdpOffer": "v=0", "hasAudio": true, "hasVideo": true, "doLoopback": false}),
        )
        .await;
    assert_eq!(r["error"]["code"], 401, "nor publish: {r}");

    // A moderator forces P out: everyone hears participantLeft, P hears its own eviction.
    let r = m
        .call("forceDisconnect", json!({"connectionId": p_id}))
        .await;
    assert!(r.get("result").is_some(), "{r}");
    assert_eq!(
        m.note("participantLeft").await["reason"],
        "forceDisconnectByUser"
    );
    assert_eq!(
        q.note("participantLeft").await["connectionId"],
        p_id.as_str()
    );
    let ev = p.note("participantEvicted").await;
    assert_eq!(
        ev,
        json!({"connectionId": p_id, "reason": "forceDisconnectByUser"})
    );
    let unknown = m
        .call("forceDisconnect", json!({"connectionId": p_id}))
        .await;
    assert_eq!(unknown["error"]["code"], 102);

    // Everyone who was in the room heard of P's eviction (and ignores it, not being P).
    assert_eq!(
        q.note("participantEvicted").await["connectionId"],
        p_id.as_str()
    );
    assert_eq!(
        m.note("participantEvicted").await["connectionId"],
        p_id.as_str()
    );

    // The server API forces Q out.
    let d = s
        .call(
            "DELETE",
            &format!("{API}/sessions/{sid}/connection/{q_id}"),
            None,
        )
        .await;
    assert_eq!(d.status, 204);
    assert_eq!(
        q.note("participantEvicted").await["reason"],
        "forceDisconnectByServer"
    );
    assert_eq!(
        m.note("participantLeft").await["connectionId"],
        q_id.as_str()
    );
    assert_eq!(
        m.note("participantEvicted").await["connectionId"],
        q_id.as_str()
    );

    // Closing the session evicts the rest.
    assert_eq!(
        s.call("DELETE", &format!("{API}/sessions/{sid}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        m.note("participantEvicted").await["reason"],
        "sessionClosedByServer"
    );
    s.stop().await;
}

#[tokio::test]
async fn dropped_socket_resumes_with_connect_and_no_duplicate() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    let ta = s.token(&sid, &json!({}).to_string()).await;
    let tb = s.token(&sid, &json!({}).to_string()).await;
    let mut a = Client::open(&s, &sid).await;
    let ja = a.join(&ta, &sid, "a").await;
    let rpc_id = ja["result"]["sessionId"]
        .as_str()
        .expect("rpc id")
        .to_owned();
    let a_id = ja["result"]["id"].as_str().expect("id").to_owned();
    let mut b = Client::open(&s, &sid).await;
    b.join(&tb, &sid, "b").await;
    a.note("participantJoined").await;

    // A's socket dies without a close handshake.
    drop(a);
    let mut a2 = Client::open(&s, &sid).await;
    let r = a2
        .call("connect", json!({"sessionId": rpc_id, "reconnect": true}))
        .await;
    assert_eq!(r["result"]["value"], "reconnection successful", "{r}");
    // Still one A, active, and it gets notices on the new socket.
    let list = s
        .call("GET", &format!("{API}/sessions/{sid}/connection"), None)
        .await;
    assert_eq!(list.json["numberOfElements"], 2);
    let msg = json!({"to": [a_id], "data": "still there?"}).to_string();
    b.call("sendMessage", json!({"message": msg})).await;
    assert_eq!(a2.note("sendMessage").await["data"], "still there?");
    // An unknown session id cannot be resumed.
    let mut c = Client::open(&s, &sid).await;
    let r = c
        .call("connect", json!({"sessionId": "nope", "reconnect": true}))
        .await;
    assert_eq!(r["error"]["code"], 40007);
    s.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_others_are_unaffected() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    let ta = s.token(&sid, &json!({}).to_string()).await;
    let tb = s.token(&sid, &json!({}).to_string()).await;
    let mut a = Client::open(&s, &sid).await;
    let a_id = a.join(&ta, &sid, "a").await["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let mut x = Client::open(&s, &sid).await;
    x.send_raw("{not json").await;
    assert_eq!(x.frame().await.expect("reply")["error"]["code"], -32700);
    x.send_raw(r#"{"jsonrpc":"2.0","id":1}"#).await;
    assert_eq!(x.frame().await.expect("reply")["error"]["code"], -32600);
    x.send_raw(r#"{"jsonrpc":"2.0","method":"joinRoom","params":[1],"id":2}"#)
        .await;
    assert_eq!(x.frame().await.expect("reply")["error"]["code"], -32602);
    assert_eq!(
        x.call("noSuchMethod", json!({})).await["error"]["code"],
        -32601
    );
    assert_eq!(x.call("leaveRoom", json!({})).await["error"]["code"], 803);
    assert_eq!(
        x.call("joinRoom", json!({"token": 5})).await["error"]["code"],
        -32602
    );
    // Forged, foreign and URL-less tokens.
    let forged = format!("{}x", ta.trim_end_matches(|c: char| c != '.'));
    for bad in [
        forged.as_str(),
        "ws://127.0.0.1?sessionId=x&token=tok_abc",
        "tok_abc",
        "",
    ] {
        let r = x.join(bad, &sid, "x").await;
        assert_eq!(r["error"]["code"], 401, "{bad}: {r}");
    }
    let r = x.join(&tb, "another-session", "x").await;
    assert_eq!(r["error"]["code"], 401, "a token for another session: {r}");

    // Broken media requests are refused; the session goes on.
    let r = a
        .call(
            "publishVideo",
            json!({"sdpOffer": "v=0 this is not SDP", "hasAudio": true, "hasVideo": true, "doLoopback": false}),
        )
        .await;
    assert_eq!(r["error"]["code"], 302, "{r}");
    let r = a.call("publishVideo", json!({"hasAudio": true})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = a
        .call(
            "onIceCandidate",
            json!({"endpointName": "con_nobody", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}),
        )
        .await;
    assert_eq!(r["error"]["code"], 102, "{r}");
    let r = a
        .call(
            "receiveVideoFrom",
            json!({"sender": "str_CAM_AAAA_con_nobody", "sdpOffer": "v=0"}),
        )
        .await;
    assert_eq!(r["error"]["code"], 105, "{r}");
    assert_eq!(
        a.call("unpublishVideo", json!({})).await["error"]["code"],
        105
    );
    let r = a
        .call(
            "streamPropertyChanged",
            json!({"streamId": "x", "property": "<script>", "newValue": true, "reason": "x"}),
        )
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");

    // A flood closes that socket only.
    let mut flood = Client::open(&s, &sid).await;
    let mut closed = false;
    for i in 0..2000 {
        let frame = json!({"jsonrpc": "2.0", "method": "ping", "id": i}).to_string();
        if flood.ws.send(Message::Text(frame.into())).await.is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        while let Some(f) = flood.frame().await {
            let _ = f;
        }
    }
    // A is still served.
    let r = a.call("ping", json!({})).await;
    assert_eq!(r["result"]["value"], "pong");
    let c = s
        .call(
            "GET",
            &format!("{API}/sessions/{sid}/connection/{a_id}"),
            None,
        )
        .await;
    assert_eq!(c.json["status"], "active");
    s.stop().await;
}

#[tokio::test]
async fn a_socket_that_does_not_come_back_leaves_with_network_disconnect() {
    let dir = TempDir::new();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--reconnect-grace", "1"],
    )
    .await;
    let sid = s.session("{}").await;
    let ta = s.token(&sid, &json!({}).to_string()).await;
    let tb = s.token(&sid, &json!({}).to_string()).await;
    let mut a = Client::open(&s, &sid).await;
    let a_id = a.join(&ta, &sid, "a").await["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut b = Client::open(&s, &sid).await;
    b.join(&tb, &sid, "b").await;
    drop(a);
    let left = b.note("participantLeft").await;
    assert_eq!(
        left,
        json!({"connectionId": a_id, "reason": "networkDisconnect"})
    );
    let list = s
        .call("GET", &format!("{API}/sessions/{sid}/connection"), None)
        .await;
    assert_eq!(list.json["numberOfElements"], 1);
    s.stop().await;
}

#[tokio::test]
async fn joined_participants_do_not_survive_a_restart_but_their_session_does() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let sid = s.session(r#"{"customSessionId":"restarted"}"#).await;
    let ta = s.token(&sid, &json!({}).to_string()).await;
    let tb = s.token(&sid, &json!({}).to_string()).await;
    let mut a = Client::open(&s, &sid).await;
    a.join(&ta, &sid, "a").await;
    s.stop().await;
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let list = s
        .call("GET", &format!("{API}/sessions/{sid}/connection"), None)
        .await;
    assert_eq!(
        list.json["numberOfElements"], 1,
        "only the unused token is left"
    );
    assert_eq!(list.json["content"][0]["token"], tb.as_str());
    // The used token stays used.
    let mut again = Client::open(&s, &sid).await;
    assert_eq!(again.join(&ta, &sid, "a").await["error"]["code"], 401);
    let mut b = Client::open(&s, &sid).await;
    assert!(b.join(&tb, &sid, "b").await.get("result").is_some());
    s.stop().await;
}
