//! Starting a server in-process and talking HTTP to it.

use bytes::Bytes;
use camerata_server::{Config, Listeners, run};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The secret the test servers use.
pub const SECRET: &str = "TEST_SECRET";

/// A server running in this process.
pub struct Server {
    pub addr: SocketAddr,
    /// The side listeners it serves, by name.
    pub sides: Vec<(&'static str, SocketAddr)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A folder under the target directory that is removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join(format!("it-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.join("camerata.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{nanos:x}{}", N.fetch_add(1, Ordering::Relaxed))
}

impl Server {
    /// Starts a server on a fresh port with `database_url` and extra flags; it serves once
    /// its task runs (the listener is already bound, so early connections wait in its
    /// backlog).
    fn launch(database_url: &str, dir: PathBuf, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "camerata".into(),
            "--port".into(),
            "0".into(),
            "--secret".into(),
            SECRET.into(),
            "--database-url".into(),
            database_url.into(),
            "--data-dir".into(),
            dir.display().to_string(),
        ];
        // Servers run side by side: no Janus side ports unless a test asks for them.
        for flag in ["--janus-http-port", "--janus-ws-port"] {
            if !extra.contains(&flag) {
                args.extend([flag.to_owned(), "off".to_owned()]);
            }
        }
        // Tests stop servers whose webhook receivers are gone: a short drain.
        if !extra.contains(&"--shutdown-grace") {
            args.extend(["--shutdown-grace".to_owned(), "3".to_owned()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let config = Config::try_from_args(args).expect("valid flags");
        let listeners = Listeners::bind(&config).expect("bind 127.0.0.1:0");
        let addr = listeners.local_addr().expect("bound");
        let sides = [
            camerata_server::protocols::janus::HTTP_SIDE,
            camerata_server::protocols::janus::WS_SIDE,
        ]
        .into_iter()
        .filter_map(|name| listeners.side_addr(name).map(|a| (name, a)))
        .collect();
        let settled = config.settle(addr).expect("settles");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(settled, listeners, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            sides,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Starts a plain-HTTP server and waits until it answers.
    pub async fn start_with(database_url: &str, dir: PathBuf, extra: &[&str]) -> Self {
        let server = Self::launch(database_url, dir, extra);
        server.wait_ready().await;
        server
    }

    /// Starts a server that serves HTTPS with a generated self-signed certificate.
    pub async fn start_tls(dir: &TempDir) -> Self {
        let server = Self::launch(
            &dir.sqlite_url(),
            dir.0.clone(),
            &["--force-plain-http", "false"],
        );
        // Ready once the certificate is on disk (the key is written last).
        let key = dir.0.join("selfsigned-127.0.0.1.key");
        for _ in 0..400 {
            if std::fs::metadata(&key).is_ok_and(|m| m.len() > 0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                let r = self
                    .call("GET", "/openvidu/api/config/openvidu-version", None)
                    .await;
                if r.status == 200 {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("server on {} did not become ready", self.addr);
    }

    /// Stops the server and waits for every task to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task joins")
                .expect("server ran cleanly");
        }
    }

    /// An authenticated call.
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let auth = basic("OPENVIDUAPP", SECRET);
        request(self.addr, method, path, Some(&auth), body, &[]).await
    }

    /// A call with explicit headers and no implicit auth.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        request(self.addr, method, path, None, body, headers).await
    }

    /// Creates a connection in `session` with a JSON body and returns its token.
    pub async fn token(&self, session: &str, body: &str) -> String {
        let path = format!("/openvidu/api/sessions/{session}/connection");
        let r = self.call("POST", &path, Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["token"].as_str().expect("token").to_owned()
    }

    /// Creates a session and returns its id.
    pub async fn session(&self, body: &str) -> String {
        let r = self
            .call("POST", "/openvidu/api/sessions", Some(body))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["id"].as_str().expect("id").to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// Asserts an OpenVidu error document with this status.
    pub fn assert_error(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.text);
        for key in ["timestamp", "status", "error", "message", "path"] {
            assert!(
                self.json.get(key).is_some(),
                "missing {key} in {}",
                self.text
            );
        }
        assert_eq!(self.json["status"], status);
        assert!(
            !self.json["message"].as_str().unwrap_or("").is_empty(),
            "error names the problem"
        );
    }
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    request_from(None, addr, method, path, auth, body, headers).await
}

/// [`request`] from the local address `source` (another loopback address, say).
pub async fn request_from(
    source: Option<std::net::IpAddr>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let stream = match source {
        None => tokio::net::TcpStream::connect(addr).await.expect("connect"),
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(SocketAddr::new(ip, 0))
                .expect("bind the source");
            socket.connect(addr).await.expect("connect")
        }
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if body.is_some()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

pub fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
