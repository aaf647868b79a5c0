//! # camerata-server
//!
//! Camerata is a self-hosted video conferencing server that speaks the OpenVidu 2.x API, so
//! that apps written for OpenVidu run against it unchanged. This crate is the server: a
//! library (`run`) and the `camerata` binary.
//!
//! ## Layers
//!
//! Arrows point inward: a door in `protocols` → `calls` → `rooms` → `room`.
//!
//! * [`room`]: the protocol-neutral core. A plain state machine (`Room`): commands in, typed
//!   events out, time given by the caller. It imports no tokio, axum, sqlx, webrtc or rtc (a
//!   test below enforces it).
//! * [`calls`]: the call layer every door goes through: admission, publish, subscribe (the
//!   client or the server offering), moderation, signals, resume; the codec and bitrate
//!   policies; the recording policy (`calls::recording`). Doors decide nothing it decides.
//! * [`rooms`]: one owner task per live room, reached through a cheap `RoomHandle`; the
//!   registry; the operations that keep the live rooms and the [`store`] in step.
//! * [`store`]: durable state with sqlx (SQLite by default, PostgreSQL by URL), written by one
//!   journal in order, with the outbox of events. The only module that names sqlx.
//! * [`protocols`]: the doors. Each owns its wire types, its rendering and its error tables,
//!   and hands the server its routes and event renderers (`protocols::Door`); `openvidu` is
//!   the one shipped. Nothing below names a door (a test below enforces it).
//! * [`delivery`]: the webhook sender and the CDR writer over the outbox; doors render only
//!   the payloads.
//! * [`media`]: the SFU. One task owns every peer connection (webrtc-rs's sans-IO `rtc`
//!   core), the one UDP port and the ICE-TCP connections; the only module naming webrtc-rs.
//! * [`recording`]: recording building blocks (a stream from RTP to WebM).
//! * [`grant`]: signed join grants (JWT) carried inside tokens.
//! * [`config`]: one typed configuration from flags and `OPENVIDU_*` environment.
//! * [`cluster`]: cluster mode on PostgreSQL: leases, placement, the routing that passes a
//!   request (or a signaling socket) to the node that owns its room, the takeover of a dead
//!   node, a large room's subscribers served by other nodes over a media relay.
//!
//! ## Invariants most likely to be broken
//!
//! * Room state is only touched by its task; the registry lock is never held across
//!   `.await`.
//! * A change is stored before it is acknowledged, and each store call is one transaction:
//!   a client that got a token can use it after a restart.
//! * Nothing a client sends may panic the server: bad input becomes a `RestError`.
//!
//! Start reading at [`run`], then `calls.rs`, then `protocols/openvidu/rpc.rs`, then
//! `rooms.rs`.

pub mod calls;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod grant;
pub mod guard;
pub mod ice;
pub mod media;
pub mod metrics;
pub mod ops;
pub mod protocols;
pub mod recording;
pub mod room;
pub mod rooms;
pub mod spelling;
pub mod store;
mod tls;

use anyhow::Context;
pub use config::{Config, Settled};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The name of the side listener that serves `/metrics` alone (`CAMERATA_METRICS_BIND`).
pub const METRICS_SIDE: &str = "metrics";

/// Everything `run` needs besides the configuration: the bound listeners.
pub struct Listeners {
    /// The HTTP(S) listener of every door.
    pub http: std::net::TcpListener,
    /// Plain-HTTP listeners beside it, by name, each serving one door's side routes
    /// ([`protocols::janus::HTTP_SIDE`], [`protocols::janus::WS_SIDE`]).
    pub side: Vec<(&'static str, std::net::TcpListener)>,
}

/// Binds a side port: an explicit one must be free; the default is taken only when free.
fn bind_side(
    config: &Config,
    name: &'static str,
    wanted: Option<config::SidePort>,
    default: u16,
) -> anyhow::Result<Option<(&'static str, std::net::TcpListener)>> {
    let (port, explicit) = match wanted {
        Some(config::SidePort::Off) => return Ok(None),
        Some(config::SidePort::Port(p)) => (p, true),
        None => (default, false),
    };
    let addr = SocketAddr::new(config.bind, port);
    match std::net::TcpListener::bind(addr) {
        Ok(l) => {
            l.set_nonblocking(true)?;
            Ok(Some((name, l)))
        }
        Err(e) if !explicit => {
            tracing::warn!(%addr, error = %e, "{name}: default port busy, not served there");
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} ({name})")),
    }
}

impl Listeners {
    /// Binds the configured address and port, and the side ports.
    pub fn bind(config: &Config) -> anyhow::Result<Self> {
        let addr = SocketAddr::new(config.bind, config.port);
        let http = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr}"))?;
        http.set_nonblocking(true)?;
        let side = [
            bind_side(
                config,
                protocols::janus::HTTP_SIDE,
                config.janus_http_port,
                protocols::janus::HTTP_PORT,
            )?,
            bind_side(
                config,
                protocols::janus::WS_SIDE,
                config.janus_ws_port,
                protocols::janus::WS_PORT,
            )?,
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
        let mut side = side;
        if let Some(addr) = config.metrics_bind {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (metrics)"))?;
            l.set_nonblocking(true)?;
            side.push((METRICS_SIDE, l));
        }
        Ok(Self { http, side })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The address of the side listener `name`, when it is served.
    pub fn side_addr(&self, name: &str) -> Option<SocketAddr> {
        self.side
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, l)| l.local_addr().ok())
    }
}

/// Opens the store, loads the rooms, serves until `shutdown` resolves, and returns when every
/// task has ended.
pub async fn run(
    settled: Settled,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (ready, _) = tokio::sync::oneshot::channel();
    run_with_ready(settled, listeners, shutdown, ready).await
}

/// `run`, telling `ready` once the server serves (or why it could not start).
pub async fn run_with_ready(
    settled: Settled,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> anyhow::Result<()> {
    run_with_doors(settled, listeners, shutdown, ready, Vec::new()).await
}

/// `run_with_ready` with more front doors beside OpenVidu's, on the same rooms and port.
pub async fn run_with_doors(
    settled: Settled,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
    more: Vec<Box<dyn protocols::Door>>,
) -> anyhow::Result<()> {
    // The doors the server speaks through; each hands it its routes and event renderers.
    let mut doors: Vec<Box<dyn protocols::Door>> = vec![
        Box::new(protocols::openvidu::OpenVidu::new(settled.clone())),
        Box::new(protocols::opentok::OpenTok::new(&settled)),
        Box::new(protocols::janus::Janus::new(
            std::time::Duration::from_secs(settled.config.janus_session_timeout),
            protocols::janus::Auth {
                api_secret: settled.config.janus_api_secret.clone(),
                token_secret: settled.config.janus_token_secret.clone(),
            },
            settled.config.janus_slowlink_threshold,
        )),
    ];
    doors.extend(more);
    let doors = Arc::new(doors);
    let (rooms, tls, media, recording) = match prepare(&settled, &doors).await {
        Ok(prepared) => {
            let _ = ready.send(Ok(()));
            prepared
        }
        Err(e) => {
            let _ = ready.send(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let calls = calls::Calls::new(
        rooms.clone(),
        media,
        calls::Policy {
            default_max_recv_kbps: settled.config.video_max_recv_bandwidth,
            reconnect_grace: std::time::Duration::from_secs(settled.config.reconnect_grace),
            default_ice_servers: settled.default_ice_servers.clone(),
        },
    );
    let auth_guard = guard::AuthGuard::new(
        settled.config.auth_failure_limit,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(settled.config.auth_block_seconds),
    );
    let delivery_metrics = delivery::DeliveryMetrics::default();
    let mut outbox_consumers = Vec::new();
    if settled.webhook.is_some() {
        outbox_consumers.push(store::Consumer::Hook);
    }
    if settled.config.cdr {
        outbox_consumers.push(store::Consumer::Cdr);
    }
    let metrics = metrics::Metrics::new(
        calls.clone(),
        recording.as_ref().map(|(r, _)| r.clone()),
        auth_guard.clone(),
        settled.webhook.is_some().then(|| delivery_metrics.clone()),
        outbox_consumers.clone(),
    );
    let draining = calls.clone();
    let served = protocols::Served {
        calls,
        recorder: recording.as_ref().map(|(r, _)| r.clone()),
        stopping: stop_rx.clone(),
        guard: auth_guard.clone(),
    };
    let mut app = ops::router(rooms.clone());
    let mut side_routes = Vec::new();
    for door in doors.iter() {
        let routes = door.routes(served.clone());
        app = app.merge(routes.main);
        side_routes.extend(routes.side);
    }
    // Cluster mode: every door's requests go through the cluster's routing, which serves
    // them here or passes them to the node that has their room.
    if let Some(settings) = settled.cluster.clone() {
        let cluster = cluster::Cluster::join(
            settings,
            &settled.public_url(),
            rooms.store().clone(),
            served.calls.media().clone(),
        )
        .await?;
        served.calls.join_cluster(Arc::new(cluster.clone()));
        for door in doors.iter() {
            door.join_cluster(&cluster);
        }
        app = app.merge(cluster.routes());
        tokio::spawn(cluster.clone().keep(
            served.calls.clone(),
            served.recorder.clone(),
            stop_rx.clone(),
            || std::process::exit(75),
        ));
        let routing = cluster::Routing {
            cluster,
            calls: served.calls.clone(),
            locate: {
                let doors = doors.clone();
                Arc::new(
                    move |method: &axum::http::Method, path: &str, body: Option<&[u8]>| {
                        doors
                            .iter()
                            .map(|d| d.locate(method, path, body))
                            .find(|l| *l != cluster::Locate::Here)
                            .unwrap_or(cluster::Locate::Here)
                    },
                )
            },
        };
        app = app.layer(axum::middleware::from_fn_with_state(
            routing,
            cluster::route,
        ));
    }
    // `/metrics`: behind the REST credentials on the main port, open on its own address.
    let credentials = format!("OPENVIDUAPP:{}", settled.secret).into_bytes();
    let metrics_guard = auth_guard.clone();
    let authorized: metrics::Authorize =
        Arc::new(move |req| metrics_guard.check_basic(req, &credentials));
    app = app.merge(metrics::router(metrics.clone(), Some(authorized)));
    side_routes.push((METRICS_SIDE, metrics::router(metrics.clone(), None)));
    let app = app.layer(axum::middleware::from_fn_with_state(
        metrics.clone(),
        metrics::track,
    ));
    let recorder = recording.as_ref().map(|(r, _)| r.clone());
    let follower = recording.map(|(recorder, changes)| {
        tokio::spawn(calls::recording::follow(
            changes,
            rooms.clone(),
            recorder,
            std::time::Duration::from_secs(settled.config.recording_autostop_timeout),
        ))
    });

    // A graceful stop: admit nothing new, put everyone out (each door tells its clients),
    // finish the recordings, deliver the queued events; then close, within the grace.
    let grace = std::time::Duration::from_secs(settled.config.shutdown_grace);
    let drain_recorder = recorder.clone();
    let outbox = rooms.store().clone();
    let wanted = outbox_consumers;
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(grace_s = grace.as_secs(), "stopping: draining");
        let drained = tokio::time::timeout(grace, async {
            draining.drain().await;
            if let Some(recorder) = &drain_recorder {
                recorder
                    .stop_all(recording::StopReason::ServerStopped)
                    .await;
            }
            for consumer in wanted {
                while outbox
                    .pending_events(consumer, 0, 1)
                    .await
                    .is_ok_and(|p| !p.is_empty())
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("stopping: drained"),
            Err(_) => tracing::warn!(
                grace_s = grace.as_secs(),
                "stopping: the grace ran out; what is left stays queued for the next start"
            ),
        }
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut side_servers = Vec::new();
    for (name, listener) in listeners.side {
        let Some((_, router)) = side_routes.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let listener = tokio::net::TcpListener::from_std(listener)?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("{name}: http://{addr}");
        }
        let service = router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        let stop = stopped(stop_rx.clone());
        side_servers.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, service)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "{name} stopped");
            }
        }));
    }
    let sweeper = tokio::spawn(rooms.clone().sweep_forever(stopped(stop_rx.clone())));
    let mut consumers = Vec::new();
    // The outbox is delivered once, with the payloads of the door that renders events (one
    // door has events on today; a second would bring its own webhook settings).
    let payloads = doors.iter().find_map(|d| d.events()).map(|e| e.payloads);
    if let (Some(hook), Some(payloads)) = (settled.webhook.clone(), payloads.clone()) {
        consumers.push(tokio::spawn(delivery::send_webhooks(
            rooms.store().clone(),
            hook,
            payloads,
            stop_rx.clone(),
            delivery_metrics,
        )));
    }
    if let (true, Some(payloads)) = (settled.config.cdr, payloads) {
        consumers.push(tokio::spawn(delivery::write_cdr(
            rooms.store().clone(),
            std::path::PathBuf::from(&settled.config.cdr_path),
            payloads,
            stop_rx.clone(),
        )));
    }

    // Paths are tidied before routing (`//v2/…` from an SDK base URL that ends in a slash).
    let served = match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listeners.http)?;
            let app =
                axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                    SocketAddr,
                >(protocols::tidied::<axum::body::Body>(app));
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .await
                .context("HTTP server failed")
        }
        Some(rustls) => {
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            let wait = stopped(stop_rx.clone());
            tokio::spawn(async move {
                wait.await;
                h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
            });
            axum_server::from_tcp_rustls(listeners.http, rustls)?
                .handle(handle)
                .serve(
                    axum::ServiceExt::<
                        axum::http::Request<hyper::body::Incoming>,
                    >::into_make_service_with_connect_info::<SocketAddr>(protocols::tidied::<hyper::body::Incoming>(app)),
                )
                .await
                .context("HTTPS server failed")
        }
    };
    let _ = sweeper.await;
    for side in side_servers {
        let _ = side.await;
    }
    // Recordings still in progress end with the server, their files finished; past the
    // grace, what is unfinished is settled by the next start's recovery.
    if let Some(recorder) = &recorder {
        let stopped = tokio::time::timeout(
            grace,
            recorder.stop_all(recording::StopReason::ServerStopped),
        )
        .await;
        if stopped.is_err() {
            tracing::warn!("recordings not finished within the grace; the next start settles them");
        }
    }
    for consumer in consumers {
        let _ = consumer.await;
    }
    rooms.shutdown().await;
    if let Some(follower) = follower {
        follower.abort();
    }
    served
}

/// The recorder and the room changes it follows.
type Recording = (
    recording::Recorder,
    tokio::sync::mpsc::UnboundedReceiver<calls::recording::Change>,
);

/// Opens the store and loads the rooms; prepares TLS; binds the media sockets; with
/// recording on, settles what the last run left unfinished.
async fn prepare(
    settled: &Settled,
    doors: &[Box<dyn protocols::Door>],
) -> anyhow::Result<(
    rooms::Rooms,
    Option<axum_server::tls_rustls::RustlsConfig>,
    media::Media,
    Option<Recording>,
)> {
    if let Some(dir) = settled
        .database_url
        .strip_prefix("sqlite://")
        .and_then(|p| std::path::Path::new(p.split('?').next().unwrap_or(p)).parent())
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data folder {}", dir.display()))?;
    }
    let node = settled.cluster.as_ref().map(|c| c.node_id.as_str());
    let store = store::Store::open_as(&settled.database_url, node)
        .await
        .with_context(|| format!("cannot open database {}", redact(&settled.database_url)))?;
    use calls::recording::{Announcer, RoomFeed};
    use rooms::Both;
    let events: Vec<protocols::DoorEvents> = doors.iter().filter_map(|d| d.events()).collect();
    let mut observer: Option<Arc<dyn rooms::Observer>> = None;
    for e in &events {
        observer = Some(match observer {
            Some(o) => Arc::new(Both(o, e.observer.clone())),
            None => e.observer.clone(),
        });
    }
    let mut feed = None;
    let mut to_follow = None;
    if settled.config.recording {
        let (f, changes) = RoomFeed::new();
        to_follow = Some(f.sender());
        let f: Arc<dyn rooms::Observer> = Arc::new(f);
        observer = Some(match observer {
            Some(o) => Arc::new(Both(o, f)),
            None => f,
        });
        feed = Some(changes);
    }
    let announcer = to_follow.map(|changes| {
        Arc::new(Announcer::new(
            events.first().map(|e| e.recording.clone()),
            store.clone(),
            doors
                .iter()
                .flat_map(|d| d.recording_notice_roles())
                .collect(),
            changes,
        ))
    });
    let rooms = rooms::Rooms::load(store, settled.config.lifetimes(), observer).await?;
    let tls = tls::acceptor(settled).await?;
    let (min, max) = settled.media_ports;
    let media = media::Media::start(media::MediaConfig {
        bind_ip: settled.config.bind,
        announced_ip: settled.announced_ip,
        ports: settled.media_ports,
        ice_tcp: settled.config.ice_tcp,
    })
    .with_context(|| format!("cannot bind the media port (UDP {min}-{max})"))?;
    tracing::info!(
        "media: UDP {}{}",
        media.udp_addr(),
        if media.tcp_addr().is_some() {
            " (and ICE-TCP on the same port)"
        } else {
            ""
        }
    );
    let recording = match (feed, announcer) {
        (Some(changes), Some(announcer)) => {
            announcer.set_rooms(rooms.clone());
            let settings = recording::RecorderSettings {
                path: std::path::PathBuf::from(&settled.config.recording_path),
                url: format!("{}openvidu/recordings/", settled.public_url()),
                node: settled.cluster.as_ref().map(|c| c.node_id.clone()),
            };
            let recorder = recording::Recorder::new(settings, media.clone(), Some(announcer))
                .with_context(|| {
                    format!(
                        "cannot use the recording folder {}",
                        settled.config.recording_path
                    )
                })?;
            let r = recorder.clone();
            let recovered = tokio::task::spawn_blocking(move || r.recover()).await?;
            if !recovered.is_empty() {
                tracing::info!("settled {} recordings the last run left", recovered.len());
            }
            Some((recorder, changes))
        }
        _ => None,
    };
    Ok((rooms, tls, media, recording))
}

/// A database URL with any password blanked, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable folder") {
            let path = entry.expect("readable").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn core_imports_no_io_crates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/room");
        let mut files = vec![dir.with_extension("rs")];
        sources(&dir, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            for banned in [
                "tokio::",
                "axum::",
                "sqlx::",
                "webrtc::",
                "rtc::",
                "SystemTime",
                "Instant::now",
            ] {
                assert!(
                    !text.contains(banned),
                    "{} mentions {banned}: the core must stay free of I/O",
                    file.display()
                );
            }
        }
    }

    #[test]
    fn nothing_below_the_doors_names_them() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        for file in files {
            let rel = file.strip_prefix(&src).expect("under src");
            // lib.rs builds the server from the doors; below it, nothing may name them.
            if rel.starts_with("protocols")
                || rel == std::path::Path::new("protocols.rs")
                || rel == std::path::Path::new("lib.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable");
            assert!(
                !text.contains("protocols::"),
                "{} names a door: only lib.rs plugs doors in",
                rel.display()
            );
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:pw@127.0.0.1/db"),
            "postgres://u:***@127.0.0.1/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
