//! Reading request bodies the way OpenVidu does: an optional JSON object whose known keys
//! are pulled one by one; unknown keys are ignored, `null` means absent, and a wrong JSON
//! type is an error naming the key. Content-Type is not looked at (the 1.x client sends
//! none, the 2.x client sends a form type on calls without a body).

use super::error::RestError;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body: `None` when empty.
#[derive(Debug, Default)]
pub struct Body(pub Option<Fields>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = RestError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| RestError::BodyTooLarge(MAX_BODY_BYTES))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(None));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Body(Some(Fields(map)))),
            Ok(_) => Err(RestError::BodyNotObject),
            Err(e) => Err(RestError::MalformedJson(e.to_string())),
        }
    }
}

impl Body {
    /// The fields, or an empty set when there was no body.
    pub fn or_empty(self) -> Fields {
        self.0.unwrap_or_default()
    }

    /// The fields of a body that must be present.
    pub fn required(self) -> Result<Fields, RestError> {
        self.0.ok_or(RestError::BodyRequired)
    }
}

/// The members of a JSON object body.
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Map<String, Value>);

impl Fields {
    /// The value of `key`, treating `null` as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Result<Option<&str>, RestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RestError::wrong_type(key, "a string")),
        }
    }

    /// A boolean field.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, RestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(RestError::wrong_type(key, "a boolean")),
        }
    }

    /// A number field, truncated to an integer as OpenVidu does.
    pub fn int(&self, key: &str) -> Result<Option<i64>, RestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(
                n.as_i64()
                    .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
                    .ok_or_else(|| RestError::invalid(key, "number out of range"))?,
            )),
            Some(_) => Err(RestError::wrong_type(key, "a number")),
        }
    }

    /// An object field.
    pub fn object(&self, key: &str) -> Result<Option<Fields>, RestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields(m.clone()))),
            Some(_) => Err(RestError::wrong_type(key, "an object")),
        }
    }

    /// An array field.
    pub fn array(&self, key: &str) -> Result<Option<&Vec<Value>>, RestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(RestError::wrong_type(key, "an array")),
        }
    }

    /// A string field that must name one of `T`'s wire values (exact, case-sensitive).
    pub fn enumeration<T: super::wire::WireEnum>(&self, key: &str) -> Result<Option<T>, RestError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => T::parse(s).map(Some).ok_or_else(|| {
                RestError::invalid(
                    key,
                    format!("'{s}' is not one of {}", T::names().join(", ")),
                )
            }),
        }
    }
}

/// A boolean query parameter with its default.
pub fn query_bool(
    query: &HashMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, RestError> {
    match query.get(key).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(RestError::BadQueryBool(key.to_owned())),
    }
}
