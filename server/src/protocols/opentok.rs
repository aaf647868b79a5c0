//! The OpenTok / Vonage Video door: the server REST API that the OpenTok and Vonage server
//! SDKs call (`/session/create` and `/v2/project/{key}/…`: sessions, archives, signals,
//! moderation, streams), with their authentication, and the check of the client tokens those
//! SDKs mint locally, which the OpenVidu join accepts for the sessions this door created. A
//! browser of such a session runs openvidu-browser; the backend keeps its OpenTok SDK.
//!
//! Invariant: an OpenTok session is an ordinary room (persistent, as OpenTok sessions never
//! end) whose options carry the project in `door_settings["opentok"]`; every OpenTok word
//! stays in this module, the call layer and the rooms learn none.

mod archives;
mod credentials;
mod error;
mod ids;
mod rest;

pub use credentials::{AuthError, ClientToken, Projects, TokenCheck};
pub use error::ApiError;
pub use ids::{new_session_id, session_project};

use super::{Door, DoorEvents, Locate, Served};
use crate::config::Settled;
use crate::room::{Role, Room};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The door's name in room and participant settings.
pub const DOOR: &str = "opentok";

/// What a room created through this door keeps (`door_settings["opentok"]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// The project (API key or application id) that created it.
    pub project: String,
    /// Layout classes set through the API, by stream id.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub layout: HashMap<String, Vec<String>>,
}

impl RoomSettings {
    /// The settings of `room`, when this door created it.
    pub fn of(room: &Room) -> Option<Self> {
        room.options()
            .door_settings
            .get(DOOR)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// As a room's door settings entry.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What a connection admitted with an OpenTok token keeps (`door_data["opentok"]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionData {
    /// The initial layout classes of its streams (`initial_layout_class_list`).
    #[serde(default)]
    pub layout: Vec<String>,
}

impl ConnectionData {
    /// As a participant's door data.
    pub fn into_door_data(self) -> BTreeMap<String, serde_json::Value> {
        let mut m = BTreeMap::new();
        // Always there, even empty: it also says the participant came in through this door.
        m.insert(
            DOOR.to_owned(),
            serde_json::to_value(self).unwrap_or_default(),
        );
        m
    }

    /// The data of `p`, when it came in with an OpenTok token.
    pub fn of(p: &crate::room::Participant) -> Self {
        p.door_data
            .get(DOOR)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}

/// The OpenTok door, as `lib.rs` plugs it in.
pub struct OpenTok {
    projects: Arc<Projects>,
}

impl OpenTok {
    /// The door for the projects and applications of the settled configuration.
    pub fn new(settled: &Settled) -> Self {
        Self {
            projects: Arc::new(Projects::new(
                &settled.opentok_projects,
                &settled.vonage_applications,
            )),
        }
    }
}

impl Door for OpenTok {
    fn events(&self) -> Option<DoorEvents> {
        None
    }

    fn recording_notice_roles(&self) -> Vec<Role> {
        Vec::new()
    }

    fn locate(&self, method: &axum::http::Method, path: &str, body: Option<&[u8]>) -> Locate {
        use axum::http::Method;
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if method == Method::POST && path == "/session/create" {
            return Locate::Create;
        }
        let Some(rest) = path.strip_prefix("/v2/project/") else {
            return Locate::Here;
        };
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').skip(1).collect();
        match (method, segments.as_slice()) {
            (_, ["session", sid, ..]) => Locate::Room((*sid).to_owned()),
            (&Method::POST, ["archive"]) => super::room_in_body(body, "sessionId"),
            (&Method::GET, ["archive"]) => Locate::GatherPage(crate::cluster::Paging {
                offset: "offset",
                count: "count",
                default_count: archives::DEFAULT_COUNT,
                items: "items",
                newest_first_by: "createdAt",
            }),
            (_, ["archive", ..]) => Locate::Search,
            _ => Locate::Here,
        }
    }

    fn routes(&self, served: Served) -> super::Routes {
        served
            .calls
            .accept_credentials(Arc::new(TokenCheck(self.projects.clone())));
        super::Routes::from(rest::router(rest::Api {
            calls: served.calls,
            recorder: served.recorder,
            projects: self.projects.clone(),
            guard: served.guard,
        }))
    }
}
