//! The Janus core API, whatever the transport: the request envelope, sessions and handles
//! with their ids and inactivity timeout, the verbs (`info`, `ping`, `create`, `attach`,
//! `keepalive`, `destroy`, `detach`, `hangup`, `trickle`, `message`), and each session's
//! queue of events for the long poll.
//!
//! Lock rule: the session map and each session's state are behind short locks, held for a
//! map call or a queue push, never across `.await`.

use super::auth::{Auth, unix_now};
use super::error::JanusError;
use super::videoroom::{Job, Outcome, VideoRoom};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// The only plugin served.
pub const VIDEOROOM: &str = "janus.plugin.videoroom";

/// Events kept for one session until its long poll takes them. Sender: the session's
/// requests and the watchdog. Receiver: the long poll. When full, the oldest event is
/// dropped (a client that stopped polling loses what it did not fetch, as it would lose
/// its session at the timeout).
pub const SESSION_EVENTS: usize = 1024;

/// How often the watchdog looks for sessions that timed out (Janus: 2 s).
pub const WATCHDOG_PERIOD: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is one map call or one queue change.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A random id of 53 bits (it survives a JavaScript number), never 0.
fn random_id() -> u64 {
    loop {
        let id = rand::random::<u64>() & ((1 << 53) - 1);
        if id != 0 {
            return id;
        }
    }
}

/// One Janus session.
pub struct Session {
    /// Its id.
    pub id: u64,
    last_activity: Mutex<Instant>,
    /// Its handles (attachments to the VideoRoom plugin), each with its task's queue (none
    /// when the sessions run without the plugin, as in unit tests).
    handles: Mutex<HashMap<u64, Option<mpsc::Sender<Job>>>>,
    events: Mutex<VecDeque<Value>>,
    /// Woken when an event is queued.
    pub arrived: Notify,
    /// The WebSocket the session is bound to: its events go there instead of the queue.
    socket: Mutex<Option<mpsc::Sender<Value>>>,
}

impl Session {
    /// Counts as activity: the inactivity timer starts again.
    pub fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    /// Ends the session's handles: their tasks leave what they joined.
    fn end(&self) {
        lock(&self.handles).clear();
    }

    /// Queues an event for the session's long poll, or sends it on its WebSocket.
    pub fn push(&self, event: Value) {
        if let Some(socket) = lock(&self.socket).as_ref() {
            // A socket that far behind loses the event, as a poller that stopped polling
            // does; it still gets the replies to its requests.
            let _ = socket.try_send(event);
            return;
        }
        let mut q = lock(&self.events);
        if q.len() == SESSION_EVENTS {
            q.pop_front();
        }
        q.push_back(event);
        drop(q);
        self.arrived.notify_one();
    }

    /// Up to `n` queued events, oldest first.
    pub fn take(&self, n: usize) -> Vec<Value> {
        let mut q = lock(&self.events);
        let n = n.min(q.len());
        q.drain(..n).collect()
    }
}

/// Every live session (cheap to clone).
#[derive(Clone)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<u64, Arc<Session>>>>,
    timeout: Duration,
    plugin: Option<VideoRoom>,
    auth: Auth,
}

/// Where a request is addressed: from the HTTP path, or from the body alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Address {
    /// The session named by the path.
    pub session: Option<u64>,
    /// The handle named by the path.
    pub handle: Option<u64>,
    /// The request came over a WebSocket (which binds the sessions it creates or claims);
    /// else over HTTP.
    pub over_socket: bool,
    /// It came from another node of the cluster (a signed socket): no Janus credentials
    /// are asked, the node checked its client's.
    pub trusted: bool,
}

/// The reply to one request.
type Reply = Result<Value, JanusError>;

/// An optional id element: absent, or 0 (taken as absent, as Janus does); a negative id is
/// printed as the unsigned 64-bit number Janus prints.
fn id_element(o: &Map<String, Value>, key: &'static str) -> Result<Option<u64>, JanusError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(0), _) => Ok(None),
            (Some(id), _) => Ok(Some(id)),
            (None, Some(negative)) => Ok(Some(negative as u64)),
            _ => Err(JanusError::ElementType(key, "an integer")),
        },
        Some(_) => Err(JanusError::ElementType(key, "an integer")),
    }
}

fn string_element<'a>(o: &'a Map<String, Value>, key: &'static str) -> Result<&'a str, JanusError> {
    match o.get(key) {
        None => Err(JanusError::Missing(key)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(JanusError::ElementType(key, "a string")),
    }
}

/// `server_info`: what janus.js and janode read, with plausible values for the rest.
fn server_info(transaction: &str, timeout: Duration, auth: &Auth) -> Value {
    json!({
        "janus": "server_info",
        "transaction": transaction,
        "name": "Janus WebRTC Server",
        "version": 1102,
        "version_string": "1.1.2",
        "author": "Camerata",
        "commit-hash": "not-a-janus-build",
        "compile-time": "",
        "log-to-stdout": true,
        "log-to-file": false,
        "data_channels": false,
        "accepting-new-sessions": true,
        "session-timeout": timeout.as_secs(),
        "reclaim-session-timeout": 0,
        "candidates-timeout": 45,
        "server-name": "Camerata",
        "ice-lite": false,
        "ice-tcp": false,
        "full-trickle": false,
        "api_secret": auth.api_secret.is_some(),
        "auth_token": auth.token_secret.is_some(),
        "event_handlers": false,
        "opaqueid_in_api": false,
        "transports": {
            "janus.transport.http": {
                "name": "JANUS REST (HTTP/HTTPS) transport plugin",
                "author": "Camerata",
                "description": "The Janus API over HTTP, served by Camerata",
                "version_string": "0.0.2",
                "version": 2
            }
        },
        "plugins": {
            VIDEOROOM: {
                "name": "JANUS VideoRoom plugin",
                "author": "Camerata",
                "description": "The VideoRoom API over Camerata's rooms",
                "version_string": "0.0.9",
                "version": 9
            }
        }
    })
}

impl Sessions {
    /// No session yet; sessions idle for `timeout` expire (zero: never).
    pub fn new(timeout: Duration) -> Self {
        Self {
            map: Arc::default(),
            timeout,
            plugin: None,
            auth: Auth::default(),
        }
    }

    /// The sessions with `auth` checking every request but `info` and `ping`.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The checks requests pass.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The sessions with the VideoRoom plugin serving their handles.
    pub fn with_plugin(mut self, plugin: VideoRoom) -> Self {
        self.plugin = Some(plugin);
        self
    }

    /// A live session.
    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        lock(&self.map).get(&id).cloned()
    }

    /// Binds session `id` to a WebSocket: its events go to `socket` from now on.
    pub fn bind(&self, id: u64, socket: mpsc::Sender<Value>) {
        if let Some(s) = self.get(id) {
            *lock(&s.socket) = Some(socket);
        }
    }

    /// Destroys the sessions bound to a WebSocket that closed.
    pub fn drop_all(&self, ids: &[u64]) {
        let gone: Vec<Arc<Session>> = {
            let mut map = lock(&self.map);
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for s in gone {
            s.end();
        }
    }

    /// Ends sessions idle for longer than the timeout: a `timeout` event is queued for
    /// whoever still polls, and the session is gone.
    pub fn expire(&self, now: Instant) {
        if self.timeout.is_zero() {
            return;
        }
        let expired: Vec<Arc<Session>> = {
            let mut map = lock(&self.map);
            let ids: Vec<u64> = map
                .values()
                .filter(|s| now.duration_since(*lock(&s.last_activity)) >= self.timeout)
                .map(|s| s.id)
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for s in expired {
            s.end();
            s.push(json!({ "janus": "timeout", "session_id": s.id }));
        }
    }

    /// Handles one request addressed by `address`; the reply to send.
    pub async fn request(&self, address: Address, text: &[u8]) -> Value {
        let request: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                let detail = format!("on line {}: {e}", e.line());
                return error(None, None, &JanusError::InvalidJson(detail));
            }
        };
        let Value::Object(o) = request else {
            return error(None, None, &JanusError::NotAnObject);
        };
        let transaction = o.get("transaction").and_then(Value::as_str);
        let verb = match string_element(&o, "janus") {
            Ok(v) => v.to_ascii_lowercase(),
            Err(e) => return error(None, transaction, &e),
        };
        if let Err(e) = string_element(&o, "transaction") {
            return error(None, None, &e);
        }
        let transaction = transaction.unwrap_or_default();
        let (session, handle) = match (id_element(&o, "session_id"), id_element(&o, "handle_id")) {
            (Ok(s), Ok(h)) => (s, h),
            (Err(e), _) | (_, Err(e)) => return error(None, Some(transaction), &e),
        };
        // The path wins only where the body names nothing; a different id is a conflict.
        let session = match (address.session, session) {
            (Some(p), Some(b)) if p != b => {
                return error(None, None, &JanusError::Conflicting("session"));
            }
            (p, b) => p.or(b),
        };
        let handle = match (address.handle, handle) {
            (Some(p), Some(b)) if p != b => {
                return error(None, None, &JanusError::Conflicting("handle"));
            }
            (p, b) => p.or(b),
        };
        if verb != "info" && verb != "ping" && !address.trusted {
            let attach = if verb == "attach" {
                o.get("plugin").and_then(Value::as_str)
            } else {
                None
            };
            if let Err(e) = self.auth.check_body(&o, unix_now(), attach) {
                return error(session, Some(transaction), &e);
            }
        }
        let reply = match (session, handle) {
            (None, None) => self.root(&verb, transaction, &o),
            (None, Some(_)) => Err(JanusError::WrongPath(verb.clone())),
            (Some(s), h) => {
                self.on_session(s, h, &verb, transaction, &o, address.over_socket)
                    .await
            }
        };
        reply.unwrap_or_else(|e| error(session, Some(transaction), &e))
    }

    fn root(&self, verb: &str, transaction: &str, o: &Map<String, Value>) -> Reply {
        match verb {
            "info" => Ok(server_info(transaction, self.timeout, &self.auth)),
            "ping" => Ok(json!({ "janus": "pong", "transaction": transaction })),
            "create" => {
                let wanted = id_element(o, "id")?;
                let id = wanted.unwrap_or_else(random_id);
                let session = Arc::new(Session {
                    id,
                    last_activity: Mutex::new(Instant::now()),
                    handles: Mutex::default(),
                    events: Mutex::default(),
                    arrived: Notify::new(),
                    socket: Mutex::new(None),
                });
                {
                    let mut map = lock(&self.map);
                    if map.contains_key(&id) {
                        return Err(JanusError::SessionConflict(id));
                    }
                    map.insert(id, session);
                }
                Ok(json!({ "janus": "success", "transaction": transaction, "data": { "id": id } }))
            }
            other => Err(JanusError::WrongPath(other.to_owned())),
        }
    }

    async fn on_session(
        &self,
        id: u64,
        handle: Option<u64>,
        verb: &str,
        transaction: &str,
        o: &Map<String, Value>,
        over_socket: bool,
    ) -> Reply {
        let session = self.get(id).ok_or(JanusError::NoSuchSession(id))?;
        session.touch();
        let done =
            |kind: &str| json!({ "janus": kind, "session_id": id, "transaction": transaction });
        let Some(h) = handle else {
            return match verb {
                "keepalive" => Ok(done("ack")),
                // The session moves to the connection that claims it: a WebSocket binds it
                // when this succeeds (ws.rs); over HTTP its events go to the long poll again.
                "claim" => {
                    if !over_socket {
                        *lock(&session.socket) = None;
                    }
                    Ok(done("success"))
                }
                "attach" => {
                    let plugin = string_element(o, "plugin")?;
                    if plugin != VIDEOROOM {
                        return Err(JanusError::NoSuchPlugin(plugin.to_owned()));
                    }
                    // `opaque_id` only shows in the API when Janus runs with
                    // `opaqueid_in_api` (off, as shipped): nothing to keep.
                    let h = random_id();
                    let link = self.plugin.as_ref().map(|p| p.attach(session.clone(), h));
                    lock(&session.handles).insert(h, link);
                    let mut reply = done("success");
                    reply["data"] = json!({ "id": h });
                    Ok(reply)
                }
                "destroy" => {
                    lock(&self.map).remove(&id);
                    session.end();
                    Ok(done("success"))
                }
                "message" | "trickle" | "detach" | "hangup" | "create" | "info" | "ping" => {
                    Err(JanusError::WrongPath(verb.to_owned()))
                }
                other => Err(JanusError::UnknownRequest(other.to_owned())),
            };
        };
        let Some(link) = lock(&session.handles).get(&h).cloned() else {
            return Err(JanusError::NoSuchHandle(h, id));
        };
        match verb {
            "keepalive" => Ok(done("ack")),
            "detach" => {
                lock(&session.handles).remove(&h);
                session.push(json!({ "janus": "detached", "session_id": id, "sender": h }));
                Ok(done("success"))
            }
            "hangup" => {
                if let Some(link) = &link {
                    let _ = link.send(Job::Hangup).await;
                }
                Ok(done("success"))
            }
            "trickle" => {
                match (o.get("candidate"), o.get("candidates")) {
                    (None, None) => return Err(JanusError::Missing("candidate|candidates")),
                    (Some(_), Some(_)) => {
                        return Err(JanusError::InvalidJson(
                            "Can't have both candidate and candidates".into(),
                        ));
                    }
                    (None, Some(c)) if !c.is_array() => {
                        return Err(JanusError::ElementType("candidates", "an array"));
                    }
                    _ => {}
                }
                let candidates = match (o.get("candidate"), o.get("candidates")) {
                    (Some(c), _) => vec![c.clone()],
                    (None, Some(Value::Array(list))) => list.clone(),
                    _ => Vec::new(),
                };
                if let Some(link) = &link {
                    let _ = link.send(Job::Trickle(candidates)).await;
                }
                Ok(done("ack"))
            }
            "message" => {
                match o.get("body") {
                    None => return Err(JanusError::Missing("body")),
                    Some(Value::Object(_)) => {}
                    Some(_) => return Err(JanusError::ElementType("body", "an object")),
                }
                if let Some(jsep) = o.get("jsep") {
                    let Value::Object(j) = jsep else {
                        return Err(JanusError::NotAnObject);
                    };
                    let kind = string_element(j, "type")?;
                    string_element(j, "sdp")?;
                    if kind != "offer" && kind != "answer" {
                        return Err(JanusError::JsepType(kind.to_owned()));
                    }
                }
                let (Some(plugin), Some(link)) = (&self.plugin, &link) else {
                    return Err(JanusError::PluginMessage(
                        "No plugin to handle this request".into(),
                    ));
                };
                let body = o.get("body").and_then(Value::as_object).cloned();
                let outcome = plugin
                    .message(
                        link,
                        transaction,
                        body.unwrap_or_default(),
                        o.get("jsep").cloned(),
                    )
                    .await;
                match outcome {
                    Outcome::Queued => Ok(done("ack")),
                    Outcome::Reply(data) => {
                        let mut reply = done("success");
                        reply["sender"] = h.into();
                        reply["plugindata"] = json!({ "plugin": VIDEOROOM, "data": data });
                        Ok(reply)
                    }
                }
            }
            "attach" | "destroy" | "create" | "info" | "ping" | "claim" => {
                Err(JanusError::WrongPath(verb.to_owned()))
            }
            other => Err(JanusError::UnknownRequest(other.to_owned())),
        }
    }
}

/// A Janus `error` reply.
fn error(session: Option<u64>, transaction: Option<&str>, e: &JanusError) -> Value {
    let mut v = json!({ "janus": "error", "error": { "code": e.code(), "reason": e.reason() } });
    if let Some(s) = session {
        v["session_id"] = s.into();
    }
    if let Some(t) = transaction {
        v["transaction"] = t.into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(s: &Sessions, address: Address, body: Value) -> Value {
        // Without the plugin nothing is spawned: a one-thread runtime per request will do.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(s.request(address, body.to_string().as_bytes()))
    }

    #[test]
    fn sessions_handles_and_their_errors() {
        let s = Sessions::new(Duration::from_secs(60));
        let root = Address::default();
        let created = ask(&s, root, json!({"janus": "create", "transaction": "t1"}));
        assert_eq!(created["janus"], "success");
        assert!(
            created.get("session_id").is_none(),
            "janode drops a create reply naming a session"
        );
        let id = created["data"]["id"].as_u64().expect("a session id");
        assert!(id > 0 && id < (1 << 53));
        let at = Address {
            session: Some(id),
            handle: None,
            over_socket: false,
            ..Address::default()
        };
        let attached = ask(
            &s,
            at,
            json!({"janus": "attach", "transaction": "t2", "plugin": VIDEOROOM}),
        );
        assert_eq!(
            (attached["janus"].as_str(), attached["session_id"].as_u64()),
            (Some("success"), Some(id))
        );
        assert!(attached.get("sender").is_none());
        let h = attached["data"]["id"].as_u64().expect("a handle id");
        let code = |v: &Value| v["error"]["code"].as_u64();
        assert_eq!(
            code(&ask(
                &s,
                at,
                json!({"janus": "attach", "transaction": "t", "plugin": "janus.plugin.echotest"})
            )),
            Some(460)
        );
        assert_eq!(
            code(&ask(
                &s,
                at,
                json!({"janus": "message", "transaction": "t"})
            )),
            Some(457)
        );
        assert_eq!(
            code(&ask(&s, at, json!({"janus": "fly", "transaction": "t"}))),
            Some(453)
        );
        assert_eq!(
            code(&ask(
                &s,
                root,
                json!({"janus": "attach", "transaction": "t"})
            )),
            Some(457)
        );
        assert_eq!(code(&ask(&s, root, json!({"janus": "create"}))), Some(456));
        assert_eq!(
            code(&ask(&s, root, json!({"janus": 3, "transaction": "t"}))),
            Some(467)
        );
        let conflict = ask(
            &s,
            at,
            json!({"janus": "keepalive", "transaction": "t", "session_id": id + 1}),
        );
        assert_eq!(code(&conflict), Some(457));
        assert!(conflict.get("transaction").is_none() && conflict.get("session_id").is_none());
        let missing = ask(
            &s,
            Address {
                session: Some(5),
                handle: None,
                over_socket: false,
                ..Address::default()
            },
            json!({"janus": "keepalive", "transaction": "t"}),
        );
        assert_eq!(
            (code(&missing), missing["session_id"].as_u64()),
            (Some(458), Some(5))
        );
        let ha = Address {
            session: Some(id),
            handle: Some(h),
            over_socket: false,
            ..Address::default()
        };
        assert_eq!(
            code(&ask(
                &s,
                ha,
                json!({"janus": "message", "transaction": "t"})
            )),
            Some(456)
        );
        assert_eq!(
            code(&ask(
                &s,
                ha,
                json!({"janus": "trickle", "transaction": "t"})
            )),
            Some(456)
        );
        assert_eq!(
            ask(
                &s,
                ha,
                json!({"janus": "trickle", "transaction": "t", "candidate": {"completed": true}})
            )["janus"],
            "ack"
        );
        assert_eq!(
            code(&ask(
                &s,
                Address {
                    session: Some(id),
                    handle: Some(h + 1),
                    over_socket: false,
                    ..Address::default()
                },
                json!({"janus": "detach", "transaction": "t"})
            )),
            Some(459)
        );
        // Detaching queues `detached` for the long poll.
        assert_eq!(
            ask(&s, ha, json!({"janus": "detach", "transaction": "t"}))["janus"],
            "success"
        );
        let events = s.get(id).expect("live").take(10);
        assert_eq!(
            events,
            vec![json!({"janus": "detached", "session_id": id, "sender": h})]
        );
        assert_eq!(
            ask(&s, at, json!({"janus": "destroy", "transaction": "t"}))["janus"],
            "success"
        );
        assert!(s.get(id).is_none());
    }

    #[test]
    fn idle_sessions_time_out_with_an_event() {
        let s = Sessions::new(Duration::from_secs(60));
        let created = ask(
            &s,
            Address::default(),
            json!({"janus": "create", "transaction": "t", "id": 42}),
        );
        assert_eq!(created["data"]["id"], 42);
        let again = ask(
            &s,
            Address::default(),
            json!({"janus": "create", "transaction": "t", "id": 42}),
        );
        assert_eq!(again["error"]["code"], 468);
        let session = s.get(42).expect("live");
        s.expire(Instant::now() + Duration::from_secs(30));
        assert!(s.get(42).is_some(), "not idle long enough");
        s.expire(Instant::now() + Duration::from_secs(61));
        assert!(s.get(42).is_none());
        assert_eq!(
            session.take(5),
            vec![json!({"janus": "timeout", "session_id": 42})]
        );
    }
}
