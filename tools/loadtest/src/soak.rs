//! The soak: many small sessions joining, publishing, subscribing, signalling and leaving in
//! waves for a long while against one Camerata server, its RSS, open files, tasks and peer
//! connections sampled every few seconds (from /proc and its `/metrics`), every webhook
//! event counted by a receiver in this process. What it checks: nothing grows from wave to
//! wave (RSS at the end of each wave, when everyone has left, within 5 % of the first
//! wave's), no call fails, and every event the server queued reached the receiver.

use crate::{SECRET, ServerProcess, Target, media, peer, publish, rss_kib, signaling, subscribe};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// The soak's settings.
pub struct Soak {
    /// Sessions per wave.
    pub rooms: usize,
    /// Participants per session (one publishes; every one signals; the others subscribe).
    pub size: usize,
    /// How long the soak runs.
    pub length: Duration,
    /// How long a wave keeps its calls up before everyone leaves.
    pub hold: Duration,
    /// Time between samples.
    pub every: Duration,
}

/// One sample of the server.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the soak began.
    pub at: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub open_files: u64,
    /// Tokio tasks alive.
    pub tasks: u64,
    /// Peer connections.
    pub peers: u64,
    /// Participants in rooms.
    pub participants: u64,
}

/// A webhook receiver on 127.0.0.1: counts the events it is sent (HTTP/1.1 keep-alive).
async fn receiver() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let (r, mut w) = socket.into_split();
                let mut r = tokio::io::BufReader::new(r);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    c.fetch_add(1, Ordering::Relaxed);
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, count))
}

/// The server's metrics, as name{labels} → value.
async fn scrape(
    api: &signaling::Camerata,
) -> anyhow::Result<std::collections::HashMap<String, f64>> {
    let text = api.metrics().await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect())
}

fn sum(m: &std::collections::HashMap<String, f64>, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

async fn sample(pid: u32, api: &signaling::Camerata, t0: Instant) -> anyhow::Result<Sample> {
    let m = scrape(api).await?;
    Ok(Sample {
        at: t0.elapsed().as_secs_f64(),
        rss_kib: rss_kib(pid)?,
        open_files: open_files(pid),
        tasks: sum(&m, "camerata_tokio_tasks") as u64,
        peers: sum(&m, "camerata_peer_connections") as u64,
        participants: sum(&m, "camerata_participants") as u64,
    })
}

/// Runs the soak against a Camerata started by `start` (with the webhook `url`); returns
/// the samples, the end-of-wave RSS, the error count and the webhook totals.
pub async fn run(
    soak: &Soak,
    start: impl FnOnce(&[String]) -> anyhow::Result<(ServerProcess, String)>,
    ip: IpAddr,
    stream: &Arc<media::Stream>,
) -> anyhow::Result<Report> {
    let (url, received) = receiver().await?;
    let (process, base) = start(&[
        "--webhook".to_owned(),
        "true".to_owned(),
        "--webhook-endpoint".to_owned(),
        url,
    ])?;
    let pid = process.pid();
    let api = signaling::Camerata::new(&base, SECRET);
    let target = Target::Camerata(api.clone());
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let t0 = Instant::now();
    let sampler = {
        let (samples, api, every) = (samples.clone(), api.clone(), soak.every);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Ok(s) = sample(pid, &api, t0).await {
                    eprintln!("soak: {s:?}");
                    samples.lock().map(|mut v| v.push(s)).ok();
                }
            }
        })
    };
    let log = Arc::new(peer::SendLog::default());
    let sent = Arc::new(peer::Sent::default());
    let mut errors = 0u64;
    let mut wave_ends = Vec::new();
    let mut waves = 0usize;
    while t0.elapsed() < soak.length {
        waves += 1;
        let mut calls = Vec::new();
        for r in 0..soak.rooms {
            let room = match api.session().await {
                Ok(room) => room,
                Err(e) => {
                    eprintln!("soak: session: {e:#}");
                    errors += 1;
                    continue;
                }
            };
            let p = match publish(&target, &room, ip, stream, &log, &sent).await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("soak: publish in room {r}: {e:#}");
                    errors += 1;
                    continue;
                }
            };
            let joins = (1..soak.size).map(|_| subscribe(&target, &room, &p.feed, ip, &log));
            let mut subs = Vec::new();
            for s in futures_util::future::join_all(joins).await {
                match s {
                    Ok(s) => subs.push(s),
                    Err(e) => {
                        eprintln!("soak: subscribe: {e:#}");
                        errors += 1;
                    }
                }
            }
            calls.push((p, subs));
        }
        // Everyone signals everyone in their session.
        for (p, subs) in &calls {
            let conns = p
                .keep
                .iter()
                .chain(subs.iter().filter_map(|s| s._keep.as_ref()));
            for conn in conns {
                let message = serde_json::json!({"to": [], "data": "soak", "type": "signal:soak"});
                if let Err(e) = conn
                    .request(
                        "sendMessage",
                        serde_json::json!({"message": message.to_string()}),
                    )
                    .await
                {
                    eprintln!("soak: signal: {e:#}");
                    errors += 1;
                }
            }
        }
        tokio::time::sleep(soak.hold).await;
        // Everyone leaves; the sessions close with their last participant.
        for (p, subs) in calls {
            for s in subs {
                if let Some(conn) = &s._keep {
                    conn.leave().await;
                }
                s.peer.close().await;
            }
            p.sending.abort();
            if let Some(conn) = &p.keep {
                conn.leave().await;
            }
            p.peer.close().await;
        }
        // Let the server settle, then take the wave's end point.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let end = sample(pid, &api, t0).await?;
        eprintln!("soak: wave {waves} ended: {end:?}");
        wave_ends.push(end);
    }
    sampler.abort();
    // Every queued event delivered: the backlog drains and the receiver has them all.
    let mut delivered = 0.0;
    let mut backlog = f64::NAN;
    for _ in 0..600 {
        let m = scrape(&api).await?;
        backlog = sum(&m, "camerata_outbox_backlog");
        delivered = sum(&m, "camerata_webhook_delivered_total");
        if backlog == 0.0 && received.load(Ordering::Relaxed) as f64 >= delivered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let samples = samples.lock().map(|v| v.clone()).unwrap_or_default();
    drop(process);
    Ok(Report {
        samples,
        wave_ends,
        errors,
        received: received.load(Ordering::Relaxed),
        delivered: delivered as u64,
        backlog: backlog as u64,
        waves,
    })
}

/// What a soak measured.
pub struct Report {
    /// The samples, in order.
    pub samples: Vec<Sample>,
    /// The server at the end of each wave, everyone gone.
    pub wave_ends: Vec<Sample>,
    /// Calls that failed.
    pub errors: u64,
    /// Webhook events the receiver got.
    pub received: u64,
    /// Webhook events the server counted as delivered.
    pub delivered: u64,
    /// Events left in the outbox at the end.
    pub backlog: u64,
    /// Waves run.
    pub waves: usize,
}

impl Report {
    /// Whether it passed: no growth after the first wave (RSS within 5 %, files, tasks and
    /// peer connections back to the first wave's end point), no error, every event
    /// delivered.
    pub fn verdict(&self) -> Result<(), String> {
        let Some(first) = self.wave_ends.first() else {
            return Err("no wave finished".into());
        };
        for (i, w) in self.wave_ends.iter().enumerate().skip(1) {
            if w.rss_kib as f64 > first.rss_kib as f64 * 1.05 {
                return Err(format!(
                    "RSS grew: {} KiB after wave {} against {} KiB after the first",
                    w.rss_kib,
                    i + 1,
                    first.rss_kib
                ));
            }
            if w.peers > 0 || w.participants > 0 {
                return Err(format!(
                    "wave {} left {} peers, {} participants",
                    i + 1,
                    w.peers,
                    w.participants
                ));
            }
            if w.open_files > first.open_files + 5 || w.tasks > first.tasks + 5 {
                return Err(format!(
                    "files or tasks grew: {} files, {} tasks after wave {} (first: {}, {})",
                    w.open_files,
                    w.tasks,
                    i + 1,
                    first.open_files,
                    first.tasks
                ));
            }
        }
        if self.errors > 0 {
            return Err(format!("{} calls failed", self.errors));
        }
        if self.backlog > 0 || self.received < self.delivered || self.delivered == 0 {
            return Err(format!(
                "webhooks: {} received, {} delivered, {} left queued",
                self.received, self.delivered, self.backlog
            ));
        }
        Ok(())
    }

    /// The report in Markdown and the samples as CSV.
    pub fn render(&self, soak: &Soak) -> (String, String) {
        let mut md = format!(
            "{} waves of {} sessions × {} participants (1 publisher, {} subscribers, every \
             participant signalling), each held {} s, over {:.0} s.\n\n",
            self.waves,
            soak.rooms,
            soak.size,
            soak.size - 1,
            soak.hold.as_secs(),
            self.samples.last().map_or(0.0, |s| s.at)
        );
        md.push_str("| After wave | RSS (MiB) | Open files | Tasks | Peer connections |\n|---|---|---|---|---|\n");
        for (i, w) in self.wave_ends.iter().enumerate() {
            md.push_str(&format!(
                "| {} | {:.1} | {} | {} | {} |\n",
                i + 1,
                w.rss_kib as f64 / 1024.0,
                w.open_files,
                w.tasks,
                w.peers
            ));
        }
        let peak = self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        md.push_str(&format!(
            "\nPeak RSS {:.1} MiB; errors {}; webhook events delivered {} (received {}, {} left queued). Verdict: {}.\n",
            peak as f64 / 1024.0,
            self.errors,
            self.delivered,
            self.received,
            self.backlog,
            match self.verdict() {
                Ok(()) => "passed".to_owned(),
                Err(e) => format!("FAILED ({e})"),
            }
        ));
        let mut csv = "seconds,rss_kib,open_files,tasks,peers,participants\n".to_owned();
        for s in &self.samples {
            csv.push_str(&format!(
                "{:.1},{},{},{},{},{}\n",
                s.at, s.rss_kib, s.open_files, s.tasks, s.peers, s.participants
            ));
        }
        (md, csv)
    }
}
