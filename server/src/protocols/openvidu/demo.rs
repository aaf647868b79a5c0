//! The demo page at `/`: join a room with a name, camera and microphone, through the
//! unmodified openvidu-browser (embedded at build time from the npm package). Its tokens come
//! from `POST /camerata/dev/token`, served only when `CAMERATA_DEV_TOKENS` is on (by default
//! on loopback addresses only).

use super::body::Body;
use super::error::RestError;
use super::rest::{ConnectionRequest, RestState, grant_connection, id_chars_ok, rooms_error};
use crate::room::{Role, RoomId, RoomOptions};
use crate::rooms::{RoomsError, now_ms};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

const PAGE: &str = include_str!("../../../demo/index.html");
const BUNDLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openvidu-browser.js"));

/// `GET /`: the demo page.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /openvidu-browser.js`: the browser SDK the page uses.
pub async fn bundle() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/javascript; charset=utf-8",
        )],
        BUNDLE,
    )
        .into_response()
}

/// `POST /camerata/dev/token` `{room, name}`: creates the room when needed and a PUBLISHER
/// connection in it; answers `{token}`.
pub async fn dev_token(State(s): State<RestState>, body: Body) -> Result<Json<Value>, RestError> {
    let f = body.required()?;
    let room = f
        .str("room")?
        .ok_or(RestError::MissingField("room"))?
        .to_owned();
    if !id_chars_ok(&room) || room.len() > 100 {
        return Err(RestError::invalid(
            "room",
            "1 to 100 letters, digits, '_' or '-'",
        ));
    }
    let name = f.str("name")?.ok_or(RestError::MissingField("name"))?;
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(RestError::invalid("name", "1 to 100 characters"));
    }
    let options = RoomOptions {
        custom_id: room.clone(),
        ..RoomOptions::default()
    };
    match s
        .rooms()
        .create(RoomId::new(room.as_str()), options, now_ms())
        .await
    {
        Ok(_) | Err(RoomsError::RoomExists(_)) => {}
        Err(e) => return Err(rooms_error(&room, e)),
    }
    let handle = s
        .rooms()
        .get(&RoomId::new(room.as_str()))
        .ok_or_else(|| RestError::SessionNotFound(room.clone()))?;
    let participant = grant_connection(
        &s,
        &handle,
        ConnectionRequest {
            data: String::new(),
            record: true,
            role: Role::Publisher,
            limits: None,
            ice_servers: None,
        },
    )
    .await?;
    Ok(Json(json!({ "token": participant.grant })))
}
