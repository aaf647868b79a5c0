//! The cluster benchmark: one publisher and S subscribers in one room, on 1, 2 and 3
//! Camerata nodes sharing a PostgreSQL database. With N nodes the room's owner carries
//! S/N subscribers and the others get theirs over the media relay, so the runs compare the
//! CPU per forwarded packet of one node with that of a cluster, and give the relay's cost.

use super::{
    Args, SECRET, SendLog, Sent, Subscribing, Target, cpu_us, grow, new_room, publish, signaling,
    start_camerata_with,
};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One run's figures.
struct Run {
    nodes: usize,
    subscribers: usize,
    forwarded_pps: f64,
    /// CPU of each node, percent of one core, the owner first.
    cpu_percent: Vec<f64>,
    /// CPU of each node before the room existed (lease renewals, timers), same units.
    idle_percent: Vec<f64>,
    loss_percent: f64,
}

fn create_database(args: &Args, base: &str, name: &str) -> anyhow::Result<String> {
    let status = std::process::Command::new(&args.psql)
        .args([base, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .status()
        .with_context(|| format!("cannot run {}", args.psql))?;
    anyhow::ensure!(status.success(), "CREATE DATABASE {name} failed");
    let (prefix, _) = base.rsplit_once('/').context("a database URL")?;
    Ok(format!("{prefix}/{name}"))
}

/// Runs the cluster benchmark; its Markdown section.
pub async fn run(
    args: &Args,
    base: &str,
    stream: &Arc<super::media::Stream>,
) -> anyhow::Result<String> {
    let window = Duration::from_secs_f64(args.seconds);
    let subscribers = args.cluster_subscribers;
    let mut runs = Vec::new();
    for &n in &args.cluster_nodes {
        let db = create_database(args, base, &format!("bench_{n}_{}", std::process::id()))?;
        let per_node = subscribers.div_ceil(n).max(1);
        let mut nodes = Vec::new();
        for i in 0..n {
            let extra: Vec<String> = [
                "--database-url",
                &db,
                "--cluster",
                "true",
                "--node-id",
                &format!("n{i}"),
                "--cluster-lease",
                "5",
                "--cluster-room-subscribers",
                &per_node.to_string(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            nodes.push(start_camerata_with(args, &extra)?);
        }
        // Every node renews its lease (with its load) before the room is placed.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pids: Vec<u32> = nodes.iter().map(|(p, _)| p.pid()).collect();
        // What a node costs with nothing to forward, so the relay's cost can be told from it.
        let idle_percent = cpu_percent_over(&pids, window).await?;
        let target = Target::Camerata(signaling::Camerata::new(&nodes[0].1, SECRET));
        let log = Arc::new(SendLog::default());
        let sent = Arc::new(Sent::default());
        let room = new_room(&target, 1).await?;
        let publisher =
            publish(&target, &room, args.camerata_client_ip, stream, &log, &sent).await?;
        // One at a time: each placement sees the subscribers granted before it.
        let mut subs: Vec<Subscribing> = Vec::new();
        for k in 1..=subscribers {
            let ip = args.camerata_client_ip;
            grow(&target, &room, &publisher.feed, ip, &log, &mut subs, k).await?;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let counts = |subs: &[Subscribing]| -> (u64, i64) {
            subs.iter().fold((0, 0), |(r, e), s| {
                let g = s
                    .seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (
                    r + g.video.received + g.audio.received,
                    e + g.video.highest.unwrap_or(0) + g.audio.highest.unwrap_or(0),
                )
            })
        };
        let before = counts(&subs);
        let t0 = Instant::now();
        let cpu_percent = cpu_percent_over(&pids, window).await?;
        let elapsed = t0.elapsed().as_secs_f64();
        let after = counts(&subs);
        let received = after.0 - before.0;
        let expected = after.1 - before.1;
        // The owner is the node the publisher's signaling went to: the one with the most CPU
        // is listed first only when it is; list in node order, owner marked by placement
        // (the room goes to node 1 on a tie).
        let run = Run {
            nodes: n,
            subscribers,
            forwarded_pps: received as f64 / elapsed,
            cpu_percent,
            idle_percent,
            loss_percent: if expected > 0 {
                (1.0 - received as f64 / expected as f64).max(0.0) * 100.0
            } else {
                f64::NAN
            },
        };
        eprintln!(
            "cluster of {n}: {:.0} packets/s forwarded, CPU {:?} %",
            run.forwarded_pps, run.cpu_percent
        );
        for s in &subs {
            s.peer.close().await;
        }
        drop(subs);
        publisher.sending.abort();
        publisher.peer.close().await;
        drop(nodes);
        runs.push(run);
    }
    Ok(report(&runs))
}

/// Each process's CPU over `window`, in percent of one core.
async fn cpu_percent_over(pids: &[u32], window: Duration) -> anyhow::Result<Vec<f64>> {
    let cpu0: Vec<u64> = pids.iter().map(|p| cpu_us(*p)).collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1: Vec<u64> = pids.iter().map(|p| cpu_us(*p)).collect::<Result<_, _>>()?;
    Ok(cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| b.saturating_sub(*a) as f64 / (elapsed * 10_000.0))
        .collect())
}

/// Percentages joined as `a / b / c`.
fn joined(values: &[f64]) -> String {
    values
        .iter()
        .map(|c| format!("{c:.1}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn report(runs: &[Run]) -> String {
    let mut md = String::from(
        "| nodes | subscribers | forwarded packets/s | CPU per node (% of a core, owner first) | idle CPU per node (before the room) | CPU, all nodes | µs per forwarded packet, all nodes | loss |\n|---|---|---|---|---|---|---|---|\n",
    );
    let busy = |r: &Run| -> f64 { r.cpu_percent.iter().sum::<f64>() };
    let working = |r: &Run| -> f64 { busy(r) - r.idle_percent.iter().sum::<f64>() };
    for r in runs {
        let total = busy(r);
        let per_packet = total * 10_000.0 / r.forwarded_pps.max(1.0);
        md.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {:.1} % | {:.1} | {:.2} % |\n",
            r.nodes,
            r.subscribers,
            r.forwarded_pps,
            joined(&r.cpu_percent),
            joined(&r.idle_percent),
            total,
            per_packet,
            r.loss_percent
        ));
    }
    // The relay's cost: the extra CPU of N nodes over one, per packet relayed (each relayed
    // packet is sealed once by the owner and opened once by an edge), with and without what
    // the nodes spend idle.
    if let Some(one) = runs.iter().find(|r| r.nodes == 1) {
        for r in runs.iter().filter(|r| r.nodes > 1) {
            let publisher_pps = r.forwarded_pps / r.subscribers.max(1) as f64;
            let relayed_pps = publisher_pps * (r.nodes - 1) as f64;
            let extra_us = (busy(r) - busy(one)) * 10_000.0;
            let extra_work_us = (working(r) - working(one)) * 10_000.0;
            md.push_str(&format!(
                "\nWith {} nodes: {:.0} relayed packets/s; the cluster spends {:.0} µs/s more CPU than one node ({:.1} µs per relayed packet, owner and edge together, idle node overheads included); without each node's idle CPU, {:.0} µs/s more ({:.1} µs per relayed packet).\n",
                r.nodes,
                relayed_pps,
                extra_us,
                extra_us / relayed_pps.max(1.0),
                extra_work_us,
                extra_work_us / relayed_pps.max(1.0)
            ));
        }
    }
    md
}
