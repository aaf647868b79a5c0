//! The client half of the OpenVidu REST adapter: calls a Camerata (or OpenVidu) server
//! with the paths, bodies and enum spellings the routes of this module read. The Node SDK
//! is built on it.

use super::wire::WireEnum;
use crate::room::{MAX_DATA_CHARS, Role};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// A client call that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server URL cannot be used.
    #[error("server URL '{0}' is not http(s)://host[:port]")]
    BadUrl(String),
    /// Connection data is longer than servers accept.
    #[error("token data is limited to {MAX_DATA_CHARS} characters, got {0}")]
    DataTooLong(usize),
    /// No answer: connection refused, TLS rejected, timeout.
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    /// The server answered with another status than the call expects.
    #[error("{method} {path} answered {status}: {message}")]
    Status {
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The server's message, when it gave one.
        message: String,
    },
    /// The server's answer is not what the call expects.
    #[error("unexpected answer to {0}: {1}")]
    BadReply(String, String),
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A server's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

type Http =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client of one server (cheap to clone; connections are pooled and kept alive).
#[derive(Clone)]
pub struct Client {
    base: String,
    authority: String,
    auth: String,
    http: Http,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// `scheme://host[:port]` of a server URL, dropping any path, query or trailing slash as the
/// OpenVidu clients do; a URL with no scheme (`host:port`) means HTTPS, as the 1.x client had.
pub fn server_base(url: &str) -> Result<String, ClientError> {
    let bad = || ClientError::BadUrl(url.to_owned());
    let trimmed = url.trim();
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((s, r)) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            (s.to_ascii_lowercase(), r)
        }
        Some(_) => return Err(bad()),
        None => ("https".to_owned(), trimmed),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_ok = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c));
    if !host_ok {
        return Err(bad());
    }
    Ok(format!("{scheme}://{authority}"))
}

impl Client {
    /// A client of the server at `url` with the API secret. Must be made inside a tokio
    /// runtime.
    pub fn new(url: &str, secret: &str) -> Result<Self, ClientError> {
        let base = server_base(url)?;
        let authority = base
            .split_once("://")
            .map(|(_, a)| a.to_owned())
            .unwrap_or_default();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| ClientError::Unreachable(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{secret}"))
        );
        Ok(Self {
            base,
            authority,
            auth,
            http,
        })
    }

    /// `scheme://host[:port]` of the server.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One authenticated call; any status is a `Reply`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Reply, ClientError> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, &self.auth)
            .header(hyper::header::ACCEPT, "application/json, text/plain, */*");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::BadUrl(format!("{}{path}: {e}", self.base)))?;
        let res = self
            .http
            .request(req)
            .await
            .map_err(|e| ClientError::Unreachable(error_chain(&e)))?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable(error_chain(&e)))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// A call that must answer `expected`, returning the body as JSON.
    async fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Result<Value, ClientError> {
        let reply = self.call(method, path, body.map(|b| b.to_string())).await?;
        if reply.status != expected {
            let message = serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            return Err(ClientError::Status {
                method: method.to_owned(),
                path: path.to_owned(),
                status: reply.status,
                message,
            });
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| ClientError::BadReply(format!("{method} {path}"), e.to_string()))
    }

    /// Creates a session with OpenVidu session properties (a JSON object, or none); returns
    /// its id. A taken custom id is not an error: that session is the one meant.
    pub async fn create_session(&self, properties: Option<&Value>) -> Result<String, ClientError> {
        let path = "/openvidu/api/sessions";
        match self.expect("POST", path, properties.cloned(), 200).await {
            Ok(v) => v
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ClientError::BadReply(path.into(), "no session id".into())),
            Err(ClientError::Status { status: 409, .. }) => properties
                .and_then(|p| p.get("customSessionId"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ClientError::BadReply(path.into(), "409 without a custom id".into())
                }),
            Err(e) => Err(e),
        }
    }

    /// Creates a pending connection in `session` through the token call and returns the
    /// token a browser joins with.
    pub async fn generate_token(
        &self,
        session: &str,
        role: Role,
        data: &str,
    ) -> Result<String, ClientError> {
        check_data(data)?;
        let path = "/openvidu/api/tokens";
        let body = json!({ "session": session, "role": role.name(), "data": data });
        let v = self.expect("POST", path, Some(body), 200).await?;
        v.get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ClientError::BadReply(path.into(), "no token".into()))
    }
}

/// Checks connection data against the limit servers enforce.
pub fn check_data(data: &str) -> Result<(), ClientError> {
    let n = data.chars().count();
    if n > MAX_DATA_CHARS {
        return Err(ClientError::DataTooLong(n));
    }
    Ok(())
}

/// Parses a role spelled as OpenVidu spells it.
pub fn parse_role(text: &str) -> Option<Role> {
    Role::parse(text)
}

/// The spelling of a role.
pub fn role_name(role: Role) -> &'static str {
    role.name()
}

/// Every role spelling.
pub fn role_names() -> Vec<&'static str> {
    Role::names()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_base_keeps_scheme_and_authority() {
        assert_eq!(
            server_base("https://host:4443/x/y?q=1").ok().as_deref(),
            Some("https://host:4443")
        );
        assert_eq!(
            server_base("http://127.0.0.1:5443/").ok().as_deref(),
            Some("http://127.0.0.1:5443")
        );
        assert_eq!(
            server_base("localhost:4443").ok().as_deref(),
            Some("https://localhost:4443")
        );
        assert!(server_base("ftp://x").is_err());
        assert!(server_base("http://").is_err());
        assert!(server_base("http://user:pw@host").is_err());
    }

    #[test]
    fn data_limit() {
        assert!(check_data(&"x".repeat(1000)).is_ok());
        assert!(matches!(
            check_data(&"x".repeat(1001)),
            Err(ClientError::DataTooLong(1001))
        ));
    }
}
