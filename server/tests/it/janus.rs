//! The Janus core API over HTTP at `/janus` on the main port, as janus.js and plain HTTP
//! clients use it: sessions, handles, the long poll and Janus's error codes and statuses.

use crate::support::{Server, TempDir};
use serde_json::{Value, json};

async fn post(s: &Server, path: &str, body: Value) -> Value {
    let r = s.raw("POST", path, Some(&body.to_string()), &[]).await;
    assert_eq!(
        r.status, 200,
        "Janus answers its own errors with 200: {}",
        r.text
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    r.json
}

#[tokio::test]
async fn sessions_handles_and_the_long_poll_over_http() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;

    // Server info, as janus.js reads it.
    let info = s.raw("GET", "/janus/info", None, &[]).await;
    assert_eq!(info.json["janus"], "server_info");
    assert_eq!(info.json["version"], 1102);
    assert_eq!(info.json["transaction"].as_str().map(str::len), Some(11));
    assert!(info.json["plugins"]["janus.plugin.videoroom"].is_object());
    let pong = post(&s, "/janus", json!({"janus": "ping", "transaction": "p"})).await;
    assert_eq!(pong, json!({"janus": "pong", "transaction": "p"}));

    let created = post(&s, "/janus", json!({"janus": "create", "transaction": "c"})).await;
    let sid = created["data"]["id"].as_u64().expect("a session id");
    let attached = post(
        &s,
        &format!("/janus/{sid}"),
        json!({"janus": "attach", "transaction": "a", "plugin": "janus.plugin.videoroom"}),
    )
    .await;
    assert_eq!(attached["session_id"].as_u64(), Some(sid));
    let hid = attached["data"]["id"].as_u64().expect("a handle id");
    let keepalive = post(
        &s,
        &format!("/janus/{sid}/{hid}"),
        json!({"janus": "keepalive", "transaction": "k"}),
    )
    .await;
    assert_eq!(
        keepalive,
        json!({"janus": "ack", "session_id": sid, "transaction": "k"})
    );

    // The event a later request makes reaches the long poll (held when it arrives first;
    // the short pause only makes that the usual case, the assertions hold either way).
    let poll = {
        let path = format!("/janus/{sid}?maxev=10&rid=1");
        let addr = s.addr;
        tokio::spawn(
            async move { crate::support::request(addr, "GET", &path, None, None, &[]).await },
        )
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let detached = post(
        &s,
        &format!("/janus/{sid}/{hid}"),
        json!({"janus": "detach", "transaction": "d"}),
    )
    .await;
    assert_eq!(detached["janus"], "success");
    let events = poll.await.expect("the poll answers");
    assert_eq!(events.status, 200);
    assert_eq!(
        events.json,
        json!([{"janus": "detached", "session_id": sid, "sender": hid}])
    );

    // Transport-level answers: 302 for a GET on a handle, 404 for an unknown session's poll.
    let redirect = s
        .raw("GET", &format!("/janus/{sid}/{hid}"), None, &[])
        .await;
    assert_eq!(redirect.status, 302);
    assert_eq!(
        redirect
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/janus/{sid}").as_str())
    );
    assert_eq!(s.raw("GET", "/janus/12345", None, &[]).await.status, 404);
    assert_eq!(
        s.raw("GET", "/janus/not-a-number", None, &[]).await.status,
        404
    );
    let preflight = s
        .raw(
            "OPTIONS",
            "/janus",
            None,
            &[("access-control-request-method", "POST")],
        )
        .await;
    assert_eq!(preflight.status, 200);
    assert_eq!(
        preflight
            .headers
            .get("access-control-allow-methods")
            .and_then(|v| v.to_str().ok()),
        Some("POST")
    );

    // Janus's errors, with 200: bad JSON, unknown session; then a VideoRoom message.
    let bad = s.raw("POST", "/janus", Some("{not json"), &[]).await;
    assert_eq!(
        (bad.status, bad.json["error"]["code"].as_u64()),
        (200, Some(454))
    );
    let unknown = post(
        &s,
        "/janus/777",
        json!({"janus": "keepalive", "transaction": "x"}),
    )
    .await;
    assert_eq!(
        unknown["error"],
        json!({"code": 458, "reason": "No such session 777"})
    );
    let h2 = post(
        &s,
        &format!("/janus/{sid}"),
        json!({"janus": "attach", "transaction": "a2", "plugin": "janus.plugin.videoroom"}),
    )
    .await["data"]["id"]
        .as_u64()
        .expect("a handle");
    let message = post(
        &s,
        &format!("/janus/{sid}/{h2}"),
        json!({"janus": "message", "transaction": "m", "body": {"request": "list"}}),
    )
    .await;
    // A synchronous VideoRoom request is answered in the reply, as plugin data.
    assert_eq!(message["janus"], "success", "{message}");
    assert_eq!(message["transaction"], "m");
    assert_eq!(message["sender"].as_u64(), Some(h2));
    assert_eq!(
        message["plugindata"],
        json!({"plugin": "janus.plugin.videoroom", "data": {"videoroom": "success", "list": []}})
    );

    // The OpenVidu door still answers beside it.
    assert_eq!(
        s.call("GET", "/openvidu/api/sessions", None).await.status,
        200
    );
    let gone = post(
        &s,
        &format!("/janus/{sid}"),
        json!({"janus": "destroy", "transaction": "z"}),
    )
    .await;
    assert_eq!(gone["janus"], "success");
    assert_eq!(
        s.raw("GET", &format!("/janus/{sid}"), None, &[])
            .await
            .status,
        404
    );
    s.stop().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON");
        }
    }
}

#[tokio::test]
async fn the_websocket_transport_binds_sessions_to_the_socket() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let url = format!("ws://{}/janus", s.addr);

    // Without the subprotocol the upgrade is refused.
    assert!(tokio_tungstenite::connect_async(url.clone()).await.is_err());

    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "janus-protocol".parse().expect("header"),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("janus-protocol")
    );
    let send = |v: Value| Message::Text(v.to_string().into());
    // Two requests in one message are answered in order.
    let two = format!(
        "{}{}",
        json!({"janus": "ping", "transaction": "p1"}),
        json!({"janus": "create", "transaction": "c1"})
    );
    ws.send(Message::Text(two.into())).await.expect("send");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"janus": "pong", "transaction": "p1"})
    );
    let created = next_json(&mut ws).await;
    let sid = created["data"]["id"].as_u64().expect("a session id");
    ws.send(send(
        json!({"janus": "attach", "transaction": "a", "session_id": sid,
                        "plugin": "janus.plugin.videoroom"}),
    ))
    .await
    .expect("send");
    let hid = next_json(&mut ws).await["data"]["id"]
        .as_u64()
        .expect("a handle id");
    // Events are pushed on the socket, no poll needed.
    ws.send(send(
        json!({"janus": "detach", "transaction": "d", "session_id": sid, "handle_id": hid}),
    ))
    .await
    .expect("send");
    assert_eq!(next_json(&mut ws).await["janus"], "success");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"janus": "detached", "session_id": sid, "sender": hid})
    );
    // Closing the socket ends its sessions.
    ws.close(None).await.expect("close");
    drop(ws);
    let mut gone = false;
    for _ in 0..50 {
        let r = s
            .raw(
                "POST",
                &format!("/janus/{sid}"),
                Some(&json!({"janus": "keepalive", "transaction": "k"}).to_string()),
                &[],
            )
            .await;
        if r.json["error"]["code"] == 458 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the session ended with its socket");
    s.stop().await;
}
