//! Webhooks and CDR against a real HTTP receiver on 127.0.0.1 that records what it gets:
//! the events of a session in order with the spec's keys, custom headers, the event filter,
//! a receiver that is down or failing for a while, a receiver that hangs (other sessions'
//! joins are not held up), a SIGKILL between an action and its delivery, and the CDR file.

use crate::media::{joined, rpc};
use crate::support::{SECRET, Server, TempDir, basic, request};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    headers: hyper::HeaderMap,
    body: Value,
}

/// An HTTP receiver that records every POST.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
    arrived: Arc<Notify>,
    /// Requests answered with an error.
    refused: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(mode: Mode) -> Self {
        Self::on(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
            mode,
        )
    }

    fn on(listener: tokio::net::TcpListener, mode: Mode) -> Self {
        let addr = listener.local_addr().expect("bound");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(mode));
        let arrived = Arc::new(Notify::new());
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (h, m, a, r) = (hits.clone(), mode.clone(), arrived.clone(), refused.clone());
        let app = axum::Router::new().fallback(
            move |headers: hyper::HeaderMap, body: axum::body::Bytes| {
                let (h, m, a, r) = (h.clone(), m.clone(), a.clone(), r.clone());
                async move {
                    let mode = *m.lock().expect("lock");
                    match mode {
                        Mode::Hang => {
                            std::future::pending::<()>().await;
                            hyper::StatusCode::OK
                        }
                        Mode::Fail => {
                            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            a.notify_waiters();
                            hyper::StatusCode::SERVICE_UNAVAILABLE
                        }
                        Mode::Ok => {
                            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            h.lock().expect("lock").push(Hit { headers, body });
                            a.notify_waiters();
                            hyper::StatusCode::OK
                        }
                    }
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            hits,
            mode,
            arrived,
            refused,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    /// The events received so far (name, body).
    fn events(&self) -> Vec<(String, Value)> {
        self.hits()
            .into_iter()
            .map(|h| (h.body["event"].as_str().unwrap_or("").to_owned(), h.body))
            .collect()
    }

    /// Waits until `n` requests were refused.
    async fn wait_refused(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let arrived = self.arrived.notified();
                if self.refused.load(std::sync::atomic::Ordering::SeqCst) >= n {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .expect("requests refused");
    }

    /// Waits until `n` events have arrived.
    async fn wait_for(&self, n: usize) -> Vec<(String, Value)> {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let arrived = self.arrived.notified();
                if self.hits.lock().expect("lock").len() >= n {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} events did not arrive: {:?}", self.events()));
        self.events()
    }

    fn stop(self) {
        self.task.abort();
    }
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

async fn start(dir: &TempDir, endpoint: &str, extra: &[&str]) -> Server {
    start_on(&dir.sqlite_url(), dir, endpoint, extra).await
}

async fn start_on(database_url: &str, dir: &TempDir, endpoint: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--webhook", "true", "--webhook-endpoint", endpoint];
    args.extend_from_slice(extra);
    Server::start_with(database_url, dir.0.clone(), &args).await
}

#[tokio::test]
async fn a_session_s_events_arrive_in_order_with_their_keys_and_headers() {
    let receiver = Receiver::start(Mode::Ok).await;
    let dir = TempDir::new();
    let s = start(
        &dir,
        &receiver.endpoint(),
        &[
            "--webhook-headers",
            r#"["Authorization: Bearer s3cret", "X-Tenant: blue"]"#,
        ],
    )
    .await;
    let sid = s.session(r#"{"customSessionId":"hooked"}"#).await;
    let token = s
        .token(&sid, r#"{"role":"PUBLISHER","data":"server-side"}"#)
        .await;
    let url = format!("ws://{}/openvidu?sessionId={sid}", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let r = rpc(
        &mut ws,
        1,
        "joinRoom",
        json!({"token": token, "session": sid, "metadata": "{\"clientData\":\"ann\"}",
               "platform": "Chrome 130 on Linux"}),
    )
    .await;
    let me = r["result"]["id"].as_str().expect("joined").to_owned();
    let msg = json!({"to": [], "data": "hello", "type": "signal:chat"}).to_string();
    rpc(&mut ws, 2, "sendMessage", json!({"message": msg})).await;
    let r = s
        .call(
            "POST",
            "/openvidu/api/signal",
            Some(&json!({"session": sid, "type": "notice", "data": "from the server"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    rpc(&mut ws, 3, "leaveRoom", json!({})).await;

    let events = receiver.wait_for(6).await;
    assert_eq!(
        names(&events),
        [
            "sessionCreated",
            "participantJoined",
            "signalSent",
            "signalSent",
            "participantLeft",
            "sessionDestroyed"
        ]
    );
    let e = |i: usize| &events[i].1;
    // Common members on each; uniqueSessionId is the id and the creation time.
    let created_at = e(0)["timestamp"].as_i64().expect("timestamp");
    for (_, body) in &events {
        assert_eq!(body["sessionId"], "hooked");
        assert_eq!(
            body["uniqueSessionId"],
            format!("hooked_{created_at}").as_str()
        );
    }
    assert_eq!(
        keys(e(0)),
        ["event", "sessionId", "timestamp", "uniqueSessionId"]
    );
    assert_eq!(
        keys(e(1)),
        [
            "clientData",
            "connectionId",
            "event",
            "ip",
            "location",
            "participantId",
            "platform",
            "serverData",
            "sessionId",
            "timestamp",
            "uniqueSessionId"
        ]
    );
    assert_eq!(e(1)["connectionId"], me.as_str());
    assert_eq!(e(1)["participantId"], me.as_str());
    assert_eq!(e(1)["serverData"], "server-side");
    assert_eq!(e(1)["platform"], "Chrome 130 on Linux");
    assert_eq!(e(1)["location"], "unknown");
    // A browser's signal loses its `signal:` prefix; the server's keeps its type as given.
    assert_eq!(e(2)["from"], me.as_str());
    assert_eq!(e(2)["to"], json!([me]));
    assert_eq!(e(2)["type"], "chat");
    assert_eq!(e(2)["data"], "hello");
    assert_eq!(e(3)["from"], Value::Null);
    assert_eq!(e(3)["type"], "notice");
    assert_eq!(e(3)["data"], "from the server");
    assert_eq!(
        keys(e(3)),
        [
            "data",
            "event",
            "from",
            "sessionId",
            "timestamp",
            "to",
            "type",
            "uniqueSessionId"
        ]
    );
    // End events: start time, whole seconds, reason.
    assert_eq!(e(4)["reason"], "disconnect");
    assert_eq!(e(4)["startTime"], e(1)["timestamp"]);
    assert!(e(4)["duration"].is_i64());
    assert_eq!(keys(e(4)).len(), 14);
    assert_eq!(e(5)["reason"], "lastParticipantLeft");
    assert_eq!(e(5)["startTime"], created_at);
    assert_eq!(keys(e(5)).len(), 7);

    // Headers: custom ones, JSON, and a unique id per event.
    let hits = receiver.hits();
    let mut ids = HashSet::new();
    for h in &hits {
        assert_eq!(h.headers["authorization"], "Bearer s3cret");
        assert_eq!(h.headers["x-tenant"], "blue");
        assert_eq!(h.headers["content-type"], "application/json");
        let id = h.headers["x-camerata-event-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(ids.insert(id), "event ids are unique");
    }
    s.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn only_the_configured_events_are_sent() {
    let receiver = Receiver::start(Mode::Ok).await;
    let dir = TempDir::new();
    let s = start(
        &dir,
        &receiver.endpoint(),
        &["--webhook-events", r#"["sessionDestroyed"]"#],
    )
    .await;
    let sid = s.session("{}").await;
    let ws = joined(&s, &sid, "PUBLISHER").await;
    drop(ws);
    let r = s
        .call("DELETE", &format!("/openvidu/api/sessions/{sid}"), None)
        .await;
    assert_eq!(r.status, 204);
    // A second session marks the end: its destruction arrives after the first one's.
    let other = s.session("{}").await;
    s.call("DELETE", &format!("/openvidu/api/sessions/{other}"), None)
        .await;
    let events = receiver.wait_for(2).await;
    assert_eq!(names(&events), ["sessionDestroyed", "sessionDestroyed"]);
    assert_eq!(events[0].1["reason"], "sessionClosedByServer");
    assert_eq!(events[0].1["sessionId"], sid.as_str());
    let config = s.call("GET", "/openvidu/api/config", None).await;
    assert_eq!(config.json["OPENVIDU_WEBHOOK"], true);
    assert_eq!(
        config.json["OPENVIDU_WEBHOOK_ENDPOINT"],
        receiver.endpoint().as_str()
    );
    assert_eq!(
        config.json["OPENVIDU_WEBHOOK_EVENTS"],
        json!(["sessionDestroyed"])
    );
    assert_eq!(config.json["OPENVIDU_WEBHOOK_HEADERS"], json!([]));
    s.stop().await;
    receiver.stop();
}

/// Creates a session, joins it, signals `n` times and leaves: 4 + n events.
async fn busy_session(s: &Server, n: usize) -> String {
    let sid = s.session("{}").await;
    let mut ws = joined(s, &sid, "PUBLISHER").await;
    for i in 0..n {
        let msg = json!({"data": format!("{i}"), "type": "signal:n"}).to_string();
        rpc(
            &mut ws,
            10 + i as u64,
            "sendMessage",
            json!({"message": msg}),
        )
        .await;
    }
    rpc(&mut ws, 99, "leaveRoom", json!({})).await;
    sid
}

/// Every event once, and each session's events in the order they happened.
fn assert_complete_and_ordered(events: &[(String, Value)], sessions: &[String], signals: usize) {
    for sid in sessions {
        let own: Vec<&(String, Value)> = events
            .iter()
            .filter(|(_, b)| b["sessionId"] == sid.as_str())
            .collect();
        let mut expected = vec!["sessionCreated", "participantJoined"];
        expected.extend(std::iter::repeat_n("signalSent", signals));
        expected.extend(["participantLeft", "sessionDestroyed"]);
        let got: Vec<&str> = own.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, expected, "session {sid}");
        let data: Vec<&str> = own
            .iter()
            .filter(|(n, _)| n == "signalSent")
            .map(|(_, b)| b["data"].as_str().expect("data"))
            .collect();
        let want: Vec<String> = (0..signals).map(|i| i.to_string()).collect();
        assert_eq!(data, want, "signals of {sid} in order");
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_or_failing_gets_every_event_once_in_order() {
    let dir = TempDir::new();
    down_or_failing(&dir.sqlite_url(), &dir).await;
}

#[tokio::test]
async fn the_same_on_postgres() {
    let Some(admin) = crate::store::postgres_admin_url() else {
        return;
    };
    let url = crate::store::fresh_postgres_db(&admin).await;
    down_or_failing(&url, &TempDir::new()).await;
}

async fn down_or_failing(database_url: &str, dir: &TempDir) {
    // Nobody listens on the endpoint's port yet.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = parked.local_addr().expect("bound").port();
    drop(parked);
    let s = start_on(
        database_url,
        dir,
        &format!("http://127.0.0.1:{port}/hook"),
        &[],
    )
    .await;
    let first = vec![busy_session(&s, 3).await, busy_session(&s, 3).await];

    // It comes up failing every request, then recovers.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("port free again");
    let receiver = Receiver::on(listener, Mode::Fail);
    let more = busy_session(&s, 2).await;
    receiver.wait_refused(3).await;
    receiver.set(Mode::Ok);
    let events = receiver.wait_for(7 * 2 + 6).await;
    assert_complete_and_ordered(&events, &first, 3);
    assert_complete_and_ordered(&events, &[more], 2);
    let ids: HashSet<String> = receiver
        .hits()
        .iter()
        .map(|h| {
            h.headers["x-camerata-event-id"]
                .to_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), events.len(), "no event twice");
    s.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn a_receiver_that_hangs_does_not_hold_up_joins() {
    let receiver = Receiver::start(Mode::Hang).await;
    let dir = TempDir::new();
    let s = start(&dir, &receiver.endpoint(), &[]).await;
    // Events of the first sessions pile up behind requests that never return.
    for _ in 0..3 {
        busy_session(&s, 1).await;
    }
    // Joins in other sessions go on; their time is reported, not asserted.
    let mut took = Vec::new();
    for _ in 0..5 {
        let sid = s.session("{}").await;
        let started = Instant::now();
        let ws = joined(&s, &sid, "PUBLISHER").await;
        took.push(started.elapsed());
        drop(ws);
    }
    eprintln!("joins while the webhook receiver hangs: {took:?}");
    s.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn call_detail_records_are_json_lines() {
    let dir = TempDir::new();
    let cdr = dir.0.join("cdr");
    let cdr_path = cdr.display().to_string();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--cdr", "true", "--cdr-path", &cdr_path],
    )
    .await;
    let sid = busy_session(&s, 1).await;
    let lines = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let text: String = std::fs::read_dir(&cdr)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|f| std::fs::read_to_string(f.path()).ok())
                .collect();
            let lines: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if lines.len() >= 5 {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("five CDR lines");
    let files: Vec<String> = std::fs::read_dir(&cdr)
        .expect("cdr folder")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        files[0].starts_with("CDR.") && files[0].ends_with(".log"),
        "{files:?}"
    );
    let names: Vec<&str> = lines
        .iter()
        .map(|l| {
            let o = l.as_object().expect("object");
            assert_eq!(o.len(), 1, "one event per line: {l}");
            o.keys().next().expect("name").as_str()
        })
        .collect();
    assert_eq!(
        names,
        [
            "sessionCreated",
            "participantJoined",
            "signalSent",
            "participantLeft",
            "sessionDestroyed"
        ]
    );
    assert_eq!(lines[0]["sessionCreated"]["sessionId"], sid.as_str());
    assert!(lines[0]["sessionCreated"].get("event").is_none());

    // The files are served to the API's user.
    let list = s.call("GET", "/openvidu/cdr", None).await;
    assert_eq!(list.json, json!([files[0]]));
    let file = s
        .call("GET", &format!("/openvidu/cdr/{}", files[0]), None)
        .await;
    assert_eq!(file.status, 200);
    assert_eq!(file.text.lines().count(), lines.len());
    let legacy = s.call("GET", &format!("/cdr/{}", files[0]), None).await;
    assert_eq!(legacy.text, file.text);
    s.call("GET", "/openvidu/cdr/..%2Fcamerata.db", None)
        .await
        .assert_error(404);
    s.call("GET", "/openvidu/cdr/CDR.missing.log", None)
        .await
        .assert_error(404);
    let anonymous = s.raw("GET", "/openvidu/cdr", None, &[]).await;
    assert_eq!(anonymous.status, 401);
    let config = s.call("GET", "/openvidu/api/config", None).await;
    assert_eq!(config.json["OPENVIDU_CDR"], true);
    assert_eq!(config.json["OPENVIDU_CDR_PATH"], cdr_path.as_str());
    s.stop().await;
}

/// The binary, started with `args`; killed by PID when dropped.
struct Process(std::process::Child);

impl Process {
    fn start(dir: &TempDir, port: u16, args: &[&str]) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_camerata"))
            .args(["--port", &port.to_string(), "--secret", SECRET])
            .args(["--data-dir", &dir.0.display().to_string()])
            .args(["--database-url", &dir.sqlite_url()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("camerata starts");
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn call(port: u16, method: &str, path: &str, body: Option<&str>) -> crate::support::Resp {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let auth = basic("OPENVIDUAPP", SECRET);
    request(addr, method, path, Some(&auth), body, &[]).await
}

#[tokio::test]
async fn events_survive_a_sigkill_before_delivery() {
    let parked = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook_port = parked.local_addr().expect("bound").port();
    drop(parked);
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("bound").port();
    drop(free);
    let dir = TempDir::new();
    let endpoint = format!("http://127.0.0.1:{hook_port}/hook");
    let args = ["--webhook", "true", "--webhook-endpoint", endpoint.as_str()];

    let mut first = Process::start(&dir, port, &args);
    let r = call(
        port,
        "POST",
        "/openvidu/api/sessions",
        Some(r#"{"customSessionId":"killed"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(
        port,
        "POST",
        "/openvidu/api/sessions/killed/connection",
        Some("{}"),
    )
    .await;
    let token = r.json["token"].as_str().expect("token").to_owned();
    let url = format!("ws://127.0.0.1:{port}/openvidu?sessionId=killed");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let r = rpc(
        &mut ws,
        1,
        "joinRoom",
        json!({"token": token, "session": "killed", "metadata": ""}),
    )
    .await;
    let who = r["result"]["id"].as_str().expect("joined").to_owned();
    // Acknowledged, never delivered: the receiver is not up. Then the process dies.
    first.kill();
    drop(ws);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
        .await
        .expect("port free again");
    let receiver = Receiver::on(listener, Mode::Ok);
    let _second = Process::start(&dir, port, &args);
    let events = receiver.wait_for(3).await;
    assert_eq!(
        names(&events),
        ["sessionCreated", "participantJoined", "participantLeft"]
    );
    assert_eq!(events[1].1["connectionId"], who.as_str());
    // The participant whose process died is reported gone when the server comes back.
    assert_eq!(events[2].1["reason"], "openviduServerStopped");
    receiver.stop();
}
