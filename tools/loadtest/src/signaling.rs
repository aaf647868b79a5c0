//! The two servers' signaling, as their own clients speak it: Camerata through the OpenVidu
//! REST API and the `/openvidu` JSON-RPC WebSocket (the browser offers, the server trickles
//! its candidates), Janus through its HTTP API with the VideoRoom plugin (the publisher
//! offers, Janus offers to subscribers; full SDPs, no trickle).

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Http = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn http() -> Http {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(8)
        .build_http()
}

async fn call(
    http: &Http,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let (status, bytes) = call_raw(http, method, url, auth, body).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn call_raw(
    http: &Http,
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req = req.header("content-type", "application/json");
    let body = body.map(Value::to_string).unwrap_or_default();
    let res = http
        .request(req.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Camerata (OpenVidu protocol)

/// A Camerata server's API.
#[derive(Clone)]
pub struct Camerata {
    http: Http,
    base: String,
    auth: String,
}

impl Camerata {
    /// The API at `base` (`http://127.0.0.1:PORT`) with `secret`.
    pub fn new(base: &str, secret: &str) -> Self {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{secret}"))
        );
        Self {
            http: http(),
            base: base.to_owned(),
            auth,
        }
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let (status, bytes) = call_raw(
            &self.http,
            "GET",
            &format!("{}/metrics", self.base),
            Some(&self.auth),
            None,
        )
        .await?;
        if status != 200 {
            bail!("metrics: {status}");
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Creates a session; returns its id.
    pub async fn session(&self) -> anyhow::Result<String> {
        let (status, v) = call(
            &self.http,
            "POST",
            &format!("{}/openvidu/api/sessions", self.base),
            Some(&self.auth),
            Some(&json!({})),
        )
        .await?;
        if status != 200 {
            bail!("session: {status} {v}");
        }
        Ok(v["id"].as_str().context("id")?.to_owned())
    }

    /// Starts a recording of `session` with `properties`; returns its id.
    pub async fn start_recording(
        &self,
        session: &str,
        mut properties: Value,
    ) -> anyhow::Result<String> {
        properties["session"] = session.into();
        let (status, v) = call(
            &self.http,
            "POST",
            &format!("{}/openvidu/api/recordings/start", self.base),
            Some(&self.auth),
            Some(&properties),
        )
        .await?;
        if status != 200 {
            bail!("start recording: {status} {v}");
        }
        Ok(v["id"].as_str().context("id")?.to_owned())
    }

    /// A recording's JSON.
    pub async fn recording(&self, id: &str) -> anyhow::Result<Value> {
        let (status, v) = call(
            &self.http,
            "GET",
            &format!("{}/openvidu/api/recordings/{id}", self.base),
            Some(&self.auth),
            None,
        )
        .await?;
        if status != 200 {
            bail!("get recording: {status} {v}");
        }
        Ok(v)
    }

    /// Stops a recording; returns its JSON.
    pub async fn stop_recording(&self, id: &str) -> anyhow::Result<Value> {
        let (status, v) = call(
            &self.http,
            "POST",
            &format!("{}/openvidu/api/recordings/stop/{id}", self.base),
            Some(&self.auth),
            None,
        )
        .await?;
        if status != 200 {
            bail!("stop recording: {status} {v}");
        }
        Ok(v)
    }

    /// Joins `session` with a fresh token of `role`.
    pub async fn join(&self, session: &str, role: &str) -> anyhow::Result<OvConn> {
        let (status, v) = call(
            &self.http,
            "POST",
            &format!("{}/openvidu/api/sessions/{session}/connection", self.base),
            Some(&self.auth),
            Some(&json!({ "role": role })),
        )
        .await?;
        if status != 200 {
            bail!("connection: {status} {v}");
        }
        let token = v["token"].as_str().context("token")?.to_owned();
        // The token names the node that carries the participant (a cluster may place it on
        // another node than the one asked): its signaling is there, as for openvidu-browser.
        let node = token.split('?').next().unwrap_or_default();
        let ws_url = format!("{node}/openvidu?sessionId={session}");
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
        let conn = OvConn::spawn(ws);
        let joined = conn
            .request(
                "joinRoom",
                json!({"token": token, "session": session, "metadata": "", "platform": "loadtest"}),
            )
            .await?;
        let id = joined["id"].as_str().context("joined id")?.to_owned();
        Ok(OvConn { id, ..conn })
    }
}

/// One participant's JSON-RPC socket: requests by id, the server's trickled candidates.
pub struct OvConn {
    /// The participant's connection id (kept for diagnostics).
    #[allow(dead_code)]
    pub id: String,
    out: mpsc::UnboundedSender<Message>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    candidates: Arc<Mutex<Vec<String>>>,
    next: std::sync::atomic::AtomicU64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl OvConn {
    fn spawn(ws: Ws) -> Self {
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let candidates: Arc<Mutex<Vec<String>>> = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
        let (p, c) = (pending.clone(), candidates.clone());
        tokio::spawn(async move {
            // Read every frame, so the server never finds this socket's queue full.
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if v["method"] == "iceCandidate" {
                    if let Some(cand) = v["params"]["candidate"].as_str() {
                        lock(&c).push(cand.to_owned());
                    }
                } else if let Some(id) = v["id"].as_u64()
                    && let Some(tx) = lock(&p).remove(&id)
                {
                    let _ = tx.send(v);
                }
            }
        });
        Self {
            id: String::new(),
            out,
            pending,
            candidates,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Sends a request and waits for its result.
    pub async fn request(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let frame = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
        self.out.send(Message::Text(frame.to_string().into()))?;
        let v = tokio::time::timeout(Duration::from_secs(30), rx).await??;
        match v.get("result") {
            Some(r) => Ok(r.clone()),
            None => bail!("{method}: {v}"),
        }
    }

    /// Waits for the server's UDP candidate trickled after an answer; takes all so far.
    pub async fn take_candidates(&self) -> Vec<String> {
        for _ in 0..200 {
            let got: Vec<String> = std::mem::take(&mut *lock(&self.candidates));
            if !got.is_empty() {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Vec::new()
    }

    /// Leaves the session and closes the socket (as openvidu-browser does; a socket left
    /// open would keep its connection and task on the server).
    pub async fn leave(&self) {
        let _ = self.request("leaveRoom", json!({})).await;
        let _ = self.out.send(Message::Close(None));
    }
}

// ---------------------------------------------------------------------------------------
// Janus (VideoRoom over the HTTP API)

/// A Janus session with its event long-poll.
#[derive(Clone)]
pub struct Janus {
    http: Http,
    url: String,
    events: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>,
    poll: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for Janus {
    fn drop(&mut self) {
        if Arc::strong_count(&self.poll) == 1 {
            self.poll.abort();
        }
    }
}

/// A VideoRoom plugin handle and the events Janus sends it.
pub struct JanusHandle {
    janus: Janus,
    id: u64,
    events: mpsc::UnboundedReceiver<Value>,
}

fn transaction() -> String {
    format!("{:x}", rand::random::<u64>())
}

impl Janus {
    /// Creates a session on the Janus HTTP API at `base` (`http://IP:8088/janus`).
    pub async fn connect(base: &str) -> anyhow::Result<Self> {
        let http = http();
        let (_, v) = call(
            &http,
            "POST",
            base,
            None,
            Some(&json!({"janus": "create", "transaction": transaction()})),
        )
        .await?;
        let session = v["data"]["id"].as_u64().context("janus session")?;
        let url = format!("{base}/{session}");
        let events: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>> = Arc::default();
        let (h, u, e) = (http.clone(), url.clone(), events.clone());
        let poll = tokio::spawn(async move {
            loop {
                let Ok((_, v)) = call(&h, "GET", &format!("{u}?maxev=20"), None, None).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let list = match v {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                for ev in list {
                    if let Some(sender) = ev["sender"].as_u64()
                        && let Some(tx) = lock(&e).get(&sender)
                    {
                        let _ = tx.send(ev);
                    }
                }
            }
        });
        Ok(Self {
            http,
            url,
            events,
            poll: Arc::new(poll),
        })
    }

    /// Attaches a VideoRoom handle.
    pub async fn attach(&self) -> anyhow::Result<JanusHandle> {
        let (_, v) = call(
            &self.http,
            "POST",
            &self.url,
            None,
            Some(&json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": transaction()})),
        )
        .await?;
        let id = v["data"]["id"].as_u64().context("janus handle")?;
        let (tx, events) = mpsc::unbounded_channel();
        lock(&self.events).insert(id, tx);
        Ok(JanusHandle {
            janus: self.clone(),
            id,
            events,
        })
    }
}

impl JanusHandle {
    /// Sends a plugin message (with an optional JSEP); returns Janus's immediate reply.
    pub async fn message(&self, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let mut m = json!({"janus": "message", "transaction": transaction(), "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let (_, v) = call(
            &self.janus.http,
            "POST",
            &format!("{}/{}", self.janus.url, self.id),
            None,
            Some(&m),
        )
        .await?;
        if v["janus"] == "error" {
            bail!("janus: {v}");
        }
        Ok(v)
    }

    /// Sends a plugin message and waits for the event that carries Janus's JSEP; returns the
    /// event and its SDP.
    pub async fn exchange(
        &mut self,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<(Value, String)> {
        self.message(body, jsep).await?;
        let ev = self.jsep_event().await?;
        let sdp = ev["jsep"]["sdp"].as_str().context("janus SDP")?.to_owned();
        Ok((ev, sdp))
    }

    /// Waits for the next plugin event carrying a JSEP.
    pub async fn jsep_event(&mut self) -> anyhow::Result<Value> {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let ev = self.events.recv().await.context("janus events ended")?;
                if let Some(err) = ev["plugindata"]["data"].get("error") {
                    bail!("janus: {err}");
                }
                if ev.get("jsep").is_some() {
                    return Ok(ev);
                }
            }
        })
        .await?
    }
}
