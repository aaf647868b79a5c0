//! The Janus door: the Janus core API over HTTP at `/janus` on the main port (and Janus's
//! own ports when free) and over WebSocket (`janus-protocol`, by upgrading `GET /janus`),
//! with sessions, handles, the long poll, the session timeout and Janus's error codes, and
//! the VideoRoom plugin over the call layer. In a cluster, VideoRoom requests reach the node
//! that owns their room (`videoroom/cluster.rs`); sessions and handles stay where the client
//! made them.

mod api;
mod auth;
mod error;
mod http;
mod videoroom;
mod ws;

pub use auth::Auth;
pub use error::JanusError;

/// The name of the side listener of the Janus API over HTTP.
pub const HTTP_SIDE: &str = "janus-http";
/// The name of the side listener of the Janus API over WebSocket.
pub const WS_SIDE: &str = "janus-ws";
/// Janus's HTTP port, taken when free unless configured.
pub const HTTP_PORT: u16 = 8088;
/// Janus's WebSocket port, taken when free unless configured.
pub const WS_PORT: u16 = 8188;

use super::{Door, DoorEvents, Served};
use crate::room::Role;
use std::time::Duration;

/// The Janus door, as `lib.rs` plugs it in.
pub struct Janus {
    session_timeout: Duration,
    auth: Auth,
    slowlink: u32,
    /// Set when the node joins a cluster.
    cluster: std::sync::Arc<std::sync::OnceLock<crate::cluster::Cluster>>,
}

impl Janus {
    /// The door whose sessions expire after `session_timeout` without a request (zero:
    /// never), as Janus's `session_timeout`, whose requests pass `auth`, and whose peer
    /// connections losing `slowlink` packets in a second say so (0: never).
    pub fn new(session_timeout: Duration, auth: Auth, slowlink: u32) -> Self {
        Self {
            session_timeout,
            auth,
            slowlink,
            cluster: std::sync::Arc::default(),
        }
    }
}

impl Door for Janus {
    fn events(&self) -> Option<DoorEvents> {
        None
    }

    fn recording_notice_roles(&self) -> Vec<Role> {
        Vec::new()
    }

    fn join_cluster(&self, cluster: &crate::cluster::Cluster) {
        let _ = self.cluster.set(cluster.clone());
    }

    fn routes(&self, served: Served) -> super::Routes {
        let plugin =
            videoroom::VideoRoom::new(served.calls.clone(), self.slowlink, self.cluster.clone());
        let sessions = api::Sessions::new(self.session_timeout)
            .with_auth(self.auth.clone())
            .with_plugin(plugin.clone());
        let watched = sessions.clone();
        let mut stopping = served.stopping.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(api::WATCHDOG_PERIOD);
            loop {
                tokio::select! {
                    _ = ticks.tick() => watched.expire(std::time::Instant::now()),
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        });
        let state = http::HttpState {
            sessions: sessions.clone(),
            stopping: served.stopping,
        };
        super::Routes {
            main: http::router(state.clone()).merge(videoroom::cluster_routes(plugin)),
            side: vec![
                (HTTP_SIDE, http::router(state)),
                (WS_SIDE, ws::any_path(sessions)),
            ],
        }
    }
}
