//! A room larger than a node: subscribers placed on another node (an edge) of the cluster.
//!
//! Their signaling still reaches the room's owner (the edge passes their WebSocket on, see
//! `super::route`), so the room, its events, signals, moderation and recording stay in one
//! place. Their media is the edge's: when such a member subscribes, the owner starts (or
//! reuses) a media relay of the stream to the edge and asks the edge, over a signed call, to
//! answer the member's offer with a peer connection fed by that relay (or, the server
//! offering, to make the offer, whose answer follows the same way). The owner keeps the
//! subscription as an [`Endpoint`] whose peer connection is elsewhere; dropping it closes
//! the edge's peer connection, and the relay stops with its last subscriber.

use super::Cluster;
use crate::calls::EdgeMedia;
use crate::media::{
    Description, Endpoint, LocalCandidate, MediaError, RelayGuard, RelayKeys, RemoteEndpoint,
    StreamOut, VideoChoice,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// The owner's relays, by (stream, edge node): alive while a subscription there uses them.
pub(super) type Relays = Mutex<HashMap<(u64, String), Weak<RelayGuard>>>;

/// What an edge keeps: the streams it receives by relay id (with how many subscriptions use
/// each) and its subscriptions' peer connections by id.
#[derive(Default)]
pub(super) struct EdgeState {
    streams: Mutex<HashMap<u64, (StreamOut, usize)>>,
    subscriptions: Mutex<HashMap<String, (Endpoint, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn codec_name(v: VideoChoice) -> &'static str {
    match v {
        VideoChoice::Vp8 => "VP8",
        VideoChoice::Vp9 => "VP9",
        VideoChoice::H264 => "H264",
    }
}

fn codec(name: &str) -> Option<VideoChoice> {
    Some(match name {
        "VP8" => VideoChoice::Vp8,
        "VP9" => VideoChoice::Vp9,
        "H264" => VideoChoice::H264,
        _ => return None,
    })
}

/// A subscription request from an owner to an edge.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscribe {
    relay: u64,
    /// The owner's media socket (the relay comes from there).
    from: String,
    video: String,
    /// The client's offer; `None`: the edge offers (the kinds `wanted`), and the client's
    /// answer comes later ([`Answer`]).
    offer: Option<String>,
    #[serde(default)]
    wanted: (bool, bool),
    candidates_in_sdp: bool,
}

/// The client's answer to an edge's offer.
#[derive(Serialize, Deserialize)]
struct Answer {
    id: String,
    answer: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    candidate: String,
    sdp_mid: String,
    sdp_mline_index: u16,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscribed {
    id: String,
    sdp: String,
    candidates: Vec<Candidate>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trickle {
    id: String,
    candidate: String,
    sdp_mid: Option<String>,
    sdp_mline_index: Option<u16>,
}

#[derive(Serialize, Deserialize)]
struct Close {
    id: String,
}

/// The owner's link to one edge node: subscriptions of members whose connection came
/// through it are made there.
pub(super) struct EdgeLink {
    pub(super) cluster: Cluster,
    pub(super) node: String,
}

impl EdgeMedia for EdgeLink {
    fn subscribe(
        &self,
        out: &StreamOut,
        offer: String,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> BoxFuture<'static, Result<(Endpoint, Description), MediaError>> {
        self.open(out, Some(offer), (true, true), video, candidates_in_sdp)
    }

    fn offer(
        &self,
        out: &StreamOut,
        audio: bool,
        video_track: bool,
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> BoxFuture<'static, Result<(Endpoint, Description), MediaError>> {
        self.open(out, None, (audio, video_track), video, candidates_in_sdp)
    }
}

impl EdgeLink {
    /// A subscription to `out` on the edge: answering the client's `offer`, or offering
    /// the kinds `wanted` (audio, video).
    fn open(
        &self,
        out: &StreamOut,
        offer: Option<String>,
        wanted: (bool, bool),
        video: VideoChoice,
        candidates_in_sdp: bool,
    ) -> BoxFuture<'static, Result<(Endpoint, Description), MediaError>> {
        let (cluster, node, out) = (self.cluster.clone(), self.node.clone(), out.clone());
        Box::pin(async move {
            let gone = || MediaError::Gone("the cluster node of this subscriber is gone");
            let edge = cluster
                .live()
                .await
                .into_iter()
                .find(|n| n.id == node)
                .ok_or_else(gone)?;
            let to: std::net::SocketAddr = edge.media.parse().map_err(|_| gone())?;
            let guard = cluster.relay(&out, &node, to).await?;
            let request = Subscribe {
                relay: guard.1,
                from: cluster.inner.media.udp_addr().to_string(),
                video: codec_name(video).to_owned(),
                offer,
                wanted,
                candidates_in_sdp,
            };
            let answer: Subscribed = cluster
                .post_json(&edge.url, "/cluster/v1/subscribe", &request)
                .await
                .map_err(MediaError::Stack)?;
            let (status_tx, status) = tokio::sync::watch::channel(Default::default());
            let description = Description {
                sdp: answer.sdp,
                candidates: answer
                    .candidates
                    .into_iter()
                    .map(|c| LocalCandidate {
                        candidate: c.candidate,
                        sdp_mid: c.sdp_mid,
                        sdp_mline_index: c.sdp_mline_index,
                    })
                    .collect(),
                status,
                tracks: Vec::new(),
            };
            let remote = RemoteSubscription {
                cluster,
                url: edge.url,
                id: answer.id,
                _relay: guard.0,
                _status: status_tx,
            };
            Ok((Endpoint::elsewhere(Arc::new(remote)), description))
        })
    }
}

/// A subscription whose peer connection an edge node has.
#[derive(Debug)]
struct RemoteSubscription {
    cluster: Cluster,
    url: String,
    id: String,
    /// Keeps the stream's relay to that node going.
    _relay: Arc<RelayGuard>,
    /// Its status never changes here (the edge watches the peer connection).
    _status: tokio::sync::watch::Sender<crate::media::PeerStatus>,
}

impl RemoteEndpoint for RemoteSubscription {
    fn add_candidate(
        &self,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> BoxFuture<'static, Result<(), MediaError>> {
        let (cluster, url) = (self.cluster.clone(), self.url.clone());
        let trickle = Trickle {
            id: self.id.clone(),
            candidate,
            sdp_mid,
            sdp_mline_index,
        };
        Box::pin(async move {
            cluster
                .post_json::<_, serde_json::Value>(&url, "/cluster/v1/candidate", &trickle)
                .await
                .map(|_| ())
                .map_err(MediaError::Stack)
        })
    }

    fn accept_answer(&self, answer: String) -> BoxFuture<'static, Result<(), MediaError>> {
        let (cluster, url) = (self.cluster.clone(), self.url.clone());
        let answer = Answer {
            id: self.id.clone(),
            answer,
        };
        Box::pin(async move {
            cluster
                .post_json::<_, serde_json::Value>(&url, "/cluster/v1/answer", &answer)
                .await
                .map(|_| ())
                .map_err(MediaError::Stack)
        })
    }
}

impl Drop for RemoteSubscription {
    fn drop(&mut self) {
        let (cluster, url) = (self.cluster.clone(), self.url.clone());
        let close = Close {
            id: std::mem::take(&mut self.id),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = cluster
                    .post_json::<_, serde_json::Value>(&url, "/cluster/v1/close", &close)
                    .await
                {
                    tracing::warn!(error = %e, "cluster: an edge subscription was not closed");
                }
            });
        }
    }
}

impl Cluster {
    /// The relay of `out` to `node` (media socket `to`): the running one, or a new one.
    async fn relay(
        &self,
        out: &StreamOut,
        node: &str,
        to: std::net::SocketAddr,
    ) -> Result<(Arc<RelayGuard>, u64), MediaError> {
        let key = (out.id(), node.to_owned());
        if let Some((guard, relay)) = lock(&self.inner.relays)
            .get(&key)
            .and_then(Weak::upgrade)
            .map(|g| {
                let relay = g.relay();
                (g, relay)
            })
        {
            return Ok((guard, relay));
        }
        let relay: u64 = rand::random();
        let keys = RelayKeys::derive(&self.inner.key, relay);
        let guard = Arc::new(self.inner.media.relay_out(out, relay, to, keys).await?);
        let mut relays = lock(&self.inner.relays);
        relays.retain(|_, w| w.strong_count() > 0);
        relays.insert(key, Arc::downgrade(&guard));
        Ok((guard, relay))
    }
}

/// The edge's routes, for signed node-to-node calls only.
pub(super) fn routes(cluster: Cluster) -> axum::Router {
    axum::Router::new()
        .route("/cluster/v1/subscribe", axum::routing::post(subscribe))
        .route("/cluster/v1/candidate", axum::routing::post(candidate))
        .route("/cluster/v1/answer", axum::routing::post(answer))
        .route("/cluster/v1/close", axum::routing::post(close))
        .route_layer(axum::middleware::from_fn(super::require_signed))
        .with_state(cluster)
}

async fn subscribe(State(c): State<Cluster>, Json(q): Json<Subscribe>) -> Response {
    let (Some(video), Ok(from)) = (codec(&q.video), q.from.parse()) else {
        return super::refuse(StatusCode::BAD_REQUEST, "unknown codec or address");
    };
    let media = c.inner.media.clone();
    let out = {
        let mut streams = lock(&c.inner.edge.streams);
        let entry = streams.entry(q.relay).or_insert_with(|| {
            let keys = RelayKeys::derive(&c.inner.key, q.relay);
            (media.relay_in(q.relay, from, keys, video), 0)
        });
        entry.1 += 1;
        entry.0.clone()
    };
    let made = match q.offer {
        Some(offer) => {
            media
                .subscribe(&out, offer, video, q.candidates_in_sdp)
                .await
        }
        None => {
            let (audio, video_track) = q.wanted;
            let in_sdp = q.candidates_in_sdp;
            media.offer(&out, audio, video_track, video, in_sdp).await
        }
    };
    match made {
        Ok((endpoint, d)) => {
            let id = format!("{:016x}", rand::random::<u64>());
            lock(&c.inner.edge.subscriptions).insert(id.clone(), (endpoint, q.relay));
            Json(Subscribed {
                id,
                sdp: d.sdp,
                candidates: d
                    .candidates
                    .into_iter()
                    .map(|l| Candidate {
                        candidate: l.candidate,
                        sdp_mid: l.sdp_mid,
                        sdp_mline_index: l.sdp_mline_index,
                    })
                    .collect(),
            })
            .into_response()
        }
        Err(e) => {
            release(&c, q.relay);
            super::refuse(StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

/// One subscription fewer on relay `relay`: the relayed stream ends with its last.
fn release(c: &Cluster, relay: u64) {
    let mut streams = lock(&c.inner.edge.streams);
    if let Some(entry) = streams.get_mut(&relay) {
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0 {
            streams.remove(&relay);
        }
    }
}

async fn candidate(State(c): State<Cluster>, Json(q): Json<Trickle>) -> Response {
    let endpoint = lock(&c.inner.edge.subscriptions)
        .get(&q.id)
        .map(|(e, _)| e.clone());
    let Some(endpoint) = endpoint else {
        return super::refuse(StatusCode::NOT_FOUND, "no such subscription");
    };
    match endpoint
        .add_candidate(q.candidate, q.sdp_mid, q.sdp_mline_index)
        .await
    {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(e) => super::refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn answer(State(c): State<Cluster>, Json(q): Json<Answer>) -> Response {
    let endpoint = lock(&c.inner.edge.subscriptions)
        .get(&q.id)
        .map(|(e, _)| e.clone());
    let Some(endpoint) = endpoint else {
        return super::refuse(StatusCode::NOT_FOUND, "no such subscription");
    };
    match endpoint.accept_answer(q.answer).await {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(e) => super::refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn close(State(c): State<Cluster>, Json(q): Json<Close>) -> Response {
    let removed = lock(&c.inner.edge.subscriptions).remove(&q.id);
    if let Some((endpoint, relay)) = removed {
        endpoint.close();
        release(&c, relay);
    }
    Json(serde_json::json!({})).into_response()
}
