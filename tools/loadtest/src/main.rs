//! `loadtest`: the media load tool. One publisher sends a prerecorded VP8 + Opus stream (made
//! once with ffmpeg) through the server under test to N subscribers in the same process;
//! subscribers measure packets, loss, delay through the server (each video payload's send
//! time is looked up by its hash on the one clock of the machine) and the time from the
//! subscribe request to the first packet and the first keyframe. The server's CPU time and
//! RSS come from /proc during a steady window. The same scenarios run against Camerata
//! through the OpenVidu protocol, Camerata through the Janus API (its VideoRoom door) and
//! Janus 1.1.2 (VideoRoom over its HTTP API), one after the other; the last two are driven
//! by the same Janus client code, so their comparison is the servers alone. The results are
//! written as a Markdown report and a CSV for the chart.
//!
//! Run it through `tools/loadtest/run.sh`, which makes the network namespace (loopback plus
//! the veth pair Janus needs) and installs what is missing.

mod cluster;
mod media;
mod peer;
mod signaling;
mod soak;

use anyhow::{Context, bail};
use clap::Parser;
use peer::{Peer, Seen, SendLog, Sent};
use serde_json::json;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "Media load: Camerata and Janus side by side")]
struct Args {
    /// Subscriber counts of the ladder, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,100,200")]
    ladder: Vec<usize>,
    /// Many small rooms: ROOMSxSIZE (one publisher and SIZE-1 subscribers each).
    #[arg(long, default_value = "25x4")]
    rooms: String,
    /// Seconds of each measuring window.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Which servers, comma separated: camerata (OpenVidu protocol), camerata-janus
    /// (Camerata through the Janus API), janus; `all` for the three, `both` for camerata and
    /// janus.
    #[arg(long, default_value = "all")]
    servers: String,
    /// The camerata binary.
    #[arg(long, default_value = "target/release/camerata")]
    camerata_bin: PathBuf,
    /// Address the client peers bind for Camerata.
    #[arg(long, default_value = "127.0.0.1")]
    camerata_client_ip: IpAddr,
    /// Address the client peers bind for Janus (Janus will not use loopback).
    #[arg(long, default_value = "10.200.0.1")]
    janus_client_ip: IpAddr,
    /// The interface Janus gathers candidates on.
    #[arg(long, default_value = "lt0")]
    janus_iface: String,
    /// Folder for the stream files and the run's scratch files.
    #[arg(long, default_value = "target/loadtest")]
    work: PathBuf,
    /// Markdown report to write.
    #[arg(long)]
    report: Option<PathBuf>,
    /// CSV of the ladder to write (the chart's input).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// A tiny run: 2 subscribers, 1 room of 3, short windows.
    #[arg(long)]
    smoke: bool,
    /// Also measure Camerata's extra CPU for recording the publisher's stream: INDIVIDUAL,
    /// COMPOSED, or both (comma separated).
    #[arg(long, value_delimiter = ',')]
    record: Vec<String>,
    /// Run the soak instead of the ladder (Camerata only): this many minutes of waves.
    #[arg(long)]
    soak_minutes: Option<f64>,
    /// The soak's waves: SESSIONSxSIZE (one publisher, SIZE-1 subscribers, everyone signals).
    #[arg(long, default_value = "100x4")]
    soak_rooms: String,
    /// Seconds each soak wave keeps its calls up.
    #[arg(long, default_value_t = 30)]
    soak_hold: u64,
    /// Folder for the soak's report (`soak.md`) and samples (`soak.csv`).
    #[arg(long, default_value = "target/loadtest")]
    soak_out: PathBuf,
    /// Run the cluster benchmark instead of the ladder: a PostgreSQL URL whose server the
    /// nodes share (a database per run is created there).
    #[arg(long)]
    cluster_db: Option<String>,
    /// The cluster sizes to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    cluster_nodes: Vec<usize>,
    /// Subscribers of the cluster benchmark's one room.
    #[arg(long, default_value_t = 60)]
    cluster_subscribers: usize,
    /// The psql client that creates the cluster benchmark's databases.
    #[arg(long, default_value = "psql")]
    psql: String,
    /// Markdown section the cluster benchmark writes.
    #[arg(long)]
    cluster_report: Option<PathBuf>,
}

const SECRET: &str = "LOAD_SECRET";

/// A server process under test, killed by PID when dropped.
struct ServerProcess {
    child: std::process::Child,
    name: &'static str,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU time (user + system) of a process, microseconds.
fn cpu_us(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    // The kernel's clock tick is 100 Hz on this platform.
    Ok((utime + stime) * 10_000)
}

/// CPU time (user + system) of a process's children it has waited for (its ffmpeg runs),
/// microseconds.
fn children_cpu_us(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = fields.get(13).context("cutime")?.parse()?;
    let cstime: u64 = fields.get(14).context("cstime")?.parse()?;
    Ok((cutime + cstime) * 10_000)
}

/// Resident set size of a process, KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn start_camerata(args: &Args) -> anyhow::Result<(ServerProcess, String)> {
    start_camerata_with(args, &[])
}

/// `start_camerata` with `extra` flags.
fn start_camerata_with(args: &Args, extra: &[String]) -> anyhow::Result<(ServerProcess, String)> {
    let port = free_port()?;
    let dir = args
        .work
        .join(format!("camerata-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let child = std::process::Command::new(&args.camerata_bin)
        .args([
            "--port",
            &port.to_string(),
            "--secret",
            SECRET,
            "--data-dir",
        ])
        .arg(&dir)
        .args(if args.record.is_empty() {
            vec![]
        } else {
            vec![
                "--recording".to_owned(),
                "true".to_owned(),
                "--recording-path".to_owned(),
                dir.join("recordings").to_string_lossy().into_owned(),
            ]
        })
        .args(extra)
        .env("RUST_LOG", "warn")
        // Janus itself takes its ports 8088 and 8188 in the same namespace.
        .env("CAMERATA_JANUS_HTTP_PORT", "off")
        .env("CAMERATA_JANUS_WS_PORT", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", args.camerata_bin.display()))?;
    let process = ServerProcess {
        child,
        name: "Camerata",
    };
    wait_port(port)?;
    Ok((process, format!("http://127.0.0.1:{port}")))
}

/// Writes a minimal Janus configuration (VideoRoom and the HTTP transport only) and starts it.
fn start_janus(args: &Args) -> anyhow::Result<(ServerProcess, String)> {
    let lib = ["/usr/lib/x86_64-linux-gnu/janus", "/usr/lib/janus"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("plugins").exists())
        .context("Janus is not installed (apt install janus)")?;
    let conf = args.work.join(format!("janus-{}", std::process::id()));
    std::fs::create_dir_all(&conf)?;
    let others = |folder: &str, keep: &str| -> anyhow::Result<String> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(lib.join(folder))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".so") && name != keep {
                names.push(name);
            }
        }
        Ok(names.join(","))
    };
    let port = free_port()?;
    let lib_s = lib.display();
    std::fs::write(
        conf.join("janus.jcfg"),
        format!(
            r#"general: {{
    configs_folder = "{conf}"
    plugins_folder = "{lib_s}/plugins"
    transports_folder = "{lib_s}/transports"
    events_folder = "{lib_s}/events"
    loggers_folder = "{lib_s}/loggers"
    debug_level = 2
    session_timeout = 120
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    ice_enforce_list = "{iface}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{plugins}"
}}
transports: {{
    disable = "{transports}"
}}
loggers: {{
    disable = "{loggers}"
}}
events: {{
    broadcast = false
}}
"#,
            conf = conf.display(),
            iface = args.janus_iface,
            plugins = others("plugins", "libjanus_videoroom.so")?,
            transports = others("transports", "libjanus_http.so")?,
            loggers = others("loggers", "")?,
        ),
    )?;
    std::fs::write(
        conf.join("janus.transport.http.jcfg"),
        format!(
            "general: {{\n    json = \"compact\"\n    base_path = \"/janus\"\n    http = true\n    port = {port}\n    ip = \"127.0.0.1\"\n    https = false\n}}\nadmin: {{\n    admin_http = false\n}}\ncors: {{\n}}\n"
        ),
    )?;
    std::fs::write(conf.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    let log = std::fs::File::create(conf.join("janus.log"))?;
    let child = std::process::Command::new("janus")
        .arg("-F")
        .arg(&conf)
        .arg("-C")
        .arg(conf.join("janus.jcfg"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start janus")?;
    let process = ServerProcess {
        child,
        name: "Janus",
    };
    wait_port(port)?;
    Ok((process, format!("http://127.0.0.1:{port}/janus")))
}

/// A publisher sending, on either server.
struct Publishing {
    peer: Peer,
    sending: tokio::task::JoinHandle<()>,
    /// Camerata: the stream id. Janus: the feed id.
    feed: String,
    keep: Option<signaling::OvConn>,
    _janus: Option<signaling::JanusHandle>,
}

/// A subscriber receiving.
struct Subscribing {
    peer: Peer,
    seen: Arc<Mutex<Seen>>,
    _keep: Option<signaling::OvConn>,
    _janus: Option<signaling::JanusHandle>,
}

/// The server under test, as the scenarios use it.
enum Target {
    Camerata(signaling::Camerata),
    Janus(signaling::Janus),
}

/// A room on the server: the session id, or the VideoRoom number.
async fn new_room(target: &Target, number: u64) -> anyhow::Result<String> {
    match target {
        Target::Camerata(c) => c.session().await,
        Target::Janus(j) => {
            let h = j.attach().await?;
            h.message(
                serde_json::json!({"request": "create", "room": number, "publishers": 1,
                    "videocodec": "vp8", "audiocodec": "opus", "bitrate": 0,
                    "notify_joining": false}),
                None,
            )
            .await?;
            Ok(number.to_string())
        }
    }
}

async fn publish(
    target: &Target,
    room: &str,
    ip: IpAddr,
    stream: &Arc<media::Stream>,
    log: &Arc<SendLog>,
    sent: &Arc<Sent>,
) -> anyhow::Result<Publishing> {
    let mut peer = Peer::new(ip).await?;
    let tracks = peer::add_tracks(&peer).await?;
    let offer = peer.offer().await?;
    let (feed, keep, janus) = match target {
        Target::Camerata(c) => {
            let conn = c.join(room, "PUBLISHER").await?;
            let r = conn
                .request(
                    "publishVideo",
                    serde_json::json!({"sdpOffer": offer, "hasAudio": true, "hasVideo": true,
                        "audioActive": true, "videoActive": true, "typeOfVideo": "CAMERA",
                        "frameRate": 30, "videoDimensions": "{\"width\":640,\"height\":480}",
                        "doLoopback": false}),
                )
                .await?;
            let answer = r["sdpAnswer"].as_str().context("sdpAnswer")?.to_owned();
            let candidates = conn.take_candidates().await;
            peer.accept(&answer, &candidates).await?;
            (
                r["id"].as_str().context("stream id")?.to_owned(),
                Some(conn),
                None,
            )
        }
        Target::Janus(j) => {
            let mut h = j.attach().await?;
            let number: u64 = room.parse()?;
            let (ev, answer) = h
                .exchange(
                    serde_json::json!({"request": "joinandconfigure", "room": number,
                        "ptype": "publisher", "audio": true, "video": true}),
                    Some(serde_json::json!({"type": "offer", "sdp": offer})),
                )
                .await?;
            let feed = ev["plugindata"]["data"]["id"]
                .as_u64()
                .context("feed id")?
                .to_string();
            peer.accept(&answer, &[]).await?;
            (feed, None, Some(h))
        }
    };
    peer.connected().await?;
    let (stream, log, sent) = (stream.clone(), log.clone(), sent.clone());
    let sending = tokio::spawn(async move {
        if let Err(e) = peer::send(tracks, stream, log, sent).await {
            eprintln!("publisher stopped: {e:#}");
        }
    });
    Ok(Publishing {
        peer,
        sending,
        feed,
        keep,
        _janus: janus,
    })
}

async fn subscribe(
    target: &Target,
    room: &str,
    feed: &str,
    ip: IpAddr,
    log: &Arc<SendLog>,
) -> anyhow::Result<Subscribing> {
    let mut peer = Peer::new(ip).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    peer::watch(&mut peer, seen.clone(), log.clone());
    let (keep, janus) = match target {
        Target::Camerata(c) => {
            let conn = c.join(room, "SUBSCRIBER").await?;
            peer.receive_both().await?;
            let offer = peer.offer().await?;
            seen.lock()
                .map(|mut s| s.requested = Some(Instant::now()))
                .ok();
            let r = conn
                .request(
                    "receiveVideoFrom",
                    serde_json::json!({"sender": feed, "sdpOffer": offer}),
                )
                .await?;
            let answer = r["sdpAnswer"].as_str().context("sdpAnswer")?.to_owned();
            let candidates = conn.take_candidates().await;
            peer.accept(&answer, &candidates).await?;
            (Some(conn), None)
        }
        Target::Janus(j) => {
            let mut h = j.attach().await?;
            let number: u64 = room.parse()?;
            let feed: u64 = feed.parse()?;
            seen.lock()
                .map(|mut s| s.requested = Some(Instant::now()))
                .ok();
            let (_, offer) = h
                .exchange(
                    serde_json::json!({"request": "join", "room": number, "ptype": "subscriber",
                        "streams": [{"feed": feed}]}),
                    None,
                )
                .await?;
            let answer = peer.answer(&offer).await?;
            h.message(
                serde_json::json!({"request": "start"}),
                Some(serde_json::json!({"type": "answer", "sdp": answer})),
            )
            .await?;
            (None, Some(h))
        }
    };
    peer.connected().await?;
    Ok(Subscribing {
        peer,
        seen,
        _keep: keep,
        _janus: janus,
    })
}

/// One row of results.
#[derive(Debug, Clone, Default)]
struct Row {
    server: &'static str,
    scenario: String,
    subscribers: usize,
    forwarded_pps: f64,
    cpu_us_per_packet: f64,
    cpu_percent: f64,
    rss_mib: f64,
    rss_kib_per_subscriber: f64,
    loss_percent: f64,
    delay_p50_ms: f64,
    delay_p99_ms: f64,
    first_packet_p50_ms: f64,
    first_keyframe_p50_ms: f64,
    first_keyframe_p99_ms: f64,
    client_cpu_percent: f64,
    /// What recording the row measured, when it did.
    recording: Option<String>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Measures the steady state of `subs` for `window`, against `pid`.
async fn measure(
    pid: u32,
    subs: &[Subscribing],
    fresh: &[usize],
    window: Duration,
    baseline_rss: u64,
) -> anyhow::Result<Row> {
    let snapshot = |subs: &[Subscribing]| -> Vec<(u64, i64)> {
        subs.iter()
            .map(|s| {
                let g = s
                    .seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (
                    g.video.received + g.audio.received,
                    g.video.highest.unwrap_or(0) + g.audio.highest.unwrap_or(0),
                )
            })
            .collect()
    };
    for s in subs {
        let mut g = s
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.delays_us.clear();
        g.measuring = true;
    }
    let before = snapshot(subs);
    let cpu0 = cpu_us(pid)?;
    let client0 = cpu_us(std::process::id())?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_us(pid)?;
    let client1 = cpu_us(std::process::id())?;
    let after = snapshot(subs);
    let rss = rss_kib(pid)?;
    let mut delays = Vec::new();
    for s in subs {
        let mut g = s
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.measuring = false;
        delays.extend(g.delays_us.iter().map(|&d| f64::from(d) / 1000.0));
    }
    delays.sort_by(f64::total_cmp);
    let (mut received, mut expected) = (0u64, 0i64);
    for (b, a) in before.iter().zip(&after) {
        received += a.0 - b.0;
        expected += a.1 - b.1;
    }
    let mut first_packet = Vec::new();
    let mut first_keyframe = Vec::new();
    for &i in fresh {
        let g = subs[i]
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(req) = g.requested {
            if let Some(p) = g.first_packet {
                first_packet.push(p.duration_since(req).as_secs_f64() * 1000.0);
            }
            if let Some(k) = g.first_keyframe {
                first_keyframe.push(k.duration_since(req).as_secs_f64() * 1000.0);
            }
        }
    }
    first_packet.sort_by(f64::total_cmp);
    first_keyframe.sort_by(f64::total_cmp);
    let n = subs.len().max(1);
    Ok(Row {
        subscribers: subs.len(),
        forwarded_pps: received as f64 / elapsed,
        cpu_us_per_packet: (cpu1 - cpu0) as f64 / received.max(1) as f64,
        cpu_percent: (cpu1 - cpu0) as f64 / (elapsed * 10_000.0),
        rss_mib: rss as f64 / 1024.0,
        rss_kib_per_subscriber: (rss.saturating_sub(baseline_rss)) as f64 / n as f64,
        loss_percent: if expected > 0 {
            (1.0 - received as f64 / expected as f64).max(0.0) * 100.0
        } else {
            f64::NAN
        },
        delay_p50_ms: percentile(&delays, 0.5),
        delay_p99_ms: percentile(&delays, 0.99),
        first_packet_p50_ms: percentile(&first_packet, 0.5),
        first_keyframe_p50_ms: percentile(&first_keyframe, 0.5),
        first_keyframe_p99_ms: percentile(&first_keyframe, 0.99),
        client_cpu_percent: (client1 - client0) as f64 / (elapsed * 10_000.0),
        ..Row::default()
    })
}

/// The server's CPU with the publisher alone, then while each mode of `--record` records it.
#[allow(clippy::too_many_arguments)]
async fn measure_recording(
    args: &Args,
    api: &signaling::Camerata,
    room: &str,
    pid: u32,
    window: Duration,
    settle: Duration,
    name: &'static str,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let cpu_percent = |window: Duration| async move {
        let c0 = cpu_us(pid)?;
        let t0 = Instant::now();
        tokio::time::sleep(window).await;
        let c1 = cpu_us(pid)?;
        anyhow::Ok((c1 - c0) as f64 / (t0.elapsed().as_secs_f64() * 10_000.0))
    };
    let alone = cpu_percent(window).await?;
    rows.push(Row {
        server: name,
        scenario: "1 publisher, recorded or not".into(),
        cpu_percent: alone,
        ..Row::default()
    });
    eprintln!("{name}: publisher alone: {alone:.2}% of a core");
    for mode in &args.record {
        let id = api
            .start_recording(
                room,
                json!({ "outputMode": mode, "resolution": "640x480", "frameRate": 30 }),
            )
            .await?;
        tokio::time::sleep(settle).await;
        let recorded = cpu_percent(window).await?;
        let t0 = Instant::now();
        let stopped = api.stop_recording(&id).await?;
        // Composed output is made after the stop: its CPU per second of output is measured
        // around that work.
        let c0 = cpu_us(pid)? + children_cpu_us(pid)?;
        let mut finished = stopped.clone();
        while finished["status"] == "stopped" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            finished = api.recording(&id).await?;
        }
        let finish_cpu_s = (cpu_us(pid)? + children_cpu_us(pid)? - c0) as f64 / 1e6;
        eprintln!(
            "{name}: recording {mode}: {recorded:.2}% of a core while recording \
             (+{:.2}); finishing took {:.1} s ({finish_cpu_s:.1} s CPU, ffmpeg \
             included) for {} s of output; status {}",
            recorded - alone,
            t0.elapsed().as_secs_f64(),
            finished["duration"],
            finished["status"]
        );
        rows.push(Row {
            server: name,
            scenario: "1 publisher, recorded or not".into(),
            cpu_percent: recorded,
            recording: Some(format!(
                "{mode}: +{:.2}% of a core while recording; {:.1} s ({finish_cpu_s:.1} s CPU) to finish {} s of output",
                recorded - alone,
                t0.elapsed().as_secs_f64(),
                finished["duration"]
            )),
            ..Row::default()
        });
    }
    Ok(())
}

/// Adds subscribers until there are `n`, ten at a time; returns the indexes added.
async fn grow(
    target: &Target,
    room: &str,
    feed: &str,
    ip: IpAddr,
    log: &Arc<SendLog>,
    subs: &mut Vec<Subscribing>,
    n: usize,
) -> anyhow::Result<Vec<usize>> {
    let start = subs.len();
    while subs.len() < n {
        let batch = (n - subs.len()).min(10);
        let joins = (0..batch).map(|_| subscribe(target, room, feed, ip, log));
        for s in futures_util::future::join_all(joins).await {
            subs.push(s?);
        }
    }
    Ok((start..n).collect())
}

async fn run_server(
    args: &Args,
    which: &str,
    stream: &Arc<media::Stream>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let window = Duration::from_secs_f64(args.seconds);
    let settle = Duration::from_secs(if args.smoke { 1 } else { 3 });
    let (process, target, ip) = match which {
        "camerata" => {
            let (p, base) = start_camerata(args)?;
            (
                p,
                Target::Camerata(signaling::Camerata::new(&base, SECRET)),
                args.camerata_client_ip,
            )
        }
        "camerata-janus" => {
            let (mut p, base) = start_camerata(args)?;
            p.name = "Camerata (Janus API)";
            let j = signaling::Janus::connect(&format!("{base}/janus")).await?;
            (p, Target::Janus(j), args.camerata_client_ip)
        }
        _ => {
            let (p, base) = start_janus(args)?;
            let j = signaling::Janus::connect(&base).await?;
            (p, Target::Janus(j), args.janus_client_ip)
        }
    };
    let pid = process.pid();
    let name = process.name;
    eprintln!("{name}: ladder {:?}", args.ladder);

    // Ladder: one publisher, subscribers added step by step.
    let log = Arc::new(SendLog::default());
    let sent = Arc::new(Sent::default());
    let room = new_room(&target, 1000).await?;
    let publisher = publish(&target, &room, ip, stream, &log, &sent).await?;
    tokio::time::sleep(settle).await;
    let baseline = rss_kib(pid)?;
    if let (Target::Camerata(api), false) = (&target, args.record.is_empty()) {
        measure_recording(args, api, &room, pid, window, settle, name, rows).await?;
    }
    let mut subs = Vec::new();
    for &n in &args.ladder {
        let fresh = grow(&target, &room, &publisher.feed, ip, &log, &mut subs, n).await?;
        tokio::time::sleep(settle).await;
        let mut row = measure(pid, &subs, &fresh, window, baseline).await?;
        row.server = name;
        row.scenario = format!("1 publisher, {n} subscribers");
        eprintln!("{name}: {row:?}");
        rows.push(row);
    }
    for s in &subs {
        s.peer.close().await;
    }
    drop(subs);
    publisher.sending.abort();
    if let Some(conn) = &publisher.keep {
        conn.leave().await;
    }
    publisher.peer.close().await;
    tokio::time::sleep(settle).await;

    // Many small rooms.
    let (rooms, size) = args
        .rooms
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .context("--rooms is ROOMSxSIZE")?;
    let baseline = rss_kib(pid)?;
    let mut publishers = Vec::new();
    let mut all = Vec::new();
    let mut fresh = Vec::new();
    for r in 0..rooms {
        let room = new_room(&target, 2000 + r as u64).await?;
        let p = publish(&target, &room, ip, stream, &log, &sent).await?;
        let mut subs = Vec::new();
        grow(&target, &room, &p.feed, ip, &log, &mut subs, size - 1).await?;
        for s in subs {
            fresh.push(all.len());
            all.push(s);
        }
        publishers.push(p);
    }
    tokio::time::sleep(settle).await;
    let mut row = measure(pid, &all, &fresh, window, baseline).await?;
    row.server = name;
    row.scenario = format!(
        "{rooms} rooms of {size} (1 publisher, {} subscribers each)",
        size - 1
    );
    eprintln!("{name}: {row:?}");
    rows.push(row);
    for s in &all {
        s.peer.close().await;
    }
    for p in &publishers {
        p.sending.abort();
        p.peer.close().await;
    }
    drop(process);
    Ok(())
}

fn fmt(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "n/a".to_owned()
    } else {
        format!("{v:.digits$}")
    }
}

fn report(rows: &[Row], args: &Args) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Measured with `bash tools/loadtest/run.sh` (release builds, one network namespace, \
         client and server on the same 2 cores), {} s windows.\n\n",
        args.seconds
    ));
    let mut scenarios: Vec<String> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario.clone());
        }
    }
    for scenario in scenarios {
        out.push_str(&format!("### {scenario}\n\n"));
        let of: Vec<&Row> = rows.iter().filter(|r| r.scenario == scenario).collect();
        if of.iter().all(|r| r.subscribers == 0) {
            // The recording rows: the publisher alone, then each mode recording it.
            for r in &of {
                match &r.recording {
                    None => out.push_str(&format!(
                        "{}: server CPU with the publisher alone {}% of a core.\n\n",
                        r.server,
                        fmt(r.cpu_percent, 2)
                    )),
                    Some(rec) => out.push_str(&format!("- recording {rec}\n")),
                }
            }
            out.push('\n');
            continue;
        }
        out.push_str(
            "| server | forwarded pkt/s | CPU us/pkt | CPU % | RSS MiB | RSS KiB/sub | loss % | delay p50 ms | delay p99 ms | first pkt p50 ms | first keyframe p50 / p99 ms | client CPU % |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &of {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |\n",
                r.server,
                fmt(r.forwarded_pps, 0),
                fmt(r.cpu_us_per_packet, 2),
                fmt(r.cpu_percent, 1),
                fmt(r.rss_mib, 1),
                fmt(r.rss_kib_per_subscriber, 0),
                fmt(r.loss_percent, 2),
                fmt(r.delay_p50_ms, 2),
                fmt(r.delay_p99_ms, 2),
                fmt(r.first_packet_p50_ms, 0),
                fmt(r.first_keyframe_p50_ms, 0),
                fmt(r.first_keyframe_p99_ms, 0),
                fmt(r.client_cpu_percent, 1),
            ));
        }
        for camerata in ["Camerata", "Camerata (Janus API)"] {
            if let (Some(c), Some(j)) = (
                of.iter().find(|r| r.server == camerata),
                of.iter().find(|r| r.server == "Janus"),
            ) {
                out.push_str(&format!(
                    "\nJanus / {camerata}: CPU per packet {}x, RSS per subscriber {}x.\n",
                    fmt(j.cpu_us_per_packet / c.cpu_us_per_packet, 2),
                    fmt(j.rss_kib_per_subscriber / c.rss_kib_per_subscriber, 2)
                ));
            }
        }
        out.push('\n');
    }
    out
}

fn csv(rows: &[Row]) -> String {
    let mut out =
        String::from("server,subscribers,cpu_us_per_packet,rss_kib_per_subscriber,rss_mib\n");
    for r in rows
        .iter()
        .filter(|r| r.scenario.starts_with("1 publisher") && r.subscribers > 0)
    {
        out.push_str(&format!(
            "{},{},{:.3},{:.1},{:.2}\n",
            r.server, r.subscribers, r.cpu_us_per_packet, r.rss_kib_per_subscriber, r.rss_mib
        ));
    }
    out
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.ladder = vec![2];
        args.rooms = "1x3".into();
        args.seconds = 1.0;
    }
    let (video, audio) = media::prepare(&args.work, 20)?;
    let stream = Arc::new(media::load(&video, &audio)?);
    eprintln!(
        "stream: {} video and {} audio packets over {:.1} s",
        stream.video.len(),
        stream.audio.len(),
        stream.length.as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let servers: Vec<&str> = match args.servers.as_str() {
        "all" => vec!["camerata", "camerata-janus", "janus"],
        "both" => vec!["camerata", "janus"],
        list => list.split(',').map(str::trim).collect(),
    };
    if let Some(other) = servers
        .iter()
        .find(|s| !["camerata", "camerata-janus", "janus"].contains(s))
    {
        bail!("--servers: camerata, camerata-janus, janus, all or both, not {other}");
    }
    if let Some(minutes) = args.soak_minutes {
        let (rooms, size) = args
            .soak_rooms
            .split_once('x')
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            .filter(|(r, s)| *r > 0 && *s > 1)
            .context("--soak-rooms is SESSIONSxSIZE, SIZE at least 2")?;
        let settings = soak::Soak {
            rooms,
            size,
            length: Duration::from_secs_f64(minutes * 60.0),
            hold: Duration::from_secs(args.soak_hold),
            every: Duration::from_secs(10),
        };
        let report = rt.block_on(soak::run(
            &settings,
            |extra| start_camerata_with(&args, extra),
            args.camerata_client_ip,
            &stream,
        ))?;
        let (md, csv) = report.render(&settings);
        println!("{md}");
        std::fs::create_dir_all(&args.soak_out)?;
        std::fs::write(args.soak_out.join("soak.md"), &md)?;
        std::fs::write(args.soak_out.join("soak.csv"), &csv)?;
        rt.shutdown_timeout(Duration::from_secs(1));
        return report
            .verdict()
            .map_err(|e| anyhow::anyhow!("soak failed: {e}"));
    }
    if let Some(db) = &args.cluster_db {
        if args.smoke {
            args.cluster_subscribers = 4;
            args.cluster_nodes = vec![1, 2];
        }
        let md = rt.block_on(cluster::run(&args, db, &stream))?;
        println!("{md}");
        if let Some(path) = &args.cluster_report {
            std::fs::write(path, &md)?;
        }
        rt.shutdown_timeout(Duration::from_secs(1));
        return Ok(());
    }
    let mut rows = Vec::new();
    rt.block_on(async {
        for s in servers {
            run_server(&args, s, &stream, &mut rows).await?;
        }
        anyhow::Ok(())
    })?;
    let text = report(&rows, &args);
    println!("{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, &text)?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&rows))?;
    }
    // The recording rows measure the publisher alone: nothing is forwarded there.
    let broken = rows
        .iter()
        .any(|r| r.subscribers > 0 && r.forwarded_pps <= 0.0);
    rt.shutdown_timeout(Duration::from_secs(1));
    if broken {
        bail!("a scenario forwarded nothing");
    }
    Ok(())
}
