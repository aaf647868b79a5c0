//! Doors: each speaks one outside protocol and translates it into the call layer
//! ([`crate::calls`]). A door owns its wire types, its rendering of events and its error
//! table; it decides nothing the call layer decides.
//!
//! What a door hands the server ([`Door`]): its routes over the call layer, and, when it has
//! events on, its event renderers (room changes into outbox events, recording status events,
//! the payloads the delivery engine sends). `lib.rs` builds the server from the doors.

pub mod janus;
pub mod openvidu;

use crate::calls::Calls;
use crate::calls::recording::RecordingEvents;
use crate::delivery::Payloads;
use crate::recording::Recorder;
use crate::room::Role;
use crate::rooms::Observer;
use std::sync::Arc;

/// How a door renders events, when it has webhooks or a CDR on.
#[derive(Clone)]
pub struct DoorEvents {
    /// Room changes into outbox events.
    pub observer: Arc<dyn Observer>,
    /// Recording status changes into outbox events.
    pub recording: Arc<dyn RecordingEvents>,
    /// The payloads the delivery engine sends and writes.
    pub payloads: Arc<dyn Payloads>,
}

/// What the server gives every door's routes.
#[derive(Clone)]
pub struct Served {
    /// The call layer.
    pub calls: Calls,
    /// The recorder, when recording is on.
    pub recorder: Option<Recorder>,
    /// Turns true when the server shuts down (long-lived connections then close).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// One front door of the server.
pub trait Door: Send + Sync {
    /// Its event renderers; `None` when it sends no events.
    fn events(&self) -> Option<DoorEvents>;
    /// The roles of the participants told when a recording of their room starts or stops.
    fn recording_notice_roles(&self) -> Vec<Role>;
    /// Its routes on the main port, and on the side ports it has (by the names of
    /// [`crate::Listeners::side`]).
    fn routes(&self, served: Served) -> Routes;
}

/// A door's routes.
pub struct Routes {
    /// Served on the main port, merged with the other doors' routes.
    pub main: axum::Router,
    /// Served alone on a side port, by the side listener's name.
    pub side: Vec<(&'static str, axum::Router)>,
}

impl From<axum::Router> for Routes {
    fn from(main: axum::Router) -> Self {
        Self {
            main,
            side: Vec::new(),
        }
    }
}
