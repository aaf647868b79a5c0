//! Cluster mode: nodes that share one PostgreSQL database and nothing else.
//!
//! Each node is a whole server. It enters the `nodes` table with a lease it renews every third
//! of `CAMERATA_CLUSTER_LEASE`, writing its load (participants, forwarded kbit/s). PostgreSQL
//! is the only coordination: a room's row names the node that owns it, the outbox rows name
//! the node that delivers them, and a node whose lease ran out is taken over by the first
//! survivor whose takeover commits (a row lock decides; see `store::Write::Claim`), which
//! then owns its rooms and delivers its events, renumbered after its own so a session's
//! events stay in order.
//!
//! Requests: every door's REST API answers on every node. [`route`], a middleware in front
//! of the doors' routes, asks the door where a request belongs ([`Locate`]) and serves it
//! here or passes it to the owner over a node-to-node call signed with the cluster key
//! (HMAC-SHA256 over the node, the time, the method and the path; a key every node reads
//! from the database). A signed request is always served where it arrives, so nothing is
//! passed twice. Tokens are made by the owner, so they name its public address.
//!
//! Invariants: a node serves only rooms it owns (or rooms not stored); a node that finds
//! its lease taken stops at once (it may have events another node now delivers: they are
//! delivered at least once, never lost); nothing here is on the media path.

mod edge;

use crate::calls::Calls;
use crate::config::ClusterSettings;
use crate::delivery::Http;
use crate::store::{NodeRow, Store, Write};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::Duration;

/// The header of a node-to-node call: `node time signature`.
pub const NODE_HEADER: &str = "x-camerata-node";
/// The address of the client a node passes a request on for (read only when signed).
pub const CLIENT_HEADER: &str = "x-camerata-client";
/// The node a signaling connection is passed on through (read only when signed).
pub const VIA_HEADER: &str = "x-camerata-via";

/// A request extension: the request is a node-to-node call this cluster signed (by that node).
#[derive(Clone, Debug)]
pub struct Signed(pub String);
/// How old a signed call may be.
const SIGNATURE_AGE_MS: i64 = 60_000;
/// The largest body passed on to another node.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How long a node-to-node call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// What one forwarded kbit/s weighs against one participant in placement.
const KBPS_PER_PARTICIPANT: i64 = 500;

/// This node's part in the cluster (cheap to clone).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClusterSettings,
    store: Store,
    key: Vec<u8>,
    http: Http,
    /// This node's media loop (relays start and end there).
    media: crate::media::Media,
    /// Streams this node relays to edge nodes.
    relays: edge::Relays,
    /// What this node keeps as an edge of other nodes' rooms.
    edge: edge::EdgeState,
    /// Subscribers this node placed on each other node since it started (spreads a burst of
    /// placements before the loads in the database catch up).
    placed: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({})", self.node_id())
    }
}

impl Cluster {
    /// Enters the cluster: reads the cluster key and registers this node with a fresh lease.
    pub async fn join(
        settings: ClusterSettings,
        public_url: &str,
        store: Store,
        media: crate::media::Media,
    ) -> anyhow::Result<Self> {
        let key = store.secret_setting("cluster_key").await?;
        let media_addr = media.udp_addr().to_string();
        store
            .register_node(&settings.url, public_url, &media_addr, lease_ms(&settings))
            .await?;
        let http = crate::delivery::http_client()?;
        tracing::info!(node = %settings.node_id, url = %settings.url, "joined the cluster");
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                store,
                key,
                http,
                media,
                relays: Default::default(),
                edge: Default::default(),
                placed: Default::default(),
            }),
        })
    }

    /// This node's name.
    pub fn node_id(&self) -> &str {
        &self.inner.settings.node_id
    }

    /// Renews the lease with the load every third of it and takes over nodes whose lease
    /// ran out, until `stop`; calls `lost` when the cluster declared this node dead.
    pub async fn keep(
        self,
        calls: Calls,
        recorder: Option<crate::recording::Recorder>,
        mut stop: tokio::sync::watch::Receiver<bool>,
        lost: impl Fn() + Send + 'static,
    ) {
        let every = self.inner.settings.lease / 3;
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_bytes = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let (participants, bytes) = load(&calls).await;
            let kbps = match last_bytes.replace(bytes) {
                Some(before) => {
                    (bytes.saturating_sub(before) * 8 / 1000) as i64 / every.as_secs().max(1) as i64
                }
                None => 0,
            };
            let store = &self.inner.store;
            let lease = lease_ms(&self.inner.settings);
            match store
                .renew_node(lease, participants, kbps, calls.rooms().draining())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(node = %self.node_id(), "the cluster declared this node dead and took its rooms: stopping");
                    lost();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: cannot renew the lease");
                    continue;
                }
            }
            self.take_over_dead(&calls, recorder.as_ref()).await;
        }
    }

    /// Takes over every node whose lease ran out (one survivor wins each), then takes its
    /// rooms in and settles the recordings it left in the recording folder (when the nodes
    /// share it; otherwise the dead node settles them at its restart).
    async fn take_over_dead(&self, calls: &Calls, recorder: Option<&crate::recording::Recorder>) {
        let Ok(nodes) = self.inner.store.nodes().await else {
            return;
        };
        for dead in nodes.iter().filter(|n| {
            n.state == crate::store::NodeState::Alive && !n.leased && n.id != self.node_id()
        }) {
            let claimed = self
                .inner
                .store
                .write(vec![Write::Claim {
                    dead: dead.id.clone(),
                }])
                .await;
            if let Err(e) = claimed {
                tracing::warn!(node = %dead.id, error = %e, "cluster: takeover failed");
                continue;
            }
            match calls.rooms().adopt().await {
                Ok((taken, closed)) if !(taken.is_empty() && closed.is_empty()) => {
                    tracing::warn!(node = %dead.id, rooms_taken = taken.len(), rooms_closed = closed.len(), "cluster: took over a dead node");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(node = %dead.id, error = %e, "cluster: cannot take rooms in")
                }
            }
            if let Some(recorder) = recorder.cloned() {
                let node = dead.id.clone();
                let settled =
                    tokio::task::spawn_blocking(move || recorder.recover_of(Some(&node))).await;
                if let Ok(settled) = settled
                    && !settled.is_empty()
                {
                    tracing::warn!(node = %dead.id, recordings = settled.len(), "cluster: settled a dead node's recordings");
                }
            }
        }
    }

    /// The node a new room goes to: the available one with the least load (rooms,
    /// participants, forwarded bitrate), this node on a tie.
    pub(crate) async fn place(&self) -> Option<NodeRow> {
        let nodes = self.inner.store.nodes().await.ok()?;
        nodes
            .into_iter()
            .filter(NodeRow::available)
            .min_by_key(|n| {
                (
                    n.rooms + n.participants + n.forwarded_kbps / KBPS_PER_PARTICIPANT,
                    n.id != self.node_id(),
                    n.id.clone(),
                )
            })
    }

    /// The node that owns room `id` when it is another live node; `None`: this one.
    pub(crate) async fn owner(&self, calls: &Calls, id: &str) -> Option<NodeRow> {
        if calls
            .rooms()
            .get(&crate::room::RoomId::new(id.to_owned()))
            .is_some()
        {
            return None;
        }
        let owner = self.inner.store.room_owner(id).await.ok()??;
        if owner == self.node_id() {
            return None;
        }
        let nodes = self.inner.store.nodes().await.ok()?;
        nodes.into_iter().find(|n| n.id == owner && n.leased)
    }

    /// The routes this node serves other nodes (as an edge of their rooms).
    pub fn routes(&self) -> axum::Router {
        edge::routes(self.clone())
    }

    /// A signed JSON call to the node at `url`: its JSON answer, or why there is none.
    pub(crate) async fn post_json<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        path: &str,
        body: &Q,
    ) -> Result<A, String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let at = crate::rooms::now_ms();
        let request = hyper::Request::post(format!("{url}{path}"))
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .header(NODE_HEADER, self.sign(at, "POST", path))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.inner.http.request(request))
            .await
            .map_err(|_| format!("{url}{path} timed out"))?
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let bytes = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{url}{path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// Live nodes (this one included) for listings and searches.
    pub(crate) async fn live(&self) -> Vec<NodeRow> {
        let mut nodes = self.inner.store.nodes().await.unwrap_or_default();
        nodes.retain(|n| n.state == crate::store::NodeState::Alive && n.leased);
        nodes
    }

    fn sign(&self, at: i64, method: &str, path: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.inner.key)
            .expect("HMAC takes any key length");
        mac.update(format!("{}\n{at}\n{method}\n{path}", self.node_id()).as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{} {at} {sig}", self.node_id())
    }

    /// Whether `header` signs `method path` as a node of this cluster, recently.
    fn verify(&self, header: &str, method: &str, path: &str) -> bool {
        let mut parts = header.split(' ');
        let (Some(node), Some(at), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(at) = at.parse::<i64>() else {
            return false;
        };
        if (crate::rooms::now_ms() - at).abs() > SIGNATURE_AGE_MS {
            return false;
        }
        let Some(sig) = decode_hex(sig) else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.inner.key)
            .expect("HMAC takes any key length");
        mac.update(format!("{node}\n{at}\n{method}\n{path}").as_bytes());
        mac.verify_slice(&sig).is_ok()
    }

    /// Passes a request on to `node`, signed; its answer, or why there is none.
    async fn call(
        &self,
        node: &NodeRow,
        method: &axum::http::Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
        client: &str,
    ) -> Result<Response, String> {
        let mut request = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", node.url));
        for (name, value) in headers {
            if !is_hop_header(name.as_str()) {
                request = request.header(name, value);
            }
        }
        let at = crate::rooms::now_ms();
        request = request
            .header(NODE_HEADER, self.sign(at, method.as_str(), path))
            .header(CLIENT_HEADER, client);
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.inner.http.request(request))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let (parts, body) = answer.into_parts();
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

/// Participants in this node's rooms, and the bytes its media loop forwarded so far.
async fn load(calls: &Calls) -> (i64, u64) {
    let mut participants = 0i64;
    for handle in calls.rooms().all() {
        if let Ok(room) = handle.snapshot(false).await {
            participants += room.active_participants().count() as i64;
        }
    }
    let bytes = calls
        .media()
        .stats()
        .await
        .map_or(0, |s| s.counts.bytes_forwarded);
    (participants, bytes)
}

fn lease_ms(settings: &ClusterSettings) -> i64 {
    i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn is_hop_header(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "proxy-connection"
            | NODE_HEADER
            | CLIENT_HEADER
    )
}

/// Where a request is served in a cluster, as a door reads it from its own paths and bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locate {
    /// This node, whatever the room (configuration, health, signaling, or not a room's).
    Here,
    /// The node that owns room `0`.
    Room(String),
    /// The door reads the room from the body: ask again with it.
    NeedBody,
    /// It creates a room: the node placement picks.
    Create,
    /// A listing: every live node's answer, merged (arrays joined, counts added).
    Gather,
    /// A listing a page at a time: every live node's first `offset + count` items, merged,
    /// ordered newest first, then the page cut from the whole.
    GatherPage(Paging),
    /// An item some node has (a recording): the first node that does not answer 404.
    Search,
}

/// How a door pages a listing ([`Locate::GatherPage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// The query parameter of the first item's index.
    pub offset: &'static str,
    /// The query parameter of the page's size.
    pub count: &'static str,
    /// The page's size when the query gives none.
    pub default_count: usize,
    /// The answer's array of items.
    pub items: &'static str,
    /// The items' field they are ordered by, largest first (then by `id`, largest first).
    pub newest_first_by: &'static str,
}

/// Where a request goes, as the doors read it (lib.rs asks each door in turn).
pub type Locator = Arc<dyn Fn(&axum::http::Method, &str, Option<&[u8]>) -> Locate + Send + Sync>;

/// What the routing middleware needs.
#[derive(Clone)]
pub struct Routing {
    /// This node's cluster.
    pub cluster: Cluster,
    /// The call layer (which rooms are live here).
    pub calls: Calls,
    /// Where the doors say their requests belong.
    pub locate: Locator,
}

/// The middleware in front of every door's routes in cluster mode: serves a request here or
/// passes it to the node it belongs to (see the module's documentation).
pub async fn route(State(r): State<Routing>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    if let Some(signed) = req.headers().get(NODE_HEADER).and_then(|v| v.to_str().ok()) {
        if !r.cluster.verify(signed, method.as_str(), &path) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "node-to-node call not signed by this cluster",
            );
        }
        let node = signed.split(' ').next().unwrap_or_default().to_owned();
        req.extensions_mut().insert(Signed(node));
        if let Some(via) = req
            .headers()
            .get(VIA_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        {
            req.extensions_mut().insert(crate::calls::Via(via));
        }
        // The client it was passed on for: its address is the one the guard counts.
        if let Some(ip) = req
            .headers()
            .get(CLIENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<std::net::IpAddr>().ok())
        {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(ip, 0)));
        }
        return next.run(req).await;
    }
    let mut place = (r.locate)(&method, &path, None);
    let client = crate::guard::source(&req).to_string();
    // A signaling socket for a room another node owns (a subscriber placed here): passed on
    // to the owner whole, frame by frame.
    if req.headers().contains_key(axum::http::header::UPGRADE) {
        if let Locate::Room(id) = &place
            && let Some(node) = r.cluster.owner(&r.calls, id).await
        {
            return tunnel(&r.cluster, &node, req, &path, &client).await;
        }
        return next.run(req).await;
    }
    if place == Locate::Here {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    if place == Locate::NeedBody {
        place = (r.locate)(&method, &path, Some(&body));
    }
    let here = |parts, body: Bytes| next.run(Request::from_parts(parts, Body::from(body)));
    let c = &r.cluster;
    match place {
        Locate::Here | Locate::NeedBody => here(parts, body).await,
        Locate::Room(id) => match c.owner(&r.calls, &id).await {
            None => here(parts, body).await,
            Some(node) => passed(
                c.call(&node, &method, &path, &parts.headers, body, &client)
                    .await,
                &node,
            ),
        },
        Locate::Create => match c.place().await {
            Some(node) if node.id != c.node_id() => passed(
                c.call(&node, &method, &path, &parts.headers, body, &client)
                    .await,
                &node,
            ),
            _ => here(parts, body).await,
        },
        Locate::Gather => gather(c, &method, &path, &parts.headers, body, &client, None).await,
        Locate::GatherPage(paging) => match page_query(&path, &paging) {
            Some((asked, offset, count)) => {
                let page = Some((&paging, offset, count));
                gather(c, &method, &asked, &parts.headers, body, &client, page).await
            }
            // A query the door refuses: it says why.
            None => here(parts, body).await,
        },
        Locate::Search => {
            let mut last = None;
            for node in c.live().await {
                match c
                    .call(&node, &method, &path, &parts.headers, body.clone(), &client)
                    .await
                {
                    Ok(answer) if answer.status() != StatusCode::NOT_FOUND => return answer,
                    Ok(answer) => last = Some(answer),
                    Err(e) => {
                        tracing::warn!(node = %node.id, error = %e, "cluster: a node did not answer a search")
                    }
                }
            }
            match last {
                Some(answer) => answer,
                None => here(parts, body).await,
            }
        }
    }
}

/// A node-to-node WebSocket (client side).
pub(crate) type NodeSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Cluster {
    /// A WebSocket to `path` on `node`, signed as this node, with `headers` added.
    pub(crate) async fn socket(
        &self,
        node: &NodeRow,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<NodeSocket, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}{path}", node.url.replacen("http", "ws", 1));
        let mut upstream = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad node URL {url}: {e}"))?;
        let signature = self.sign(crate::rooms::now_ms(), "GET", path);
        let signed = [(NODE_HEADER, signature.as_str())];
        for &(name, value) in signed.iter().chain(headers) {
            if let Ok(v) = HeaderValue::from_str(value) {
                upstream.headers_mut().insert(name, v);
            }
        }
        match tokio::time::timeout(CALL_TIMEOUT, tokio_tungstenite::connect_async(upstream)).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(e)) => Err(format!("{url}: {e}")),
            Err(_) => Err(format!("{url} timed out")),
        }
    }
}

/// Passes a client's WebSocket on to `node`, signed, marked as coming through this node.
async fn tunnel(c: &Cluster, node: &NodeRow, req: Request, path: &str, client: &str) -> Response {
    use axum::extract::FromRequestParts;
    let headers = [(CLIENT_HEADER, client), (VIA_HEADER, c.node_id())];
    let owner = match c.socket(node, path, &headers).await {
        Ok(owner) => owner,
        Err(e) => return passed(Err(format!("its signaling did not answer: {e}")), node),
    };
    let (mut parts, _) = req.into_parts();
    match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade.on_upgrade(move |socket| pump(socket, owner)),
        Err(rejection) => rejection.into_response(),
    }
}

/// Frames both ways between a client's socket and the owner's, until either closes.
async fn pump(client: axum::extract::ws::WebSocket, owner: NodeSocket) {
    use axum::extract::ws::Message as C;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as O;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_owner, mut from_owner) = owner.split();
    let up = async {
        while let Some(Ok(m)) = from_client.next().await {
            let m = match m {
                C::Text(t) => O::text(t.as_str()),
                C::Binary(b) => O::Binary(b),
                C::Ping(b) => O::Ping(b),
                C::Pong(b) => O::Pong(b),
                C::Close(_) => break,
            };
            if to_owner.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_owner.close().await;
    };
    let down = async {
        while let Some(Ok(m)) = from_owner.next().await {
            let m = match m {
                O::Text(t) => C::Text(t.as_str().into()),
                O::Binary(b) => C::Binary(b),
                O::Ping(b) => C::Ping(b),
                O::Pong(b) => C::Pong(b),
                O::Close(_) => break,
                O::Frame(_) => continue,
            };
            if to_client.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_client.close().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// The signaling base (`ws://host:port`) of a node's public URL.
fn ws_base(public_url: &str) -> String {
    let url = public_url.trim_end_matches('/');
    match url.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", url.strip_prefix("http://").unwrap_or(url)),
    }
}

impl crate::calls::ClusterHooks for Cluster {
    fn place(
        &self,
        _room: &str,
        role: crate::room::Role,
        subscribers: usize,
    ) -> futures_util::future::BoxFuture<'static, Option<String>> {
        let c = self.clone();
        Box::pin(async move {
            let limit = c.inner.settings.room_subscribers;
            if role != crate::room::Role::Subscriber || limit == 0 || subscribers < limit {
                return None;
            }
            let nodes = c.inner.store.nodes().await.ok()?;
            let mut placed = c
                .inner
                .placed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let edge = nodes
                .into_iter()
                .filter(|n| n.available() && n.id != c.node_id())
                .min_by_key(|n| {
                    let here = placed.get(&n.id).copied().unwrap_or(0);
                    (
                        n.participants + n.forwarded_kbps / KBPS_PER_PARTICIPANT + here,
                        n.id.clone(),
                    )
                })?;
            *placed.entry(edge.id.clone()).or_default() += 1;
            Some(ws_base(&edge.public_url))
        })
    }

    fn edge(&self, via: &str) -> Option<Arc<dyn crate::calls::EdgeMedia>> {
        Some(Arc::new(edge::EdgeLink {
            cluster: self.clone(),
            node: via.to_owned(),
        }))
    }
}

fn passed(answer: Result<Response, String>, node: &NodeRow) -> Response {
    answer.unwrap_or_else(|e| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "cluster node '{}' that has this room did not answer: {e}",
                node.id
            ),
        )
    })
}

/// Only signed node-to-node calls pass (a route layer for the routes nodes serve each other).
pub(crate) async fn require_signed(req: Request, next: Next) -> Response {
    if req.extensions().get::<Signed>().is_none() {
        return refuse(StatusCode::UNAUTHORIZED, "a node-to-node call");
    }
    next.run(req).await
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"status": status.as_u16(), "message": message});
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// A listing over every live node: their JSON objects merged, arrays joined and the counts
/// (`numberOfElements`, `count`) added; a node that fails is left out (and logged).
/// The request that asks every node for the first `offset + count` items of a paged listing,
/// with that `offset` and `count`; `None` when the query's numbers are not numbers.
fn page_query(path: &str, paging: &Paging) -> Option<(String, usize, usize)> {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut offset: usize = 0;
    let mut count = paging.default_count;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == paging.offset {
            offset = v.trim().parse().ok()?;
        } else if k == paging.count {
            count = v.trim().parse().ok()?;
        } else {
            kept.push(pair);
        }
    }
    let first = offset.checked_add(count)?;
    kept.push("");
    let asked = format!(
        "{base}?{}{}=0&{}={first}",
        kept.join("&"),
        paging.offset,
        paging.count
    );
    Some((asked, offset, count))
}

/// Orders a merged page's items (newest first, as `paging` says) and keeps the page.
fn cut_page(all: &mut serde_json::Map<String, serde_json::Value>, page: (&Paging, usize, usize)) {
    let (paging, offset, count) = page;
    let Some(serde_json::Value::Array(items)) = all.get_mut(paging.items) else {
        return;
    };
    let key = |v: &serde_json::Value| {
        (
            v.get(paging.newest_first_by)
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0),
            v.get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    };
    items.sort_by_key(|v| std::cmp::Reverse(key(v)));
    let page: Vec<serde_json::Value> = items.drain(..).skip(offset).take(count).collect();
    *items = page;
}

async fn gather(
    c: &Cluster,
    method: &axum::http::Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
    client: &str,
    page: Option<(&Paging, usize, usize)>,
) -> Response {
    let mut merged: Option<serde_json::Map<String, serde_json::Value>> = None;
    let mut first_failure = None;
    for node in c.live().await {
        let answer = match c
            .call(&node, method, path, headers, body.clone(), client)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(node = %node.id, error = %e, "cluster: a node did not answer a listing");
                continue;
            }
        };
        if !answer.status().is_success() {
            first_failure.get_or_insert(answer);
            continue;
        }
        let Ok(bytes) = answer.into_body().collect().await.map(|b| b.to_bytes()) else {
            continue;
        };
        let Ok(serde_json::Value::Object(part)) = serde_json::from_slice(&bytes) else {
            continue;
        };
        match &mut merged {
            None => merged = Some(part),
            Some(all) => merge(all, part),
        }
    }
    if let (Some(all), Some(page)) = (&mut merged, page) {
        cut_page(all, page);
    }
    match (merged, first_failure) {
        (Some(all), _) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            serde_json::Value::Object(all).to_string(),
        )
            .into_response(),
        (None, Some(failure)) => failure,
        (None, None) => refuse(StatusCode::SERVICE_UNAVAILABLE, "no cluster node answered"),
    }
}

/// Adds `part`'s arrays and counts to `all`.
fn merge(
    all: &mut serde_json::Map<String, serde_json::Value>,
    part: serde_json::Map<String, serde_json::Value>,
) {
    // Items two nodes both list (recordings in a folder they share) count once.
    let mut repeated = 0i64;
    let mut counts = Vec::new();
    for (k, v) in part {
        match (all.get_mut(&k), v) {
            (Some(serde_json::Value::Array(a)), serde_json::Value::Array(b)) => {
                for item in b {
                    let id = item.get("id").filter(|id| !id.is_null());
                    if id.is_some_and(|id| a.iter().any(|x| x.get("id") == Some(id))) {
                        repeated += 1;
                    } else {
                        a.push(item);
                    }
                }
            }
            (Some(serde_json::Value::Number(_)), serde_json::Value::Number(b))
                if k == "numberOfElements" || k == "count" =>
            {
                counts.push((k, b.as_i64().unwrap_or(0)));
            }
            (None, v) => {
                all.insert(k, v);
            }
            _ => {}
        }
    }
    for (k, n) in counts {
        if let Some(a) = all.get_mut(&k) {
            *a = (a.as_i64().unwrap_or(0) + n - repeated).max(0).into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCHIVES: Paging = Paging {
        offset: "offset",
        count: "count",
        default_count: 50,
        items: "items",
        newest_first_by: "createdAt",
    };

    #[test]
    fn a_page_of_a_cluster_listing_is_cut_from_every_node_s_items() {
        // Every node is asked for the items up to the page's end; other parameters stay.
        let asked = page_query(
            "/v2/project/k/archive?sessionId=s&offset=2&count=3",
            &ARCHIVES,
        );
        assert_eq!(
            asked,
            Some((
                "/v2/project/k/archive?sessionId=s&offset=0&count=5".to_owned(),
                2,
                3
            ))
        );
        let asked = page_query("/v2/project/k/archive", &ARCHIVES);
        assert_eq!(
            asked,
            Some(("/v2/project/k/archive?offset=0&count=50".to_owned(), 0, 50))
        );
        // A number that is not one: the door answers it.
        assert_eq!(page_query("/a?offset=-1", &ARCHIVES), None);
        assert_eq!(page_query("/a?count=x", &ARCHIVES), None);
        // Two nodes' first five, merged: the page is the third to fifth newest of all.
        let item = |id: &str, at: i64| serde_json::json!({"id": id, "createdAt": at});
        let mut all =
            serde_json::json!({"count": 4, "items": [item("a", 50), item("b", 30), item("c", 10)]})
                .as_object()
                .cloned()
                .unwrap_or_default();
        let part =
            serde_json::json!({"count": 3, "items": [item("d", 40), item("e", 20), item("f", 5)]})
                .as_object()
                .cloned()
                .unwrap_or_default();
        merge(&mut all, part);
        cut_page(&mut all, (&ARCHIVES, 2, 3));
        let ids: Vec<&str> = all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert_eq!(ids, ["b", "e", "c"]);
        assert_eq!(all["count"], 7, "the total counts every node's items");
    }

    #[test]
    fn listings_merge_arrays_and_counts_each_item_once() {
        let mut all = serde_json::json!({"numberOfElements": 1, "content": [{"id": "a"}]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let part =
            serde_json::json!({"numberOfElements": 2, "content": [{"id": "b"}, {"id": "c"}]})
                .as_object()
                .cloned()
                .unwrap_or_default();
        merge(&mut all, part);
        let shared = serde_json::json!({"numberOfElements": 1, "content": [{"id": "b"}]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        merge(&mut all, shared);
        assert_eq!(
            serde_json::Value::Object(all),
            serde_json::json!({"numberOfElements": 3, "content": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})
        );
    }

    #[test]
    fn hex_decoding_refuses_odd_and_foreign_text() {
        assert_eq!(decode_hex("00ff"), Some(vec![0, 255]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é0"), None);
    }
}
