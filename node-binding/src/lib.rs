//! # camerata-node
//!
//! The native half of the npm package `camerata`, built with napi-rs. It holds conversions
//! only: the REST client, the data limits and the embedded server are the server crate's
//! (`camerata_server::protocols::openvidu::client`, `camerata_server::run`). The public
//! JavaScript API is shaped by the hand-written `index.js` and `openvidu-node-client.js` at the
//! package root over the classes exported here.
//!
//! Invariant: no export blocks the JavaScript thread. Everything that touches the network
//! or the disk is an `async fn` run on napi's tokio runtime and surfaces as a Promise.

#![allow(missing_docs)] // napi-derive generates undocumented items; each export is documented.

use camerata_server::protocols::openvidu::client::{self, Client, ClientError};
use camerata_server::room::Role;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::oneshot;

fn js_error(e: ClientError) -> Error {
    let status = e.status().map(|s| s.to_string());
    let reason = match status {
        Some(s) => format!("[{s}] {e}"),
        None => e.to_string(),
    };
    Error::new(Status::GenericFailure, reason)
}

fn role_of(text: &str) -> Result<Role> {
    client::parse_role(text).ok_or_else(|| {
        Error::new(
            Status::InvalidArg,
            format!(
                "unknown role '{text}': use one of {}",
                client::role_names().join(", ")
            ),
        )
    })
}

/// Options of a token: its data and role. Made by `TokenOptions.Builder`.
#[napi]
pub struct TokenOptions {
    data: String,
    role: String,
}

#[napi]
impl TokenOptions {
    /// The data attached to the connection (server data).
    #[napi]
    pub fn get_data(&self) -> String {
        self.data.clone()
    }

    /// The role of the connection.
    #[napi]
    pub fn get_role(&self) -> String {
        self.role.clone()
    }
}

/// Builds `TokenOptions`; data defaults to "" and role to PUBLISHER.
#[napi]
pub struct TokenOptionsBuilder {
    data: String,
    role: String,
}

#[napi]
impl TokenOptionsBuilder {
    /// A builder with the defaults.
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            data: String::new(),
            role: client::role_name(Role::Publisher).to_owned(),
        }
    }

    /// Sets the data (at most 1000 characters).
    #[napi]
    pub fn data<'a>(&mut self, this: This<'a>, data: String) -> This<'a> {
        self.data = data;
        this
    }

    /// Sets the role.
    #[napi]
    pub fn role<'a>(&mut self, this: This<'a>, role: String) -> This<'a> {
        self.role = role;
        this
    }

    /// The options; throws when the data is too long or the role unknown.
    #[napi]
    pub fn build(&self) -> Result<TokenOptions> {
        client::check_data(&self.data)
            .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
        role_of(&self.role)?;
        Ok(TokenOptions {
            data: self.data.clone(),
            role: self.role.clone(),
        })
    }
}

/// One HTTP answer.
#[napi(object)]
pub struct NativeReply {
    /// The HTTP status.
    pub status: u32,
    /// The body as text.
    pub body: String,
}

/// A client of one server's REST API (connections pooled, calls asynchronous).
#[napi]
pub struct NativeClient {
    inner: Client,
}

#[napi]
impl NativeClient {
    /// A client of `url` (`http(s)://host[:port]`; any path is dropped) with the API secret.
    #[napi(constructor)]
    pub fn new(url: String, secret: String) -> Result<Self> {
        let inner = Client::new(&url, &secret)
            .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
        Ok(Self { inner })
    }

    /// `scheme://host[:port]` of the server.
    #[napi(getter)]
    pub fn base(&self) -> String {
        self.inner.base().to_owned()
    }

    /// One authenticated call; resolves with any status, rejects only when there is no answer.
    #[napi]
    pub async fn request(
        &self,
        method: String,
        path: String,
        body: Option<String>,
    ) -> Result<NativeReply> {
        let reply = self
            .inner
            .call(&method, &path, body)
            .await
            .map_err(js_error)?;
        Ok(NativeReply {
            status: u32::from(reply.status),
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        })
    }

    /// Creates a session from OpenVidu session properties as JSON text; resolves its id.
    #[napi]
    pub async fn create_session(&self, properties: Option<String>) -> Result<String> {
        let props = match properties {
            None => None,
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    Status::InvalidArg,
                    format!("session properties are not JSON: {e}"),
                )
            })?),
        };
        self.inner
            .create_session(props.as_ref())
            .await
            .map_err(js_error)
    }

    /// Creates a token in `session` with `role` and `data`; resolves the token.
    #[napi]
    pub async fn generate_token(
        &self,
        session: String,
        role: String,
        data: String,
    ) -> Result<String> {
        let role = role_of(&role)?;
        self.inner
            .generate_token(&session, role, &data)
            .await
            .map_err(js_error)
    }
}

/// Where and how to run an embedded server.
#[napi(object)]
pub struct ServerOptions {
    /// Port on 127.0.0.1; 0 or absent picks a free one.
    pub port: Option<u32>,
    /// Folder for the SQLite database; absent makes a temporary one, removed on stop.
    pub data_dir: Option<String>,
    /// API secret; absent generates one.
    pub secret: Option<String>,
    /// Database URL instead of the SQLite file (e.g. postgres://...).
    pub database_url: Option<String>,
}

/// A Camerata server running inside this Node process.
#[napi]
pub struct EmbeddedServer {
    url: String,
    secret: String,
    port: u32,
    stop: std::sync::Mutex<Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
    temp_dir: Option<std::path::PathBuf>,
}

#[napi]
impl EmbeddedServer {
    /// `http://127.0.0.1:PORT`.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }
    /// The API secret.
    #[napi(getter)]
    pub fn secret(&self) -> String {
        self.secret.clone()
    }
    /// The port.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Stops the server and waits until every task has ended; a second call does nothing.
    #[napi]
    pub async fn stop(&self) -> Result<()> {
        let taken = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((tx, task)) = taken {
            let _ = tx.send(());
            let _ = task.await;
        }
        if let Some(dir) = &self.temp_dir {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        Ok(())
    }
}

fn generated_secret() -> String {
    use std::fmt::Write;
    let mut s = String::from("EMBEDDED_");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let _ = write!(s, "{:x}{:x}", nanos, std::process::id());
    s
}

/// Starts a full Camerata server inside this process on 127.0.0.1; resolves once it serves.
#[napi]
pub async fn start_server(options: Option<ServerOptions>) -> Result<EmbeddedServer> {
    let o = options.unwrap_or(ServerOptions {
        port: None,
        data_dir: None,
        secret: None,
        database_url: None,
    });
    let secret = o.secret.unwrap_or_else(generated_secret);
    let (data_dir, temp_dir) = match o.data_dir {
        Some(d) => (std::path::PathBuf::from(d), None),
        None => {
            let d = std::env::temp_dir().join(format!(
                "camerata-embedded-{}",
                generated_secret().trim_start_matches("EMBEDDED_")
            ));
            (d.clone(), Some(d))
        }
    };
    let port = o.port.unwrap_or(0).to_string();
    let mut args = vec![
        "camerata".to_owned(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port,
        "--secret".into(),
        secret.clone(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    if let Some(url) = o.database_url {
        args.push("--database-url".into());
        args.push(url);
    }
    let config = camerata_server::Config::try_from_args(args)
        .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
    let listeners = camerata_server::Listeners::bind(&config)
        .map_err(|e| Error::new(Status::GenericFailure, format!("{e:#}")))?;
    let addr = listeners
        .local_addr()
        .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
    let settled = config
        .settle(addr)
        .map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
    let (tx, rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = oneshot::channel::<std::result::Result<(), String>>();
    let task = tokio::spawn(async move {
        let result = camerata_server::run_with_ready(
            settled,
            listeners,
            async move {
                let _ = rx.await;
            },
            ready_tx,
        )
        .await;
        if let Err(e) = result {
            eprintln!("camerata embedded server stopped: {e:#}");
        }
    });
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Error::new(Status::GenericFailure, e)),
        Err(_) => {
            let _ = task.await;
            return Err(Error::new(
                Status::GenericFailure,
                "the embedded server failed to start",
            ));
        }
    }
    Ok(EmbeddedServer {
        url: format!("http://{addr}"),
        secret,
        port: u32::from(addr.port()),
        stop: std::sync::Mutex::new(Some((tx, task))),
        temp_dir,
    })
}

/// Makes `TokenOptions.Builder` the builder class, as the original client spelled it.
#[napi(module_exports)]
pub fn exports(export: Object) -> Result<()> {
    let builder: Unknown = export.get_named_property("TokenOptionsBuilder")?;
    let ctor: Unknown = export.get_named_property("TokenOptions")?;
    let mut token_options: Object = napi::JsValue::coerce_to_object(&ctor)?;
    token_options.set_named_property("Builder", builder)?;
    Ok(())
}
