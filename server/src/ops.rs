//! Operations endpoints, beside the doors and outside their error rendering: `/ready` for
//! load balancers (no credentials).

use crate::rooms::Rooms;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET /ready`: 200 `{"status":"READY"}`, or 503 `{"status":"DRAINING"}` once the server
/// is stopping (a load balancer then sends it nothing new).
pub fn router(rooms: Rooms) -> axum::Router {
    axum::Router::new().route(
        "/ready",
        axum::routing::get(move || {
            let draining = rooms.draining();
            async move { ready(draining) }
        }),
    )
}

fn ready(draining: bool) -> Response {
    if draining {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "DRAINING" })),
        )
            .into_response()
    } else {
        Json(json!({ "status": "READY" })).into_response()
    }
}
