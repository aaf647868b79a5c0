//! The server's Prometheus metrics, at `GET /metrics` in the text format (the `prometheus`
//! crate's registry and encoder): rooms, participants, publishers and subscribers by
//! protocol; the media loop's packet, byte and feedback totals, its peer connections by state
//! and transport, keyframe-request latency and what receivers report (loss, round-trip
//! time); REST requests by route, method and status with their latency; the journal's queue
//! and commit latency; webhook delivery, backlog and failures; recordings by state;
//! authentication failures; process CPU, memory and open files.
//!
//! Invariant: nothing here runs per packet. The media loop counts in plain integers of its
//! own and hands them over on a scrape; what is observed per event uses the crate's atomic
//! types. A scrape reads the live state (one snapshot per room, one stats call to the media
//! loop), so it costs the server nothing between scrapes.

use crate::calls::Calls;
use crate::delivery::DeliveryMetrics;
use crate::guard::AuthGuard;
use crate::recording::{Recorder, Status};
use crate::store::Consumer;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::core::Collector;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, HistogramOpts, HistogramVec, Registry, TextEncoder};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The metrics of one server (cheap to clone).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    rest: HistogramVec,
    calls: Calls,
    recorder: Option<Recorder>,
    guard: AuthGuard,
    delivery: Option<DeliveryMetrics>,
    /// Which outbox consumers run (their backlog is reported).
    consumers: Vec<Consumer>,
}

/// One sample of a family: its labels and value.
type Sample = (Vec<(&'static str, String)>, f64);

fn family(name: &str, help: &str, kind: MetricType, samples: Vec<Sample>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    for (labels, value) in samples {
        let mut m = Metric::default();
        m.set_label(
            labels
                .into_iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name(k.to_owned());
                    l.set_value(v);
                    l
                })
                .collect(),
        );
        match kind {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        f.mut_metric().push(m);
    }
    f
}

fn gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    family(name, help, MetricType::GAUGE, vec![(Vec::new(), value)])
}

fn counter(name: &str, help: &str, value: u64) -> MetricFamily {
    family(
        name,
        help,
        MetricType::COUNTER,
        vec![(Vec::new(), value as f64)],
    )
}

impl Metrics {
    /// The metrics over the call layer, the recorder, the brute-force guard and the webhook
    /// sender (when there is one), with the outbox `consumers` that run.
    pub fn new(
        calls: Calls,
        recorder: Option<Recorder>,
        guard: AuthGuard,
        delivery: Option<DeliveryMetrics>,
        consumers: Vec<Consumer>,
    ) -> Self {
        let registry = Registry::new();
        let rest = HistogramVec::new(
            HistogramOpts::new(
                "camerata_http_request_duration_seconds",
                "REST and signaling HTTP requests by route, method and status, with their latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            &["route", "method", "status"],
        )
        .expect("a valid histogram");
        registry
            .register(Box::new(rest.clone()))
            .expect("registered once");
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");
        Self {
            inner: Arc::new(Inner {
                registry,
                rest,
                calls,
                recorder,
                guard,
                delivery,
                consumers,
            }),
        }
    }

    /// Every family, read now.
    pub async fn gather(&self) -> Vec<MetricFamily> {
        let i = &self.inner;
        let mut out = i.registry.gather();
        out.extend(self.rooms().await);
        out.extend(self.media().await);
        let journal = i.calls.rooms().store().journal_metrics();
        out.extend(journal.queued.collect());
        out.extend(journal.commit_seconds.collect());
        if let Some(d) = &i.delivery {
            for c in [&d.delivered, &d.failures, &d.dropped] {
                out.extend(c.collect());
            }
            out.extend(d.latency.collect());
        }
        let mut backlog = Vec::new();
        for c in &i.consumers {
            let n = i.calls.rooms().store().pending_count(*c).await.unwrap_or(0);
            let name = match c {
                Consumer::Hook => "webhook",
                Consumer::Cdr => "cdr",
            };
            backlog.push((vec![("consumer", name.to_owned())], n as f64));
        }
        out.push(family(
            "camerata_outbox_backlog",
            "Events waiting in the outbox, by consumer",
            MetricType::GAUGE,
            backlog,
        ));
        out.extend(self.recordings().await);
        let now = std::time::Instant::now();
        out.push(counter(
            "camerata_auth_failures_total",
            "REST authentication failures",
            i.guard.failures(),
        ));
        out.push(counter(
            "camerata_auth_refused_total",
            "REST requests refused because their address was blocked after too many failures",
            i.guard.refused(),
        ));
        out.push(gauge(
            "camerata_tokio_tasks",
            "Tasks alive in the server's runtime",
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as f64,
        ));
        out.push(gauge(
            "camerata_auth_blocked_addresses",
            "Source addresses blocked now after too many authentication failures",
            i.guard.blocked_now(now) as f64,
        ));
        // The encoder refuses a family without samples (a gauge with no label yet).
        out.retain(|f| !f.get_metric().is_empty());
        out.sort_by(|a, b| a.name().cmp(b.name()));
        out
    }

    /// The families in Prometheus's text format.
    pub async fn render(&self) -> String {
        let families = self.gather().await;
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::warn!(error = %e, "metrics: a family could not be encoded");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    async fn rooms(&self) -> Vec<MetricFamily> {
        let mut rooms = 0usize;
        let mut participants: BTreeMap<String, usize> = BTreeMap::new();
        let mut publishers: BTreeMap<String, usize> = BTreeMap::new();
        let mut subscribers: BTreeMap<String, usize> = BTreeMap::new();
        for handle in self.inner.calls.rooms().all() {
            let Ok(room) = handle.snapshot(false).await else {
                continue;
            };
            rooms += 1;
            for p in room.active_participants() {
                // The door a participant came through: the one that keeps data with it, else
                // the one its connection names.
                let protocol = p
                    .door_data
                    .keys()
                    .next()
                    .cloned()
                    .or_else(|| p.active().map(|a| a.door.clone()))
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "openvidu".to_owned());
                *participants.entry(protocol.clone()).or_default() += 1;
                *publishers.entry(protocol.clone()).or_default() += p.streams().len();
                *subscribers.entry(protocol).or_default() +=
                    p.active().map_or(0, |a| a.subscriptions.len());
            }
        }
        let by = |m: BTreeMap<String, usize>| -> Vec<Sample> {
            m.into_iter()
                .map(|(k, v)| (vec![("protocol", k)], v as f64))
                .collect()
        };
        vec![
            gauge("camerata_rooms", "Open rooms (sessions)", rooms as f64),
            family(
                "camerata_participants",
                "Participants in rooms, by the protocol they came through",
                MetricType::GAUGE,
                by(participants),
            ),
            family(
                "camerata_publishers",
                "Streams published, by the publisher's protocol",
                MetricType::GAUGE,
                by(publishers),
            ),
            family(
                "camerata_subscribers",
                "Subscriptions, by the subscriber's protocol",
                MetricType::GAUGE,
                by(subscribers),
            ),
        ]
    }

    async fn media(&self) -> Vec<MetricFamily> {
        let media = self.inner.calls.media();
        let mut out = Vec::new();
        let h = media.histograms();
        for hist in [&h.keyframe_latency, &h.receiver_rtt, &h.receiver_loss] {
            out.extend(hist.collect());
        }
        let Ok(s) = media.stats().await else {
            return out;
        };
        let c = s.counts;
        out.extend([
            counter(
                "camerata_rtp_packets_received_total",
                "RTP packets received from publishers",
                c.packets_received,
            ),
            counter(
                "camerata_rtp_bytes_received_total",
                "RTP bytes received from publishers",
                c.bytes_received,
            ),
            counter(
                "camerata_rtp_packets_forwarded_total",
                "RTP packets forwarded to subscribers",
                c.packets_forwarded,
            ),
            counter(
                "camerata_rtp_bytes_forwarded_total",
                "RTP bytes forwarded to subscribers",
                c.bytes_forwarded,
            ),
            counter(
                "camerata_nacks_received_total",
                "Packets subscribers asked again for (NACK)",
                c.nacks_received,
            ),
            counter(
                "camerata_retransmissions_total",
                "Packets sent again from the server's history to answer NACKs",
                s.retransmitted,
            ),
            family(
                "camerata_keyframe_requests_total",
                "Keyframe requests: received from subscribers (PLI, FIR), sent to publishers (PLI)",
                MetricType::COUNTER,
                vec![
                    (
                        vec![("direction", "received".to_owned())],
                        c.keyframe_requests_received as f64,
                    ),
                    (
                        vec![("direction", "sent".to_owned())],
                        c.keyframe_requests_sent as f64,
                    ),
                ],
            ),
            counter(
                "camerata_rtcp_sender_reports_total",
                "RTCP sender reports sent to subscribers",
                s.sender_reports,
            ),
            counter(
                "camerata_unclaimed_datagrams_total",
                "Datagrams on the media port no peer connection claimed",
                s.unclaimed_datagrams,
            ),
            gauge(
                "camerata_ice_tcp_connections",
                "Open ICE-TCP connections",
                s.tcp_connections as f64,
            ),
            family(
                "camerata_peer_connections",
                "Peer connections by state and transport",
                MetricType::GAUGE,
                s.peers_by_state
                    .iter()
                    .map(|(state, transport, n)| {
                        (
                            vec![
                                ("state", (*state).to_owned()),
                                ("transport", (*transport).to_owned()),
                            ],
                            *n as f64,
                        )
                    })
                    .collect(),
            ),
        ]);
        out
    }

    /// Recordings by state (all zero with the recording module off).
    async fn recordings(&self) -> Vec<MetricFamily> {
        let all = match self.inner.recorder.clone() {
            Some(recorder) => tokio::task::spawn_blocking(move || recorder.list())
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut by: BTreeMap<&'static str, usize> = [
            ("starting", 0),
            ("started", 0),
            ("stopped", 0),
            ("ready", 0),
            ("failed", 0),
        ]
        .into_iter()
        .collect();
        for r in &all {
            let state = match r.status {
                Status::Starting => "starting",
                Status::Started => "started",
                Status::Stopped => "stopped",
                Status::Ready => "ready",
                Status::Failed => "failed",
            };
            *by.entry(state).or_default() += 1;
        }
        vec![family(
            "camerata_recordings",
            "Recordings by state",
            MetricType::GAUGE,
            by.into_iter()
                .map(|(k, v)| (vec![("state", k.to_owned())], v as f64))
                .collect(),
        )]
    }
}

/// Middleware: times every request and counts it by its route (the matched pattern, not the
/// path, so ids do not multiply the series), method and status.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    metrics
        .inner
        .rest
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A check of a request's credentials.
pub type Authorize = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// `GET /metrics`, behind `authorized` (a check of the request's credentials), or open
/// when `authorized` is `None` (the separate metrics address).
pub fn router(metrics: Metrics, authorized: Option<Authorize>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |req: Request| {
            let metrics = metrics.clone();
            let authorized = authorized.clone();
            async move {
                if let Some(check) = authorized
                    && !check(&req)
                {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Basic realm=\"camerata\"")],
                        "metrics need the REST credentials (HTTP Basic, user OPENVIDUAPP)",
                    )
                        .into_response();
                }
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render().await,
                )
                    .into_response()
            }
        }),
    )
}
