//! Doors: each speaks one outside protocol and translates it into the call layer
//! ([`crate::calls`]). A door owns its wire types, its rendering of events and its error
//! table; it decides nothing the call layer decides.
//!
//! What a door hands the server ([`Door`]): its routes over the call layer, and, when it has
//! events on, its event renderers (room changes into outbox events, recording status events,
//! the payloads the delivery engine sends). `lib.rs` builds the server from the doors.

pub mod janus;
pub mod opentok;
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
    /// The brute-force guard every credential check reports to.
    pub guard: crate::guard::AuthGuard,
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
    /// Which node of a cluster serves a request of this door ([`Locate`]), from its path
    /// and query; `body` is `None` until the door asked for it with [`Locate::NeedBody`].
    /// Default: this node.
    fn locate(&self, _method: &axum::http::Method, _path: &str, _body: Option<&[u8]>) -> Locate {
        Locate::Here
    }
    /// The node joined `cluster` (after [`Door::routes`]): for a door that routes inside
    /// its own protocol. Default: nothing.
    fn join_cluster(&self, _cluster: &crate::cluster::Cluster) {}
}

pub use crate::cluster::Locate;

/// The room a JSON body names in `field` ([`Locate::NeedBody`] until the body is read; this
/// node when it names none: the door answers the error).
pub fn room_in_body(body: Option<&[u8]>, field: &str) -> Locate {
    let Some(body) = body else {
        return Locate::NeedBody;
    };
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(field).and_then(|s| s.as_str()).map(str::to_owned))
        .map_or(Locate::Here, Locate::Room)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's method):
/// the dates doors write (CDR file names, OpenTok's date texts).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The request with runs of `/` in its path made one (`//v2/project/...` from an SDK whose
/// base URL ends in a slash), applied before routing for every door.
pub fn tidy_path<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let uri = req.uri();
    if !uri.path().contains("//") {
        return req;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let mut parts = uri.clone().into_parts();
    let tidy = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    if let Ok(pq) = tidy.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = new;
        }
    }
    req
}

/// The server's routes behind [`tidy_path`], for requests with bodies of type `B`.
pub type Tidied<B> =
    tower::util::MapRequest<axum::Router, fn(axum::http::Request<B>) -> axum::http::Request<B>>;

/// `app` behind [`tidy_path`].
pub fn tidied<B>(app: axum::Router) -> Tidied<B> {
    tower::Layer::layer(
        &tower::util::MapRequestLayer::new(tidy_path::<B> as fn(_) -> _),
        app,
    )
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
