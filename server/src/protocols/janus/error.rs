//! The Janus core API's one error table: every failure of a Janus request is a
//! [`JanusError`], whose code and reason are those of Janus 1.1.2 (`apierror.h`).

/// A failed Janus API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JanusError {
    /// 403: the API secret or token is missing or wrong.
    Unauthorized,
    /// 405: the token does not open that plugin.
    TokenPlugin(String),
    /// 453: a verb Janus does not know at this level.
    UnknownRequest(String),
    /// 454: the body is not JSON.
    InvalidJson(String),
    /// 455: the body is JSON but not an object.
    NotAnObject,
    /// 456: a mandatory element is missing.
    Missing(&'static str),
    /// 457: a verb sent at a level where it is not handled.
    WrongPath(String),
    /// 457: the path and the body name different sessions or handles.
    Conflicting(&'static str),
    /// 458: no such session.
    NoSuchSession(u64),
    /// 459: no such handle in the session.
    NoSuchHandle(u64, u64),
    /// 460: no such plugin.
    NoSuchPlugin(String),
    /// 462: the plugin cannot take the message.
    PluginMessage(String),
    /// 464: a JSEP type that is neither offer nor answer.
    JsepType(String),
    /// 467: an element of the wrong JSON type.
    ElementType(&'static str, &'static str),
    /// 468: the session id asked for is in use.
    SessionConflict(u64),
}

impl JanusError {
    /// Janus's code.
    pub fn code(&self) -> u16 {
        match self {
            JanusError::Unauthorized => 403,
            JanusError::TokenPlugin(_) => 405,
            JanusError::UnknownRequest(_) => 453,
            JanusError::InvalidJson(_) => 454,
            JanusError::NotAnObject => 455,
            JanusError::Missing(_) => 456,
            JanusError::WrongPath(_) | JanusError::Conflicting(_) => 457,
            JanusError::NoSuchSession(_) => 458,
            JanusError::NoSuchHandle(..) => 459,
            JanusError::NoSuchPlugin(_) => 460,
            JanusError::PluginMessage(_) => 462,
            JanusError::JsepType(_) => 464,
            JanusError::ElementType(..) => 467,
            JanusError::SessionConflict(_) => 468,
        }
    }

    /// Janus's reason text.
    pub fn reason(&self) -> String {
        match self {
            JanusError::Unauthorized => {
                "Unauthorized request (wrong or missing secret/token)".into()
            }
            JanusError::TokenPlugin(p) => format!("Provided token can't access plugin '{p}'"),
            JanusError::UnknownRequest(verb) => format!("Unknown request '{verb}'"),
            JanusError::InvalidJson(detail) => format!("JSON error: {detail}"),
            JanusError::NotAnObject => "JSON error: not an object".into(),
            JanusError::Missing(element) => format!("Missing mandatory element ({element})"),
            JanusError::WrongPath(verb) => format!("Unhandled request '{verb}' at this path"),
            JanusError::Conflicting(what) => format!("Conflicting {what} ID (payload and path)"),
            JanusError::NoSuchSession(s) => format!("No such session {s}"),
            JanusError::NoSuchHandle(h, s) => format!("No such handle {h} in session {s}"),
            JanusError::NoSuchPlugin(p) => format!("No such plugin '{p}'"),
            JanusError::PluginMessage(text) => text.clone(),
            JanusError::JsepType(t) => format!("JSEP error: unknown message type '{t}'"),
            JanusError::ElementType(element, kind) => {
                format!("Invalid element type ({element} should be {kind})")
            }
            JanusError::SessionConflict(id) => format!("Session ID {id} already in use"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JanusError;

    #[test]
    fn codes_and_reasons_are_janus_ones() {
        let cases = [
            (
                JanusError::UnknownRequest("fly".into()),
                453,
                "Unknown request 'fly'",
            ),
            (
                JanusError::Missing("transaction"),
                456,
                "Missing mandatory element (transaction)",
            ),
            (
                JanusError::WrongPath("attach".into()),
                457,
                "Unhandled request 'attach' at this path",
            ),
            (
                JanusError::Conflicting("session"),
                457,
                "Conflicting session ID (payload and path)",
            ),
            (JanusError::NoSuchSession(7), 458, "No such session 7"),
            (
                JanusError::NoSuchHandle(9, 7),
                459,
                "No such handle 9 in session 7",
            ),
            (
                JanusError::ElementType("plugin", "a string"),
                467,
                "Invalid element type (plugin should be a string)",
            ),
        ];
        for (e, code, reason) in cases {
            assert_eq!((e.code(), e.reason().as_str()), (code, reason));
        }
    }
}
