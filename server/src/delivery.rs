//! Delivery of the outbox, the same for every door: the webhook sender and the CDR writer.
//!
//! Room tasks store events in the outbox in the same transaction as the change they tell of
//! (see `rooms`); these consumers take them out. A door renders only the payloads
//! ([`Payloads`]): the webhook request body, the CDR line and the CDR file's name.
//!
//! Webhooks: events of one session are sent in outbox order, one at a time; sessions do not
//! wait for each other (at most `MAX_IN_FLIGHT` requests at once). A failed attempt (no
//! answer within 10 s, or a status that is not 2xx) is retried with a growing pause (0.5 s,
//! doubling, at most 30 s) until `CAMERATA_WEBHOOK_RETRY_FOR` has passed, then dropped with a
//! log line. An event leaves the outbox once delivered, so it survives restarts; one that
//! was delivered just before a crash may be sent again, with the same `X-Camerata-Event-Id`
//! header, so receivers can drop the duplicate. What is held in memory is bounded
//! ([`MAX_LOADED`] events); the rest waits in the outbox.
//!
//! CDR: a line is written (and flushed to disk) before its event leaves the outbox.

use crate::config::Webhook;
use crate::store::{Consumer, Event, Store, StoredEvent};
use bytes::Bytes;
use http_body_util::Full;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a door spells its stored events on the way out.
pub trait Payloads: Send + Sync {
    /// The body of the webhook request for `e`.
    fn webhook_body(&self, e: &Event) -> String;
    /// The CDR line for `e` (without the newline).
    fn cdr_line(&self, e: &Event) -> String;
    /// The CDR file for events of the day of `now_ms`, for a server started at `started_ms`.
    fn cdr_file_name(&self, now_ms: i64, started_ms: i64) -> String;
}

/// The header that carries an event's unique id.
pub const EVENT_ID_HEADER: &str = "X-Camerata-Event-Id";

/// Requests in flight at once (each for a different session).
pub const MAX_IN_FLIGHT: usize = 16;

/// Events held in memory by the sender; more wait in the outbox.
pub const MAX_LOADED: usize = 10_000;

/// How long one delivery attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An outgoing HTTP(S) client (webhooks, node-to-node calls).
pub(crate) type Http = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// An outgoing client for http:// and https:// URLs, trusting the system's roots.
pub(crate) fn http_client() -> std::io::Result<Http> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// One session's events waiting to be sent.
#[derive(Default)]
struct Queue {
    events: VecDeque<StoredEvent>,
    attempts: u32,
    failing_since: Option<Instant>,
}

/// The pause after `attempts` failed attempts.
fn backoff(attempts: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(16));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// Sends one event; true when the receiver answered 2xx in time.
async fn post(http: &Http, hook: &Webhook, payloads: &dyn Payloads, event: &Event) -> bool {
    let mut request = hyper::Request::post(hook.endpoint.as_str());
    let custom_type = hook
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v == "application/json");
    if !custom_type {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in &hook.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request = request.header(EVENT_ID_HEADER, event.id.as_str());
    let Ok(request) = request.body(Full::new(Bytes::from(payloads.webhook_body(event)))) else {
        return false;
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, http.request(request)).await {
        Ok(Ok(response)) => {
            let ok = response.status().is_success();
            // Read the answer so the connection can be reused.
            let _ = tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                http_body_util::BodyExt::collect(response.into_body()),
            )
            .await;
            ok
        }
        _ => false,
    }
}

/// The webhook sender's metrics (Prometheus types: atomic, cheap to clone).
#[derive(Clone)]
pub struct DeliveryMetrics {
    /// Events delivered.
    pub delivered: prometheus::IntCounter,
    /// Attempts the receiver refused or that failed.
    pub failures: prometheus::IntCounter,
    /// Events dropped after `CAMERATA_WEBHOOK_RETRY_FOR`.
    pub dropped: prometheus::IntCounter,
    /// Seconds from an event to its delivery.
    pub latency: prometheus::Histogram,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            prometheus::IntCounter::new(name, help).expect("a valid counter")
        };
        Self {
            delivered: counter(
                "camerata_webhook_delivered_total",
                "Webhook events delivered",
            ),
            failures: counter(
                "camerata_webhook_failures_total",
                "Webhook attempts that failed or were refused",
            ),
            dropped: counter(
                "camerata_webhook_dropped_total",
                "Webhook events dropped after retrying for CAMERATA_WEBHOOK_RETRY_FOR",
            ),
            latency: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "camerata_webhook_delivery_seconds",
                    "Seconds from an event to its webhook delivery",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
                ]),
            )
            .expect("a valid histogram"),
        }
    }
}

/// Delivers webhook events from the outbox until `stopping` turns true, counting into
/// `metrics`.
pub async fn send_webhooks(
    store: Store,
    hook: Webhook,
    payloads: Arc<dyn Payloads>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    metrics: DeliveryMetrics,
) {
    let http = match http_client() {
        Ok(http) => Arc::new(http),
        Err(e) => {
            tracing::error!(error = %e, "webhook: no TLS root certificates; events stay queued");
            return;
        }
    };
    let hook = Arc::new(hook);
    let mut committed = store.committed_events();
    let mut queues: HashMap<String, Queue> = HashMap::new();
    // Sessions whose first event may be sent now, oldest event first, so no session waits
    // behind newer ones; and sessions pausing after a failure, by when they may go again.
    let mut ready: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut pausing: BTreeSet<(Instant, String)> = BTreeSet::new();
    let mut loaded = 0usize;
    let mut loaded_up_to = 0i64;
    let mut more = true;
    let mut acks: Vec<i64> = Vec::new();
    let mut attempts = tokio::task::JoinSet::new();
    let mut in_flight = 0usize;
    loop {
        // Load what the outbox holds beyond what is in memory.
        while more && loaded < MAX_LOADED {
            match store
                .pending_events(Consumer::Hook, loaded_up_to, 1000)
                .await
            {
                Ok(batch) => {
                    more = batch.len() == 1000;
                    for e in batch {
                        loaded_up_to = e.seq;
                        loaded += 1;
                        let q = queues.entry(e.event.session.clone()).or_default();
                        if q.events.is_empty() && q.failing_since.is_none() {
                            // Idle until now (in flight or pausing sessions have events).
                            ready.insert((e.seq, e.event.session.clone()));
                        }
                        q.events.push_back(e);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: cannot read the outbox");
                    break;
                }
            }
        }
        // Sessions whose pause is over go back in line, by their oldest event.
        let now = Instant::now();
        while let Some((at, session)) = pausing.first().cloned() {
            if at > now {
                break;
            }
            pausing.pop_first();
            if let Some(head) = queues.get(&session).and_then(|q| q.events.front()) {
                ready.insert((head.seq, session));
            }
        }
        // Start attempts, oldest first.
        while in_flight < MAX_IN_FLIGHT {
            let Some((_, session)) = ready.pop_first() else {
                break;
            };
            let Some(head) = queues.get(&session).and_then(|q| q.events.front()) else {
                continue;
            };
            in_flight += 1;
            let (http, hook, event) = (http.clone(), hook.clone(), head.event.clone());
            let payloads = payloads.clone();
            let metrics = metrics.clone();
            attempts.spawn(async move {
                let ok = post(&http, &hook, payloads.as_ref(), &event).await;
                if ok {
                    let waited = crate::rooms::now_ms().saturating_sub(event.created_at);
                    metrics.latency.observe(waited.max(0) as f64 / 1000.0);
                    metrics.delivered.inc();
                } else {
                    metrics.failures.inc();
                }
                (session, ok)
            });
        }
        let next_pause_end = pausing.first().map(|(at, _)| *at);
        let wake = async {
            match next_pause_end {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let flush = async {
            if acks.is_empty() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::select! {
            changed = committed.changed() => {
                if changed.is_err() {
                    break;
                }
                more = true;
            }
            done = attempts.join_next(), if in_flight > 0 => {
                in_flight -= 1;
                let Some(Ok((session, ok))) = done else { continue };
                let Some(q) = queues.get_mut(&session) else { continue };
                let now = Instant::now();
                let mut finished = ok;
                if ok {
                    q.attempts = 0;
                    q.failing_since = None;
                } else {
                    q.attempts += 1;
                    let since = *q.failing_since.get_or_insert(now);
                    if now.duration_since(since) >= hook.retry_for {
                        metrics.dropped.inc();
                        if let Some(e) = q.events.front() {
                            tracing::warn!(
                                event = %e.event.name,
                                id = %e.event.id,
                                "webhook: dropping an event the receiver refused for too long"
                            );
                        }
                        q.attempts = 0;
                        q.failing_since = None;
                        finished = true;
                    }
                }
                if finished {
                    if let Some(e) = q.events.pop_front() {
                        acks.push(e.seq);
                        loaded -= 1;
                    }
                    match q.events.front() {
                        Some(next) => {
                            ready.insert((next.seq, session));
                        }
                        None => {
                            queues.remove(&session);
                        }
                    }
                } else {
                    pausing.insert((now + backoff(q.attempts), session));
                }
                if acks.len() >= 256 {
                    ack(&store, &mut acks).await;
                }
            }
            () = flush => ack(&store, &mut acks).await,
            () = wake => {}
            () = stopped(&mut stopping) => break,
        }
    }
    attempts.abort_all();
    ack(&store, &mut acks).await;
}

/// Resolves once `stopping` turns true (or its sender is gone).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// Takes delivered events out of the outbox.
async fn ack(store: &Store, acks: &mut Vec<i64>) {
    if acks.is_empty() {
        return;
    }
    if let Err(e) = store.consumed(Consumer::Hook, acks).await {
        // They stay in the outbox and are sent again after a restart; receivers drop
        // duplicates by their id.
        tracing::warn!(error = %e, "webhook: cannot mark events delivered");
    }
    acks.clear();
}

/// Appends every CDR event of the outbox to the CDR files in `dir` until `stopping` turns
/// true. A line is written (and flushed to disk) before its event leaves the outbox.
pub async fn write_cdr(
    store: Store,
    dir: std::path::PathBuf,
    payloads: Arc<dyn Payloads>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::AsyncWriteExt;
    let started = crate::rooms::now_ms();
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        tracing::error!(dir = %dir.display(), error = %e, "CDR: cannot create the folder");
        return;
    }
    let mut committed = store.committed_events();
    let mut after = 0i64;
    loop {
        loop {
            let batch = match store.pending_events(Consumer::Cdr, after, 1000).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "CDR: cannot read the outbox");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let path = dir.join(payloads.cdr_file_name(crate::rooms::now_ms(), started));
            let mut text = String::new();
            for e in &batch {
                text.push_str(&payloads.cdr_line(&e.event));
                text.push('\n');
            }
            let written = async {
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await?;
                file.write_all(text.as_bytes()).await?;
                file.sync_data().await
            }
            .await;
            if let Err(e) = written {
                tracing::warn!(file = %path.display(), error = %e, "CDR: cannot write");
                break;
            }
            let seqs: Vec<i64> = batch.iter().map(|e| e.seq).collect();
            after = seqs.last().copied().unwrap_or(after);
            if let Err(e) = store.consumed(Consumer::Cdr, &seqs).await {
                tracing::warn!(error = %e, "CDR: cannot mark events written");
            }
        }
        tokio::select! {
            changed = committed.changed() => if changed.is_err() { return },
            () = stopped(&mut stopping) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
