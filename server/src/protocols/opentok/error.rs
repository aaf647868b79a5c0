//! The OpenTok door's errors: an HTTP status with the service's error body,
//! `{"code", "message", "description"}` in JSON (or `<errorPayload>` in XML for the callers of
//! the session-create call that do not accept JSON).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A refused OpenTok call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// What went wrong, naming the field or the id.
    pub message: String,
    /// Whether the body is XML (the session-create call without `Accept: application/json`).
    pub xml: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            xml: false,
        }
    }

    /// 400: the request is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403: not authenticated for the project.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: the session, connection, stream or archive is unknown.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 405: the operation does not apply to that object.
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// 409: the object's state conflicts with the call.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413: the body or a field is too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 415: the body is not of the content type the call takes.
    pub fn media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 503: the server is stopping.
    pub fn stopping() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping: no new sessions",
        )
    }

    /// 501: a feature of the service that Camerata does not have.
    pub fn unsupported(feature: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{feature} is not supported by Camerata"),
        )
    }

    /// The same error with an XML body.
    pub fn in_xml(mut self) -> Self {
        self.xml = true;
        self
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        let description = self.status.canonical_reason().unwrap_or("Error");
        if self.xml {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><errorPayload><code>{code}</code><message>{}</message><description>{}</description></errorPayload>",
                xml_escape(&self.message),
                xml_escape(description)
            );
            return (self.status, [(header::CONTENT_TYPE, "text/xml")], body).into_response();
        }
        let body = serde_json::json!({
            "code": code,
            "message": self.message,
            "description": description,
        });
        (self.status, axum::Json(body)).into_response()
    }
}
