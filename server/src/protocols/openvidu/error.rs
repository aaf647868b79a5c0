//! The one error table of the OpenVidu REST adapter: every failure becomes an HTTP status
//! and an OpenVidu error document `{timestamp, status, error, message, path}`.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A REST call that failed, named for the condition.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Missing or wrong Basic credentials.
    #[error(
        "missing or wrong credentials: use HTTP Basic with user OPENVIDUAPP and the server secret"
    )]
    Unauthorized,
    /// The body is not JSON.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// The body is JSON but not an object.
    #[error("the request body must be a JSON object")]
    BodyNotObject,
    /// The body is larger than accepted.
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The endpoint needs a body and got none.
    #[error("this request needs a JSON body")]
    BodyRequired,
    /// A field has the wrong JSON type.
    #[error("type error in parameter '{field}': expected {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// The JSON type expected.
        expected: &'static str,
    },
    /// A field has a value that is not allowed.
    #[error("invalid value for parameter '{field}': {message}")]
    InvalidValue {
        /// The field.
        field: String,
        /// What is allowed.
        message: String,
    },
    /// A mandatory field is missing.
    #[error("\"{0}\" parameter is mandatory")]
    MissingField(&'static str),
    /// A recording value is out of range where the protocol answers 422.
    #[error("{0}")]
    Unprocessable(String),
    /// A query parameter is not a boolean.
    #[error("query parameter '{0}' must be true or false")]
    BadQueryBool(String),
    /// The session does not exist.
    #[error("session '{0}' not found")]
    SessionNotFound(String),
    /// The session does not exist, on the routes where OpenVidu answers 400 for it.
    #[error("session '{0}' not found")]
    SessionNotFoundBadRequest(String),
    /// A session with that id already exists.
    #[error("session '{0}' already exists")]
    SessionExists(String),
    /// The session has nobody connected.
    #[error("session '{0}' has no connected participants")]
    SessionNotActive(String),
    /// The session has no such connection.
    #[error("connection '{connection}' not found in session '{session}'")]
    ConnectionNotFound {
        /// The session.
        session: String,
        /// The connection.
        connection: String,
    },
    /// A connection with that id already exists.
    #[error("connection '{0}' already exists")]
    ConnectionExists(String),
    /// The session has no such stream.
    #[error("stream '{stream}' not found in session '{session}'")]
    StreamNotFound {
        /// The session.
        session: String,
        /// The stream.
        stream: String,
    },
    /// A signal names recipients that are not connected.
    #[error("signal recipients not connected to session '{session}': {recipients}")]
    SignalRecipientsNotConnected {
        /// The session.
        session: String,
        /// The recipients, comma separated.
        recipients: String,
    },
    /// Recording is switched off.
    #[error("recording is disabled on this server (OPENVIDU_RECORDING=false)")]
    RecordingDisabled,
    /// No such recording (or it is not started, for a stop).
    #[error("recording '{0}' not found")]
    RecordingNotFound(String),
    /// The session is being recorded or cannot be; the recording is in progress.
    #[error("{0}")]
    RecordingConflict(String),
    /// The recording is still starting.
    #[error("recording '{0}' is still starting")]
    RecordingStarting(String),
    /// Recording failed on the server (the message says why: a full disk, a missing tool).
    #[error("{0}")]
    RecordingFailed(String),
    /// IP camera connections are not available.
    #[error("IPCAM connections are not supported by this release of Camerata")]
    IpcamUnsupported,
    /// No route for the path.
    #[error("no such resource: {0}")]
    RouteNotFound(String),
    /// The route exists, not for this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// Something failed inside the server; the detail is logged, not returned.
    #[error("internal server error")]
    Internal(String),
    /// The server is stopping and admits no new session, connection or join.
    #[error("the server is stopping: no new sessions or connections")]
    Stopping,
}

impl RestError {
    /// The HTTP status of each condition: the one place this protocol maps errors.
    pub fn status(&self) -> StatusCode {
        use RestError::*;
        match self {
            Unauthorized => StatusCode::UNAUTHORIZED,
            MalformedJson(_)
            | BodyNotObject
            | BodyRequired
            | WrongType { .. }
            | InvalidValue { .. }
            | MissingField(_)
            | BadQueryBool(_)
            | SessionNotFoundBadRequest(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SessionNotFound(_)
            | ConnectionNotFound { .. }
            | StreamNotFound { .. }
            | RecordingNotFound(_)
            | RouteNotFound(_) => StatusCode::NOT_FOUND,
            SessionExists(_) | ConnectionExists(_) | RecordingConflict(_) => StatusCode::CONFLICT,
            SessionNotActive(_) | SignalRecipientsNotConnected { .. } | RecordingStarting(_) => {
                StatusCode::NOT_ACCEPTABLE
            }
            RecordingFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            RecordingDisabled | IpcamUnsupported => StatusCode::NOT_IMPLEMENTED,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Stopping => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Shorthand for a wrong JSON type.
    pub fn wrong_type(field: &str, expected: &'static str) -> Self {
        RestError::WrongType {
            field: field.to_owned(),
            expected,
        }
    }

    /// Shorthand for a value that is not allowed.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        RestError::InvalidValue {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The message of a failed call, carried on the response until [`render_errors`] writes
/// the body (only it knows the request path).
#[derive(Clone, Debug)]
struct ErrorMessage(String);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        if let RestError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let status = self.status();
        let mut response = status.into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Realm\""),
            );
        }
        response
            .extensions_mut()
            .insert(ErrorMessage(self.to_string()));
        response
    }
}

/// Middleware: writes the OpenVidu error document into every error response, including
/// the framework's own rejections (their text becomes the message).
pub async fn render_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let status = response.status();
    let message = match response.extensions_mut().remove::<ErrorMessage>() {
        Some(ErrorMessage(m)) => m,
        None if status.is_client_error() || status.is_server_error() => {
            let (parts, body) = response.into_parts();
            let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&text).trim().to_owned();
            response = Response::from_parts(parts, axum::body::Body::empty());
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            }
        }
        None => return response,
    };
    let body = serde_json::json!({
        "timestamp": crate::rooms::now_ms(),
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or(""),
        "message": message,
        "path": path,
    });
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}
