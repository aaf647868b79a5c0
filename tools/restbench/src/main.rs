//! `restbench`: a load tool for Camerata's OpenVidu REST control plane.
//!
//! It starts the `camerata` binary as a separate process on 127.0.0.1 (SQLite in a temporary
//! folder unless `--database-url` says otherwise), drives it with N concurrent keep-alive
//! clients, prints throughput and latency percentiles per scenario, and stops the server by
//! its PID. Scenarios: creating connections (tokens), and listing sessions; then, on a
//! second server with the webhook on, sessions created and deleted as fast as answers come
//! while a receiver in this process answers every event at once: how many events per
//! second reach it, and how long after they happened.

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Load tool for Camerata's OpenVidu REST API")]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Sessions listed by the list scenario.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Pending connections per listed session.
    #[arg(long, default_value_t = 4)]
    connections_per_session: usize,
    /// The server binary (default: `camerata` beside this tool).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Database URL for the server (default: SQLite in a temporary folder).
    #[arg(long)]
    database_url: Option<String>,
    /// Offered load of the paced scenario, requests per second across all clients.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Events per second of the paced webhook run (sessions created and deleted: two events
    /// each).
    #[arg(long, default_value_t = 2000.0)]
    event_rate: f64,
    /// A tiny run that checks the tool works (2 clients, a fraction of a second).
    #[arg(long)]
    smoke: bool,
}

const SECRET: &str = "BENCH_SECRET";

/// The server process, killed by PID when dropped.
struct ServerProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn start_server(args: &Args, extra: &[String]) -> anyhow::Result<ServerProcess> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("camerata"),
    };
    let dir = std::env::temp_dir().join(format!("restbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut cmd = Command::new(&bin);
    cmd.args([
        "--port",
        &port.to_string(),
        "--secret",
        SECRET,
        "--data-dir",
    ])
    .arg(&dir)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if let Some(url) = &args.database_url {
        cmd.args(["--database-url", url]);
    }
    cmd.args(extra);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let server = ServerProcess { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("server did not listen on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

/// One keep-alive HTTP/1.1 client.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    auth: Arc<str>,
    host: Arc<str>,
}

impl Client {
    async fn connect(port: u16) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{SECRET}"))
        );
        Ok(Self {
            sender,
            auth: auth.into(),
            host: format!("127.0.0.1:{port}").into(),
        })
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &'static str,
    ) -> anyhow::Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &*self.host)
            .header("authorization", &*self.auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))?;
        let res = self.sender.send_request(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// What one scenario measured.
struct Outcome {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs one scenario. With `rate`, each client sends on a fixed schedule (open loop) and a
/// request's latency counts from its scheduled time, so a stall is not hidden by the
/// requests it delayed; without it, each client sends as fast as answers come (closed loop).
#[allow(clippy::too_many_arguments)]
async fn drive(
    name: &'static str,
    port: u16,
    clients: usize,
    duration: Duration,
    rate: Option<f64>,
    method: &'static str,
    path: Arc<str>,
    body: &'static str,
) -> anyhow::Result<Outcome> {
    let interval = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for k in 0..clients {
        let path = path.clone();
        let mut client = Client::connect(port).await?;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(16 * 1024);
            let mut errors = 0usize;
            // Spread the clients' schedules over one interval.
            let mut next = interval.map(|i| start + i.mul_f64(k as f64 / clients as f64));
            while Instant::now() < deadline {
                let t = match (next, interval) {
                    (Some(at), Some(i)) => {
                        tokio::time::sleep_until(at.into()).await;
                        next = Some(at + i);
                        at
                    }
                    _ => Instant::now(),
                };
                match client.call(method, &path, body).await {
                    Ok((200, _)) => {
                        lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32)
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        latencies_us.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Ok(Outcome {
        name,
        requests: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    })
}

async fn setup_sessions(port: u16, sessions: usize, per: usize) -> anyhow::Result<Vec<String>> {
    let mut c = Client::connect(port).await?;
    let mut ids = Vec::new();
    for _ in 0..sessions {
        let (status, body) = c.call("POST", "/openvidu/api/sessions", "{}").await?;
        if status != 200 {
            bail!("session creation answered {status}");
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let id = v["id"].as_str().context("session id")?.to_owned();
        for _ in 0..per {
            let path = format!("/openvidu/api/sessions/{id}/connection");
            c.call("POST", &path, "{}").await?;
        }
        ids.push(id);
    }
    Ok(ids)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.clients = 2;
        args.seconds = 0.3;
        args.sessions = 3;
        args.connections_per_session = 2;
        args.rate = 100.0;
        args.event_rate = 100.0;
    }
    // The load runs on its own runtime threads; the server is another process.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = start_server(&args, &[])?;
        let duration = Duration::from_secs_f64(args.seconds);
        let ids = setup_sessions(server.port, args.sessions, args.connections_per_session).await?;
        let target: Arc<str> = format!("/openvidu/api/sessions/{}/connection", ids[0]).into();
        let create = drive(
            "create connection, as fast as answers come",
            server.port,
            args.clients,
            duration,
            None,
            "POST",
            target.clone(),
            "{}",
        )
        .await?;
        let paced = drive(
            "create connection, paced at --rate",
            server.port,
            args.clients,
            duration,
            Some(args.rate),
            "POST",
            target,
            "{}",
        )
        .await?;
        let list = drive(
            "list sessions (GET /sessions)",
            server.port,
            args.clients,
            duration,
            None,
            "GET",
            "/openvidu/api/sessions".into(),
            "",
        )
        .await?;
        let backend = if args.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        println!(
            "restbench: {} clients, {:.1} s per scenario, {backend}, paced rate {:.0}/s, {} listed sessions x {} pending connections",
            args.clients, args.seconds, args.rate, args.sessions, args.connections_per_session
        );
        println!("| scenario | requests/s | p50 ms | p99 ms | max ms | errors |");
        println!("|---|---|---|---|---|---|");
        for o in [&create, &paced, &list] {
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                o.name,
                o.rate(),
                o.percentile(0.50),
                o.percentile(0.99),
                o.percentile(1.0),
                o.errors
            );
        }
        for o in [&create, &paced, &list] {
            if o.requests == 0 || o.errors > 0 {
                bail!("{}: {} requests, {} errors", o.name, o.requests, o.errors);
            }
        }
        drop(server);
        println!(
            "webhook: {} clients creating and deleting sessions (two events each); a receiver on 127.0.0.1 answering at once",
            args.clients
        );
        println!(
            "| load | events | produced/s | delivered/s (until the last) | delay p50 ms | delay p99 ms | max ms |"
        );
        println!("|---|---|---|---|---|---|---|");
        webhook_scenario(&args, duration, None).await?;
        webhook_scenario(&args, duration, Some(args.event_rate)).await
    })
}

/// What the receiver saw: events, and each one's delay from its `timestamp`, in ms.
#[derive(Default)]
struct Seen {
    events: usize,
    delays_ms: Vec<i64>,
    last: Option<Instant>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sessions created and deleted by `--clients` clients for `duration` on a server whose
/// webhook posts to a receiver here that answers at once.
async fn webhook_scenario(
    args: &Args,
    duration: Duration,
    event_rate: Option<f64>,
) -> anyhow::Result<()> {
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let record = record.clone();
        async move {
            let at = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["timestamp"].as_i64());
            let mut s = record
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.events += 1;
            if let Some(at) = at {
                s.delays_ms.push(now_ms() - at);
            }
            s.last = Some(Instant::now());
            ""
        }
    });
    let receiver = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let server = start_server(
        args,
        &[
            "--webhook".into(),
            "true".into(),
            "--webhook-endpoint".into(),
            hook,
        ],
    )?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    // Each client paces its create-delete pairs (two events) on a fixed schedule.
    let interval = event_rate.map(|r| Duration::from_secs_f64(2.0 * args.clients as f64 / r));
    for k in 0..args.clients {
        let mut c = Client::connect(server.port).await?;
        let mut next = interval.map(|i| start + i.mul_f64(k as f64 / args.clients as f64));
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                if let (Some(at), Some(i)) = (next, interval) {
                    tokio::time::sleep_until(at.into()).await;
                    next = Some(at + i);
                }
                let Ok((200, body)) = c.call("POST", "/openvidu/api/sessions", "{}").await else {
                    break;
                };
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned));
                let Some(id) = id else { break };
                let path = format!("/openvidu/api/sessions/{id}");
                if !matches!(c.call("DELETE", &path, "").await, Ok((204, _))) {
                    break;
                }
                done += 1;
            }
            done
        }));
    }
    let mut pairs = 0;
    for t in tasks {
        pairs += t.await?;
    }
    let load_time = start.elapsed();
    let expected = pairs * 2;
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = seen.lock().map(|s| s.events).unwrap_or(0);
        if got >= expected || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut s = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let delivered_in = s.last.map_or(load_time, |l| l.duration_since(start));
    s.delays_ms.sort_unstable();
    let pct = |p: f64| {
        let d = &s.delays_ms;
        if d.is_empty() {
            0
        } else {
            d[((d.len() - 1) as f64 * p).round() as usize]
        }
    };
    let load = match event_rate {
        None => "as fast as answers come".to_owned(),
        Some(r) => format!("paced at {r:.0} events/s"),
    };
    println!(
        "| {load} | {} of {expected} | {:.0} | {:.0} | {} | {} | {} |",
        s.events,
        expected as f64 / load_time.as_secs_f64(),
        s.events as f64 / delivered_in.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    let complete = s.events == expected && expected > 0;
    drop(s);
    drop(server);
    receiver.abort();
    if !complete {
        bail!("webhook: {expected} events expected");
    }
    Ok(())
}
