//! The OpenVidu 2.x adapter: the REST API (`/openvidu/api`, and the legacy paths) with its
//! JSON shapes, identifiers, token URLs and error table; the JSON-RPC signaling at
//! `/openvidu`; the client half the Node SDK uses; the demo page; webhook events and CDR.

mod body;
pub mod client;
mod demo;
mod error;
pub mod recordings;
mod rest;
mod rpc;
pub mod webhook;
mod wire;

pub use error::RestError;
pub use rest::{RestState, router};
pub use webhook::OpenViduEvents;
pub use wire::WireEnum;

use super::{Door, DoorEvents, Locate, Served};
use crate::config::Settled;
use crate::room::Role;
use std::sync::Arc;

/// The OpenVidu door, as `lib.rs` plugs it in.
pub struct OpenVidu {
    settled: Settled,
    events: Option<Arc<OpenViduEvents>>,
}

impl OpenVidu {
    /// The door for the settled configuration (its webhook and CDR settings decide whether it
    /// renders events).
    pub fn new(settled: Settled) -> Self {
        let events = OpenViduEvents::renderer(&settled);
        Self { settled, events }
    }
}

impl Door for OpenVidu {
    fn events(&self) -> Option<DoorEvents> {
        self.events.as_ref().map(|e| DoorEvents {
            observer: e.clone(),
            recording: e.clone(),
            payloads: e.clone(),
        })
    }

    /// `OPENVIDU_RECORDING_NOTIFICATION`: `none`, `moderator`, `all`, or (the default)
    /// `publisher_moderator`.
    fn recording_notice_roles(&self) -> Vec<Role> {
        match self.settled.config.recording_notification.as_str() {
            "none" => vec![],
            "moderator" => vec![Role::Moderator],
            "all" => vec![
                Role::Subscriber,
                Role::Publisher,
                Role::PublisherOnly,
                Role::Moderator,
            ],
            _ => vec![Role::Publisher, Role::PublisherOnly, Role::Moderator],
        }
    }

    fn locate(&self, method: &axum::http::Method, path: &str, body: Option<&[u8]>) -> Locate {
        use axum::http::Method;
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        // The signaling socket names its session in its query (openvidu-browser adds it).
        if path == "/openvidu" {
            return form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "sessionId")
                .map_or(Locate::Here, |(_, v)| Locate::Room(v.into_owned()));
        }
        if path.starts_with("/openvidu/recordings/") {
            return Locate::Search;
        }
        let Some(rest) = path
            .strip_prefix("/openvidu/api/")
            .or_else(|| path.strip_prefix("/api/"))
        else {
            return Locate::Here;
        };
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::POST, ["sessions"]) => Locate::Create,
            (&Method::GET, ["sessions"] | ["recordings"]) => Locate::Gather,
            (_, ["sessions", id, ..]) => Locate::Room((*id).to_owned()),
            (&Method::POST, ["tokens"] | ["signal"] | ["recordings", "start"]) => {
                super::room_in_body(body, "session")
            }
            (_, ["recordings", ..]) => Locate::Search,
            _ => Locate::Here,
        }
    }

    fn routes(&self, served: Served) -> super::Routes {
        super::Routes::from(router(RestState::new(
            served.calls,
            self.settled.clone(),
            served.recorder,
            served.stopping,
            served.guard,
        )))
    }
}
