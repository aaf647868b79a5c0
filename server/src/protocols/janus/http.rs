//! The Janus API over plain HTTP at `/janus`: root requests, session and handle requests by
//! path, the long poll for events, `GET /janus/info`, and CORS preflights, with the status
//! codes Janus 1.1.2 gives (Janus-level errors are `200` with an `error` body; only transport
//! failures use other statuses).

use super::api::{Address, Sessions};
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// How long an idle long poll is held before it is answered with a keepalive.
pub const LONG_POLL_HOLD: Duration = Duration::from_secs(30);

/// What the routes share.
#[derive(Clone)]
pub struct HttpState {
    /// The sessions.
    pub sessions: Sessions,
    /// Turns true when the server stops (held long polls then answer at once).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// The routes under `/janus`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/janus", get(get_root).post(root).options(preflight))
        .route("/janus/info", get(info).options(preflight))
        .route(
            "/janus/{session}",
            get(long_poll).post(on_session).options(preflight),
        )
        .route(
            "/janus/{session}/{handle}",
            get(to_session).post(on_handle).options(preflight),
        )
        .with_state(state)
}

/// A JSON reply with Janus's headers.
fn reply(v: &Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        v.to_string(),
    )
        .into_response()
}

/// A path id: a positive number, or nothing Janus would serve (404, empty).
fn path_id(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|id| *id > 0)
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn root(State(st): State<HttpState>, body: Bytes) -> Response {
    reply(&st.sessions.request(Address::default(), &body).await)
}

/// `GET /janus`: the WebSocket transport when it is an upgrade (so one port can serve
/// everything behind a proxy), else Janus's 450.
async fn get_root(
    State(st): State<HttpState>,
    signed: Option<axum::Extension<crate::cluster::Signed>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        // A cluster node's socket for a handle whose client it checked already.
        Ok(ws) => super::ws::upgrade(st.sessions.clone(), &headers, ws, signed.is_some()),
        Err(_) => reply(&json!({ "janus": "error",
            "error": { "code": 450, "reason": "Unsupported method GET on /janus" } })),
    }
}

async fn info(State(st): State<HttpState>) -> Response {
    use rand::distr::{Alphanumeric, SampleString};
    let transaction = Alphanumeric.sample_string(&mut rand::rng(), 11);
    let body = json!({ "janus": "info", "transaction": transaction }).to_string();
    reply(
        &st.sessions
            .request(Address::default(), body.as_bytes())
            .await,
    )
}

async fn on_session(
    State(st): State<HttpState>,
    Path(session): Path<String>,
    body: Bytes,
) -> Response {
    let Some(session) = path_id(&session) else {
        return not_found();
    };
    let address = Address {
        session: Some(session),
        handle: None,
        over_socket: false,
        ..Address::default()
    };
    reply(&st.sessions.request(address, &body).await)
}

async fn on_handle(
    State(st): State<HttpState>,
    Path((session, handle)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (Some(session), Some(handle)) = (path_id(&session), path_id(&handle)) else {
        return not_found();
    };
    let address = Address {
        session: Some(session),
        handle: Some(handle),
        over_socket: false,
        ..Address::default()
    };
    reply(&st.sessions.request(address, &body).await)
}

/// `GET /janus/{S}/{H}` is no long poll: a keepalive for the session, then a redirect to
/// the session's own.
async fn to_session(
    State(st): State<HttpState>,
    Path((session, _)): Path<(String, String)>,
) -> Response {
    let Some(id) = path_id(&session) else {
        return not_found();
    };
    if let Some(s) = st.sessions.get(id) {
        s.touch();
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("/janus/{id}"))],
    )
        .into_response()
}

/// `GET /janus/{S}?maxev=N`: the session's events as they come; a keepalive after
/// [`LONG_POLL_HOLD`] with none.
async fn long_poll(
    State(mut st): State<HttpState>,
    Path(session): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // A long poll carries its credentials in the query; without them, an empty 403.
    let given = |k: &str| q.get(k).map(String::as_str);
    let now = super::auth::unix_now();
    if let Err(e) = st
        .sessions
        .auth()
        .check(given("apisecret"), given("token"), now, None)
    {
        tracing::debug!(error = %e.reason(), "Janus long poll refused");
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(session) = path_id(&session).and_then(|id| st.sessions.get(id)) else {
        return not_found();
    };
    session.touch();
    let many = q
        .get("maxev")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|n| *n > 1)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let answer = |events: Vec<Value>| match many {
        Some(_) => reply(&Value::Array(events)),
        None => reply(events.first().unwrap_or(&Value::Null)),
    };
    let deadline = tokio::time::Instant::now() + LONG_POLL_HOLD;
    loop {
        let events = session.take(many.unwrap_or(1));
        if !events.is_empty() {
            return answer(events);
        }
        tokio::select! {
            () = session.arrived.notified() => {}
            () = tokio::time::sleep_until(deadline) => break,
            _ = st.stopping.wait_for(|s| *s) => break,
        }
    }
    answer(vec![json!({ "janus": "keepalive" })])
}

/// CORS preflight: allowed, whatever is asked.
async fn preflight(headers: HeaderMap) -> Response {
    let echo = |name: header::HeaderName| {
        headers
            .get(name)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("*"))
    };
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        echo(header::ACCESS_CONTROL_REQUEST_METHOD),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        echo(header::ACCESS_CONTROL_REQUEST_HEADERS),
    );
    r
}
