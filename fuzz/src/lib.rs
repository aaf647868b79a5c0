//! The world every fuzz target runs in: one whole Camerata server in this process (REST,
//! signaling, the Janus and OpenTok doors, the media loop with ICE-TCP on, an OpenTok
//! project), on 127.0.0.1, started once; each input goes to it through a real socket, as
//! a client or a peer would send it. The server's own threads are instrumented too, and a
//! panic anywhere aborts the process (libFuzzer's panic hook), so a crash the input causes
//! is a crash the fuzzer sees.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The REST secret of the fuzzed server.
pub const SECRET: &str = "FUZZ_SECRET";
/// Its OpenTok project.
pub const PROJECT: (&str, &str) = ("47000001", "6d0c1a5b2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c");
/// The session the targets join.
pub const SESSION: &str = "fuzz";

/// The running server and a runtime to talk to it.
pub struct World {
    /// The runtime inputs are sent from.
    pub rt: tokio::runtime::Runtime,
    /// The HTTP address (REST, signaling, Janus, OpenTok).
    pub http: SocketAddr,
    /// The media port (UDP, and ICE-TCP on the same number).
    pub media: SocketAddr,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// A media port free for UDP and TCP (ICE-TCP uses the same number), below Linux's
/// ephemeral range (32768 and up): a port the kernel handed out could be handed out again to
/// one of the server's own sockets before the media socket binds it.
fn free_media_port() -> u16 {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..10_000u16)
        .map(|i| 20_000 + (start - 20_000 + i) % 10_000)
        .find(|&p| {
            std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        })
        .expect("a free media port")
}

/// The world, started on first use.
pub fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = std::env::temp_dir().join(format!("camerata-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let media_port = free_media_port();
        let project = format!("{}:{}", PROJECT.0, PROJECT.1);
        let args = [
            "camerata",
            "--port",
            "0",
            "--secret",
            SECRET,
            "--data-dir",
            dir.to_str().expect("a UTF-8 temp path"),
            "--janus-http-port",
            "off",
            "--janus-ws-port",
            "off",
            "--udp-port",
            &media_port.to_string(),
            "--ice-tcp",
            "true",
            "--opentok-project",
            &project,
            "--auth-failure-limit",
            "0",
            "--reconnect-grace",
            "0",
            "--shutdown-grace",
            "1",
        ];
        let config = camerata_server::Config::try_from_args(args).expect("valid flags");
        let listeners = camerata_server::Listeners::bind(&config).expect("bind");
        let http = listeners.local_addr().expect("bound");
        let settled = config.settle(http).expect("settles");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            let ended = camerata_server::run_with_ready(
                settled,
                listeners,
                std::future::pending(),
                ready_tx,
            )
            .await;
            // The server never stops on its own: its end is a failure of the world.
            panic!("the fuzzed server stopped: {ended:?}");
        });
        let world = World {
            rt,
            http,
            media: SocketAddr::from(([127, 0, 0, 1], media_port)),
        };
        // Every input is worthless until the server serves and the fuzz session exists: a
        // world that cannot get there fails loudly rather than fuzzing a closed door.
        world.rt.block_on(async {
            match tokio::time::timeout(Duration::from_secs(120), ready_rx).await {
                Ok(Ok(Ok(()))) => {}
                other => panic!("the fuzzed server did not start: {other:?}"),
            }
            let mut status = 0;
            for _ in 0..600 {
                status = request(http, "GET", "/ready", &[], b"").await.0;
                if status == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(status, 200, "the fuzzed server is not ready on {http}");
            let (status, answer) = create_session(http).await;
            assert!(
                status == 200 || status == 409,
                "the fuzz session was not created: {status} {}",
                String::from_utf8_lossy(&answer)
            );
        });
        // A participant that stays: the session then outlives each input's own participants
        // (it closes with its last one, as in OpenVidu), and their events have an audience.
        world.rt.block_on(async {
            use futures_util::{SinkExt, StreamExt};
            let url = format!("ws://{http}/openvidu");
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("the keeper's signaling socket");
            let join = join_frame(&world).await;
            ws.send(tokio_tungstenite::tungstenite::Message::Text(join.into()))
                .await
                .expect("the keeper's join");
            let answer = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
            let joined = matches!(&answer, Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) if t.contains("\"result\""));
            assert!(joined, "the keeper could not join: {answer:?}");
            world
                .rt
                .spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
        });
        eprintln!("fuzz world: http {http}, media {}", world.media);
        world
    })
}

/// The REST credentials header.
pub fn basic() -> Vec<(&'static str, String)> {
    use base64::Engine;
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{SECRET}"));
    vec![("authorization", format!("Basic {cred}"))]
}

/// A valid `X-OPENTOK-AUTH` header of the project.
pub fn opentok_auth() -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims =
        serde_json::json!({"iss": PROJECT.0, "ist": "project", "iat": now, "exp": now + 300});
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(PROJECT.1.as_bytes()),
    )
    .expect("sign");
    vec![("x-opentok-auth", jwt)]
}

/// One HTTP/1.1 request over a fresh connection; the status (0 when the server did not
/// answer) and the body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return (0, Vec::new());
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if s.write_all(head.as_bytes()).await.is_err() || s.write_all(body).await.is_err() {
        return (0, Vec::new());
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

/// Creates the fuzz session (200, or 409 when it exists).
async fn create_session(http: SocketAddr) -> (u16, Vec<u8>) {
    let body = format!("{{\"customSessionId\":\"{SESSION}\"}}");
    request(
        http,
        "POST",
        "/openvidu/api/sessions",
        &basic(),
        body.as_bytes(),
    )
    .await
}

/// A fresh token URL for the fuzz session, created again when it has closed (a session
/// closes when its last participant leaves, as in OpenVidu).
pub async fn token(w: &World) -> String {
    let path = format!("/openvidu/api/sessions/{SESSION}/connection");
    let mut answer = request(w.http, "POST", &path, &basic(), b"{}").await;
    if answer.0 == 404 {
        create_session(w.http).await;
        answer = request(w.http, "POST", &path, &basic(), b"{}").await;
    }
    // Without a token every join fails fast and the input never reaches what it fuzzes.
    serde_json::from_slice::<serde_json::Value>(&answer.1)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            panic!(
                "the fuzz session gave no token: {} {}",
                answer.0,
                String::from_utf8_lossy(&answer.1)
            )
        })
}

/// Closes every session but the fuzz session, through the REST API.
pub async fn close_sessions(w: &World) {
    let (_, body) = request(w.http, "GET", "/openvidu/api/sessions", &basic(), b"").await;
    let ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["content"].as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s["id"].as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default();
    for id in ids.iter().filter(|id| *id != SESSION) {
        // Session ids are letters, digits, `-` and `_` (the server refuses others).
        let path = format!("/openvidu/api/sessions/{id}");
        request(w.http, "DELETE", &path, &basic(), b"").await;
    }
}

/// Sends `frames` over one signaling WebSocket, each answered (or 500 ms) before the next.
pub async fn rpc(w: &World, frames: &[String]) {
    use futures_util::{SinkExt, StreamExt};
    let url = format!("ws://{}/openvidu", w.http);
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    for frame in frames {
        if ws
            .send(tokio_tungstenite::tungstenite::Message::Text(
                frame.clone().into(),
            ))
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m
                    && t.contains("\"id\"")
                {
                    break;
                }
            }
        })
        .await;
    }
    let _ = ws.close(None).await;
}

/// A joinRoom frame with a fresh token.
pub async fn join_frame(w: &World) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "joinRoom",
        "params": {"token": token(w).await, "session": SESSION, "platform": "fuzz", "metadata": ""}})
    .to_string()
}

/// A publisher of the fuzz session whose media address is a socket of ours: joined over a
/// signaling WebSocket kept open, publishing the offer Chromium made in the seed capture,
/// its peer connection's address claimed with a STUN binding request naming the server's
/// ICE username. Datagrams sent from `socket` then reach that peer connection (ICE, DTLS,
/// SRTP) as a connected peer's do.
pub struct Connected {
    /// The claimed socket.
    pub socket: tokio::net::UdpSocket,
    /// When it was set up (it is set up again after a while: the server drops a peer
    /// connection whose checks never complete).
    pub since: std::time::Instant,
    _signaling: tokio::task::JoinHandle<()>,
}

/// A STUN binding request whose USERNAME is `ufrag:fuzz` (no integrity: enough to claim the
/// address; the ICE agent then judges the rest).
fn binding_request(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:fuzz");
    let padded = username.len().div_ceil(4) * 4;
    let mut m = Vec::with_capacity(20 + 4 + padded);
    m.extend_from_slice(&0x0001u16.to_be_bytes());
    m.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(b"camerata-fz1");
    m.extend_from_slice(&0x0006u16.to_be_bytes());
    m.extend_from_slice(&(username.len() as u16).to_be_bytes());
    m.extend_from_slice(username.as_bytes());
    m.resize(20 + 4 + padded, 0);
    m
}

/// Sets up a connected publisher (see [`Connected`]); `None` when the server refused.
pub async fn connected(w: &World, offer: &str) -> Option<Connected> {
    use futures_util::{SinkExt, StreamExt};
    let url = format!("ws://{}/openvidu", w.http);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    let send = |frame: String| tokio_tungstenite::tungstenite::Message::Text(frame.into());
    ws.send(send(join_frame(w).await)).await.ok()?;
    let publish = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "publishVideo",
        "params": {"sdpOffer": offer, "doLoopback": false, "hasAudio": true, "hasVideo": true,
            "audioActive": true, "videoActive": true, "typeOfVideo": "CAMERA", "frameRate": 30,
            "videoDimensions": "{\"width\":640,\"height\":480}"}});
    ws.send(send(publish.to_string())).await.ok()?;
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
                && v["id"] == 2
            {
                return v["result"]["sdpAnswer"].as_str().map(str::to_owned);
            }
        }
        None
    })
    .await
    .ok()??;
    let ufrag = answer
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))?
        .to_owned();
    // Keep the participant: the socket stays open, its frames read.
    let signaling = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket
        .send_to(&binding_request(&ufrag), w.media)
        .await
        .ok()?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    Some(Connected {
        socket,
        since: std::time::Instant::now(),
        _signaling: signaling,
    })
}
