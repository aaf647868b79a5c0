//! The VideoRoom plugin in a cluster of nodes: a request about a room reaches the node that
//! owns the room, whichever node the Janus client talks to.
//!
//! Synchronous requests naming a room go to its owner as a signed node-to-node call
//! ([`SYNC_PATH`], answered by that node's plugin as its own request); `create` goes to the
//! node placement picks; `list` gathers every live node's rooms. A handle that joins a room
//! of another node becomes a [`Remote`]: this node opens a Janus session and a VideoRoom
//! handle on the owner over a signed node-to-node WebSocket (the owner's Janus API, trusted
//! without the client's Janus credentials, which this node checked), passes the handle's
//! requests, candidates and hang-ups on with the client's transactions, and puts the
//! owner's events for it on the client's session under the client's session and handle ids.
//! The peer connection is the owner's: its candidates name the owner's media address.
//!
//! Invariant: a node answers a signed call with its own rooms only (it never passes one
//! on), so no request goes round the cluster.

use super::params::{Body, VrError};
use super::{SYNC, VideoRoom, room_key};
use crate::cluster::{Cluster, NodeSocket};
use crate::protocols::janus::api::VIDEOROOM;
use crate::store::NodeRow;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The path nodes serve each other's synchronous VideoRoom requests on.
pub const SYNC_PATH: &str = "/cluster/v1/janus/videoroom";

/// Events from the owner kept for a remote handle until its task takes them.
const REMOTE_EVENTS: usize = 1024;

/// How often a remote handle's session on the owner is kept alive (well under any Janus
/// session timeout an operator would set).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// How long the owner has to open the remote handle's session and handle.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The transactions of the requests a node makes itself on a remote handle's session
/// (their answers are not the client's).
const OWN: &str = "cluster-";

impl VideoRoom {
    fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.get()
    }

    /// The live node that owns room `id` when that is another node of the cluster.
    pub(super) async fn owner_elsewhere(&self, id: u64) -> Option<(Cluster, NodeRow)> {
        let cluster = self.cluster()?;
        let node = cluster
            .owner(&self.inner.calls, room_key(id).as_str())
            .await?;
        Some((cluster.clone(), node))
    }

    /// The answer of another node to a synchronous request that belongs there (its room's
    /// owner, the placement of a new room, every node for `list`); `None`: this node's.
    pub(super) async fn sync_elsewhere(
        &self,
        request: &str,
        body: &Map<String, Value>,
    ) -> Option<Value> {
        let cluster = self.cluster()?;
        let node = match request {
            "list" => return Some(self.list_cluster(cluster, body).await),
            "create" => cluster
                .place()
                .await
                .filter(|n| n.id != cluster.node_id())?,
            _ => self.owner_elsewhere(Body(body).room().ok()?).await?.1,
        };
        Some(ask(cluster, &node, body).await)
    }

    /// `list` over the cluster: this node's rooms, then each other live node's (a room two
    /// nodes list, while one takes it over, once).
    async fn list_cluster(&self, cluster: &Cluster, body: &Map<String, Value>) -> Value {
        let mut reply = self
            .sync("list", &Body(body))
            .await
            .unwrap_or_else(|e| e.data());
        let mut seen: HashSet<u64> = HashSet::new();
        let mut list: Vec<Value> = Vec::new();
        let mut keep = |rooms: &Value| {
            for room in rooms.as_array().into_iter().flatten() {
                if room["room"].as_u64().is_some_and(|id| seen.insert(id)) {
                    list.push(room.clone());
                }
            }
        };
        keep(&reply["list"]);
        for node in cluster.live().await {
            if node.id == cluster.node_id() {
                continue;
            }
            match cluster
                .post_json::<_, Value>(&node.url, SYNC_PATH, body)
                .await
            {
                Ok(theirs) => keep(&theirs["list"]),
                Err(e) => {
                    tracing::warn!(node = %node.id, error = %e, "cluster: a node did not answer a VideoRoom list");
                }
            }
        }
        reply["list"] = list.into();
        reply
    }
}

/// `node`'s answer to a synchronous request, or the error saying it did not answer.
async fn ask(cluster: &Cluster, node: &NodeRow, body: &Map<String, Value>) -> Value {
    cluster
        .post_json::<_, Value>(&node.url, SYNC_PATH, body)
        .await
        .unwrap_or_else(|e| {
            VrError::other(format!(
                "cluster node '{}' that has this room did not answer: {e}",
                node.id
            ))
            .data()
        })
}

/// The route the other nodes' synchronous requests come in by (signed calls only).
pub fn routes(vr: VideoRoom) -> axum::Router {
    axum::Router::new()
        .route(SYNC_PATH, axum::routing::post(serve))
        .route_layer(axum::middleware::from_fn(crate::cluster::require_signed))
        .with_state(vr)
}

async fn serve(
    axum::extract::State(vr): axum::extract::State<VideoRoom>,
    axum::Json(body): axum::Json<Map<String, Value>>,
) -> axum::Json<Value> {
    let request = body
        .get("request")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let reply = if SYNC.contains(&request.as_str()) {
        vr.sync(&request, &Body(&body)).await
    } else {
        Err(VrError::unknown(&request))
    };
    axum::Json(reply.unwrap_or_else(|e| e.data()))
}

/// A handle's counterpart on the node that owns its room: requests go there, its events
/// come back. Dropping it ends the counterpart (its session on the owner is destroyed).
pub struct Remote {
    requests: mpsc::Sender<Value>,
    events: mpsc::Receiver<Value>,
    /// The owner's name, for logs.
    pub node: String,
}

impl Remote {
    /// Opens a Janus session and a VideoRoom handle on `node`.
    pub async fn open(cluster: &Cluster, node: &NodeRow) -> Result<Self, String> {
        let protocol = [("sec-websocket-protocol", "janus-protocol")];
        let mut socket = cluster.socket(node, "/janus", &protocol).await?;
        let made = async {
            let session = setup(
                &mut socket,
                json!({ "janus": "create", "transaction": "cluster-create" }),
            )
            .await?;
            let handle = setup(
                &mut socket,
                json!({ "janus": "attach", "session_id": session, "plugin": VIDEOROOM,
                        "transaction": "cluster-attach" }),
            )
            .await?;
            Ok::<_, String>((session, handle))
        };
        let (session, handle) = tokio::time::timeout(SETUP_TIMEOUT, made)
            .await
            .map_err(|_| format!("node '{}' did not open a handle in time", node.id))??;
        let (requests, to_owner) = mpsc::channel(super::handle::HANDLE_JOBS);
        let (from_owner, events) = mpsc::channel(REMOTE_EVENTS);
        tokio::spawn(pump(socket, session, handle, to_owner, from_owner));
        Ok(Self {
            requests,
            events,
            node: node.id.clone(),
        })
    }

    /// Passes a request of the handle on: `janus` and its own elements (the session and
    /// handle ids are the owner's, added on the way).
    pub async fn send(&self, request: Value) -> bool {
        self.requests.send(request).await.is_ok()
    }

    /// The owner's next event or answer for the handle; `None` once the owner is gone.
    pub async fn next(&mut self) -> Option<Value> {
        self.events.recv().await
    }
}

/// Sends one set-up request and waits for its answer: the id it made.
async fn setup(socket: &mut NodeSocket, request: Value) -> Result<u64, String> {
    let transaction = request["transaction"].clone();
    socket
        .send(Message::text(request.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame.map_err(|e| e.to_string())? else {
            continue;
        };
        let answer: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
        if answer["transaction"] != transaction {
            continue;
        }
        return match answer["data"]["id"].as_u64() {
            Some(id) if answer["janus"] == "success" => Ok(id),
            _ => Err(format!("the owner refused: {}", answer["error"])),
        };
    }
    Err("the owner closed the socket".into())
}

/// Carries a remote handle's requests to the owner and the owner's frames back, keeping
/// its session there alive, until either side ends.
async fn pump(
    socket: NodeSocket,
    session: u64,
    handle: u64,
    mut requests: mpsc::Receiver<Value>,
    events: mpsc::Sender<Value>,
) {
    let (mut out, mut input) = socket.split();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        let request = tokio::select! {
            request = requests.recv() => match request {
                Some(mut r) => {
                    r["session_id"] = session.into();
                    r["handle_id"] = handle.into();
                    r
                }
                // The handle ended: so does its counterpart.
                None => {
                    let end = json!({ "janus": "destroy", "session_id": session,
                                      "transaction": "cluster-destroy" });
                    let _ = out.send(Message::text(end.to_string())).await;
                    let _ = out.close().await;
                    return;
                }
            },
            frame = input.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    // The owner ended the session (it missed keep-alives): the handle has
                    // no counterpart any more.
                    if event["janus"] == "timeout" || events.send(event).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = keepalive.tick() => json!({ "janus": "keepalive", "session_id": session,
                                            "transaction": "cluster-keepalive" }),
        };
        if out.send(Message::text(request.to_string())).await.is_err() {
            return;
        }
    }
}

/// What the owner sent for a remote handle, as the client of this node gets it: under the
/// client's session and handle ids; `None` for what only answered this node (acks, the
/// answers to its own requests). A `success` carrying plugin data answers an asynchronous
/// request: the client, acknowledged already, gets it as the event it waits for.
pub fn for_client(mut event: Value, session: u64, handle: u64) -> Option<Value> {
    let ours = event["transaction"]
        .as_str()
        .is_some_and(|t| t.starts_with(OWN));
    match event["janus"].as_str() {
        Some("ack") => return None,
        Some("success") if ours || event.get("plugindata").is_none() => return None,
        Some("success") => event["janus"] = "event".into(),
        Some("error") if ours => {
            tracing::debug!(error = %event["error"], "cluster: the owner refused a request of its own");
            return None;
        }
        _ => {}
    }
    event["session_id"] = session.into();
    if event.get("sender").is_some() {
        event["sender"] = handle.into();
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::for_client;
    use serde_json::json;

    #[test]
    fn owner_events_are_renamed_for_the_client() {
        // Acks and this node's own answers stay here.
        assert_eq!(
            for_client(json!({"janus": "ack", "transaction": "t1"}), 1, 2),
            None
        );
        let own = json!({"janus": "success", "transaction": "cluster-keepalive", "session_id": 9});
        assert_eq!(for_client(own, 1, 2), None);
        assert_eq!(
            for_client(
                json!({"janus": "success", "transaction": "t2", "session_id": 9}),
                1,
                2
            ),
            None
        );
        // An event under the client's ids, its transaction kept.
        let event = json!({"janus": "event", "session_id": 9, "sender": 8, "transaction": "t3",
                           "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "joined"}},
                           "jsep": {"type": "answer", "sdp": "v=0"}});
        let got = for_client(event, 1, 2).expect("for the client");
        assert_eq!(
            (got["session_id"].as_u64(), got["sender"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(got["transaction"], "t3");
        assert_eq!(got["jsep"]["type"], "answer");
        // A plugin answer given at once becomes the event the client waits for.
        let now = json!({"janus": "success", "session_id": 9, "sender": 8, "transaction": "t4",
                         "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"error_code": 426}}});
        assert_eq!(for_client(now, 1, 2).expect("an event")["janus"], "event");
        // Core events (no transaction) pass renamed.
        let up = json!({"janus": "webrtcup", "session_id": 9, "sender": 8});
        assert_eq!(for_client(up, 1, 2).expect("passed")["sender"], 2);
        // An error of one of this node's own requests stays here; the client's passes.
        let mine =
            json!({"janus": "error", "transaction": "cluster-hangup", "error": {"code": 458}});
        assert_eq!(for_client(mine, 1, 2), None);
        let theirs =
            json!({"janus": "error", "session_id": 9, "transaction": "t5", "error": {"code": 458}});
        assert_eq!(for_client(theirs, 1, 2).expect("passed")["session_id"], 1);
    }
}
