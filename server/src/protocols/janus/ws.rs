//! The Janus API over WebSocket (subprotocol `janus-protocol`): the same messages as over
//! HTTP, addressed by `session_id`/`handle_id` in the body; the sessions a socket creates are
//! bound to it, their events pushed on it, and destroyed when it closes.

use super::api::{Address, Sessions};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;

/// The subprotocol Janus's WebSocket transport speaks.
pub const SUBPROTOCOL: &str = "janus-protocol";

/// Events queued to one socket. Senders: its sessions. Receiver: the socket task. When
/// full, events are dropped (see `Session::push`); replies are sent directly.
pub const SOCKET_EVENTS: usize = 1024;

/// The largest message accepted (SDPs are a few KiB).
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Whether the client offered `janus-protocol`.
pub fn offers_subprotocol(headers: &HeaderMap) -> bool {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// The upgrade: refused without the subprotocol, as Janus refuses it. `trusted`: another
/// node of the cluster, whose requests pass without Janus credentials.
pub fn upgrade(
    sessions: Sessions,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
    trusted: bool,
) -> Response {
    if !offers_subprotocol(headers) {
        return (
            StatusCode::BAD_REQUEST,
            "the janus-protocol subprotocol is required",
        )
            .into_response();
    }
    ws.protocols([SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| connection(sessions, socket, trusted))
}

/// The WebSocket side port: an upgrade on any path, as Janus's WebSocket transport accepts.
pub fn any_path(sessions: Sessions) -> axum::Router {
    axum::Router::new()
        .fallback(
            |axum::extract::State(sessions): axum::extract::State<Sessions>,
             headers: HeaderMap,
             ws: Result<
                WebSocketUpgrade,
                axum::extract::ws::rejection::WebSocketUpgradeRejection,
            >| async move {
                match ws {
                    Ok(ws) => upgrade(sessions, &headers, ws, false),
                    Err(e) => e.into_response(),
                }
            },
        )
        .with_state(sessions)
}

async fn connection(sessions: Sessions, socket: WebSocket, trusted: bool) {
    let (mut out, mut input) = socket.split();
    let (events_tx, mut events) = mpsc::channel::<Value>(SOCKET_EVENTS);
    let mut bound: Vec<u64> = Vec::new();
    loop {
        tokio::select! {
            frame = input.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                // Several JSON objects may come in one message; each is one request.
                let mut replies = Vec::new();
                let mut rest = text.as_str().trim();
                while !rest.is_empty() {
                    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                    let (one, used, claims) = match stream.next() {
                        Some(Ok(v)) => (v.to_string(), stream.byte_offset(), v["janus"] == "claim"),
                        // Not JSON: the whole rest is answered as one bad request.
                        _ => (rest.to_owned(), rest.len(), false),
                    };
                    let address = Address { over_socket: true, trusted, ..Address::default() };
                    let reply = sessions.request(address, one.as_bytes()).await;
                    // A session this socket creates or claims is bound to it.
                    let made = reply.get("session_id").is_none().then(|| reply["data"]["id"].as_u64());
                    let claimed = claims.then(|| reply["session_id"].as_u64());
                    if reply["janus"] == "success"
                        && let Some(id) = made.or(claimed).flatten()
                    {
                        sessions.bind(id, events_tx.clone());
                        if !bound.contains(&id) {
                            bound.push(id);
                        }
                    }
                    replies.push(reply);
                    rest = rest[used..].trim_start();
                }
                for reply in replies {
                    if out.send(Message::Text(reply.to_string().into())).await.is_err() {
                        sessions.drop_all(&bound);
                        return;
                    }
                }
            }
            Some(event) = events.recv() => {
                if out.send(Message::Text(event.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    // No reclaim window (Janus's default): the socket's sessions end with it.
    sessions.drop_all(&bound);
}
