//! The credentials of OpenTok projects and Vonage applications: the JWTs their backends
//! authenticate REST calls with (`X-OPENTOK-AUTH`, HS256 with the project secret;
//! `Authorization: Bearer`, RS256 checked with the application's public key), and the client
//! tokens their SDKs mint locally (T1, HS256 JWT, RS256 JWT), which the join accepts for the
//! sessions this door created ([`TokenCheck`]).

use super::{ConnectionData, RoomSettings};
use crate::calls::{CredentialCheck, Entry, EntryRefused};
use crate::room::{ParticipantId, Role, Room};
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::Mac;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;

/// Clock skew allowed on the REST JWTs' times, in seconds.
const SKEW: i64 = 60;
/// The longest life of an `X-OPENTOK-AUTH` JWT (the service's documented five minutes).
const REST_JWT_LIFE: i64 = 300;
/// A client token's life when it names none: 24 hours.
const DEFAULT_TOKEN_LIFE: i64 = 86_400;
/// The longest life of a client token: 30 days.
const MAX_TOKEN_LIFE: i64 = 30 * 86_400;
/// The most characters of a token's connection data and of its layout class list (the
/// most permissive SDK's limit).
const MAX_TOKEN_TEXT: usize = 1024;

/// How a project's signatures are checked.
enum Key {
    /// An OpenTok project's API secret (HS256, HMAC-SHA1 for T1).
    Secret(String),
    /// A Vonage application's RSA public key (RS256).
    Public(Box<DecodingKey>),
}

/// The projects and applications this server serves.
#[derive(Default)]
pub struct Projects {
    keys: HashMap<String, Key>,
}

/// A REST call that is not authenticated (answered 403, as the service does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// A client token's claims, signature checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientToken {
    /// The project (API key or application id) that signed it.
    pub project: String,
    /// The session it admits to.
    pub session_id: String,
    /// The participant's role.
    pub role: Role,
    /// The connection data.
    pub data: String,
    /// When it stops being accepted, seconds since the epoch.
    pub expires: i64,
    /// The initial layout classes of the participant's streams.
    pub layout: Vec<String>,
}

/// The JSON of one base64url part of a JWT.
fn jwt_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A JWT's header and claims, read before any signature is checked (to find the key).
fn jwt_unverified(jwt: &str) -> Option<(Value, Value)> {
    let mut parts = jwt.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || s.is_empty() {
        return None;
    }
    Some((jwt_part(h)?, jwt_part(c)?))
}

/// An integer claim, given as a JSON number or a numeric string.
fn int_claim(v: &Value, name: &str) -> Option<i64> {
    match v.get(name)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_claim<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// OpenTok's role names.
fn role(name: Option<&str>) -> Result<Role, EntryRefused> {
    match name.unwrap_or("publisher") {
        "subscriber" => Ok(Role::Subscriber),
        "publisher" => Ok(Role::Publisher),
        "publisheronly" => Ok(Role::PublisherOnly),
        "moderator" => Ok(Role::Moderator),
        other => Err(EntryRefused::Forged(format!("unknown role '{other}'"))),
    }
}

fn forged(why: impl Into<String>) -> EntryRefused {
    EntryRefused::Forged(why.into())
}

impl Projects {
    /// The projects `(API key, secret)` and applications `(id, public key PEM)`; a key
    /// that does not parse is left out (the configuration checked them at start-up).
    pub fn new(opentok: &[(String, String)], vonage: &[(String, Vec<u8>)]) -> Self {
        let mut keys = HashMap::new();
        for (k, secret) in opentok {
            keys.insert(k.clone(), Key::Secret(secret.clone()));
        }
        for (id, pem) in vonage {
            if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                keys.insert(id.clone(), Key::Public(Box::new(key)));
            }
        }
        Self { keys }
    }

    /// Whether a project or application of that key is served.
    pub fn knows(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// Checks `jwt`'s signature with the key of `project` (HS256 for a project, RS256 for
    /// an application); the time claims are the caller's to check.
    fn verify(&self, project: &str, jwt: &str) -> Result<(), String> {
        let (key, alg) = match self.keys.get(project) {
            Some(Key::Secret(s)) => (DecodingKey::from_secret(s.as_bytes()), Algorithm::HS256),
            Some(Key::Public(k)) => ((**k).clone(), Algorithm::RS256),
            None => return Err(format!("unknown API key or application '{project}'")),
        };
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(jwt, &key, &validation)
            .map(|_| ())
            .map_err(|e| format!("the signature does not verify: {e}"))
    }

    /// Authenticates a REST call at `now` (seconds): an `X-OPENTOK-AUTH` JWT of a project or
    /// an `Authorization: Bearer` JWT of an application, for `path_key` when the path names
    /// a project. Returns the project.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        path_key: Option<&str>,
        now: i64,
    ) -> Result<String, AuthError> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let (jwt, opentok) = match (
            text("x-opentok-auth"),
            text("authorization").and_then(|a| {
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("bearer "))
            }),
        ) {
            (Some(j), _) => (j.trim(), true),
            (None, Some(j)) => (j.trim(), false),
            (None, None) => {
                return Err(AuthError(
                    "missing X-OPENTOK-AUTH or Authorization: Bearer header".into(),
                ));
            }
        };
        let bad = |why: &str| AuthError(format!("invalid authentication JWT: {why}"));
        let (header, claims) = jwt_unverified(jwt).ok_or_else(|| bad("not a JWT"))?;
        let project = if opentok {
            str_claim(&claims, "iss").ok_or_else(|| bad("no 'iss' claim"))?
        } else {
            str_claim(&claims, "application_id")
                .or_else(|| str_claim(&claims, "iss"))
                .ok_or_else(|| bad("no 'application_id' claim"))?
        };
        match (opentok, self.keys.get(project)) {
            (true, Some(Key::Secret(_))) | (false, Some(Key::Public(_))) => {}
            _ => return Err(bad(&format!("unknown API key '{project}'"))),
        }
        self.verify(project, jwt).map_err(|e| bad(&e))?;
        // `ist` is a claim (Node, Python) or a header field (Ruby); absent is accepted.
        if let Some(ist) = str_claim(&claims, "ist").or_else(|| str_claim(&header, "ist"))
            && ist != "project"
        {
            return Err(bad(&format!("'ist' is '{ist}', not 'project'")));
        }
        let exp = int_claim(&claims, "exp").ok_or_else(|| bad("no 'exp' claim"))?;
        if exp <= now - SKEW {
            return Err(bad("it has expired"));
        }
        if let Some(iat) = int_claim(&claims, "iat") {
            if iat > now + SKEW {
                return Err(bad("'iat' is in the future"));
            }
            if opentok && exp - iat > REST_JWT_LIFE + SKEW {
                return Err(bad("it lives longer than five minutes"));
            }
        }
        if let Some(k) = path_key
            && k != project
        {
            return Err(AuthError(format!(
                "the JWT is for '{project}', the path names project '{k}'"
            )));
        }
        Ok(project.to_owned())
    }

    /// Reads a client token: `None` when it is of no OpenTok form (neither `T1==` nor a JWT
    /// naming a project or application); else its claims, signature checked (not its
    /// expiry), or why it is refused.
    pub fn client_token(&self, token: &str) -> Option<Result<ClientToken, EntryRefused>> {
        if let Some(t1) = token.strip_prefix("T1==") {
            return Some(self.t1_token(t1));
        }
        let (_, claims) = jwt_unverified(token)?;
        let project = str_claim(&claims, "application_id")
            .or_else(|| str_claim(&claims, "iss"))?
            .to_owned();
        Some(self.jwt_token(token, project, &claims))
    }

    fn t1_token(&self, body: &str) -> Result<ClientToken, EntryRefused> {
        let decoded = STANDARD
            .decode(body)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(body))
            .map_err(|_| forged("a T1 token is base64 after 'T1=='"))?;
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| forged("a T1 token is META:DATA"))?;
        let (meta, data) = (&decoded[..colon], &decoded[colon + 1..]);
        let meta: HashMap<String, String> = form_urlencoded::parse(meta).into_owned().collect();
        let project = meta
            .get("partner_id")
            .ok_or_else(|| forged("no partner_id in the T1 token"))?;
        let Some(Key::Secret(secret)) = self.keys.get(project) else {
            return Err(forged(format!("unknown API key '{project}'")));
        };
        let sig = meta
            .get("sig")
            .and_then(|s| hex_bytes(s))
            .ok_or_else(|| forged("no hexadecimal sig in the T1 token"))?;
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
            .map_err(|_| forged("unusable secret"))?;
        mac.update(data);
        mac.verify_slice(&sig)
            .map_err(|_| forged("the T1 signature does not verify"))?;
        let fields: HashMap<String, String> = form_urlencoded::parse(data).into_owned().collect();
        let num = |name: &str| fields.get(name).and_then(|v| v.trim().parse::<i64>().ok());
        if let Some(scope) = fields.get("scope")
            && scope != "session.connect"
        {
            return Err(forged(format!("scope '{scope}' is not session.connect")));
        }
        claims_of(
            project.clone(),
            fields.get("session_id").map(String::as_str),
            fields.get("role").map(String::as_str),
            fields.get("connection_data").map(String::as_str),
            fields.get("initial_layout_class_list").map(String::as_str),
            num("create_time"),
            num("expire_time"),
        )
    }

    fn jwt_token(
        &self,
        jwt: &str,
        project: String,
        claims: &Value,
    ) -> Result<ClientToken, EntryRefused> {
        self.verify(&project, jwt).map_err(forged)?;
        if str_claim(claims, "scope") != Some("session.connect") {
            return Err(forged("the token's scope is not session.connect"));
        }
        let expires = int_claim(claims, "exp").or_else(|| int_claim(claims, "expire_time"));
        claims_of(
            project,
            str_claim(claims, "session_id"),
            str_claim(claims, "role"),
            str_claim(claims, "connection_data"),
            str_claim(claims, "initial_layout_class_list"),
            int_claim(claims, "iat").or_else(|| int_claim(claims, "create_time")),
            expires,
        )
    }
}

/// A token's claims checked for range (not for time: see [`ClientToken::expires`]).
fn claims_of(
    project: String,
    session_id: Option<&str>,
    role_name: Option<&str>,
    data: Option<&str>,
    layout: Option<&str>,
    created: Option<i64>,
    expires: Option<i64>,
) -> Result<ClientToken, EntryRefused> {
    let session_id = session_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| forged("the token names no session_id"))?;
    let data = data.unwrap_or_default();
    if data.chars().count() > MAX_TOKEN_TEXT {
        return Err(forged("connection_data is longer than 1024 characters"));
    }
    let layout = layout.unwrap_or_default();
    if layout.chars().count() > MAX_TOKEN_TEXT {
        return Err(forged(
            "initial_layout_class_list is longer than 1024 characters",
        ));
    }
    let created = created.unwrap_or_else(|| crate::rooms::now_ms() / 1000);
    let expires = match expires {
        None | Some(0) => created.saturating_add(DEFAULT_TOKEN_LIFE),
        Some(t) => t,
    };
    if expires > created.saturating_add(MAX_TOKEN_LIFE + SKEW) {
        return Err(forged(
            "expire_time is more than 30 days after the token was made",
        ));
    }
    Ok(ClientToken {
        project,
        session_id: session_id.to_owned(),
        role: role(role_name)?,
        data: data.to_owned(),
        expires,
        layout: layout.split_whitespace().map(str::to_owned).collect(),
    })
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The join's check of OpenTok client tokens, for the sessions this door created.
pub struct TokenCheck(pub std::sync::Arc<Projects>);

impl CredentialCheck for TokenCheck {
    fn check(
        &self,
        room: &Room,
        credential: &str,
        now_ms: i64,
    ) -> Option<Result<Entry, EntryRefused>> {
        let token = self.0.client_token(credential)?;
        Some(token.and_then(|t| {
            if t.session_id != room.id().as_str() {
                return Err(EntryRefused::OtherRoom);
            }
            let settings = RoomSettings::of(room)
                .ok_or_else(|| forged("the session was not created through the OpenTok API"))?;
            if settings.project != t.project {
                return Err(forged(format!(
                    "the session belongs to another project than '{}'",
                    t.project
                )));
            }
            if t.expires <= now_ms / 1000 {
                return Err(EntryRefused::Expired);
            }
            Ok(Entry {
                id: ParticipantId::new(super::ids::new_connection_id()),
                role: t.role,
                data: t.data,
                door_data: ConnectionData { layout: t.layout }.into_door_data(),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "47000001";
    const SECRET: &str = "s3cret";

    fn projects() -> Projects {
        Projects::new(&[(KEY.into(), SECRET.into())], &[])
    }

    fn sign_hex(data: &str) -> String {
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(data.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn t1(meta: &str, data: &str) -> String {
        format!("T1=={}", STANDARD.encode(format!("{meta}:{data}")))
    }

    #[test]
    fn t1_tokens_of_node_and_ruby_read_alike() {
        let data = "session_id=1_MX4&create_time=1795500471&nonce=0.22&role=moderator&expire_time=1795586871&connection_data=name%3DAl%20ice%26x%3D1&initial_layout_class_list=focus%20full&scope=session.connect";
        let node = t1(&format!("partner_id={KEY}&sig={}", sign_hex(data)), data);
        let t = projects()
            .client_token(&node)
            .expect("a T1 token")
            .expect("valid");
        assert_eq!(t.project, KEY);
        assert_eq!(t.session_id, "1_MX4");
        assert_eq!(t.role, Role::Moderator);
        assert_eq!(t.data, "name=Al ice&x=1");
        assert_eq!(t.expires, 1_795_586_871);
        assert_eq!(t.layout, vec!["focus", "full"]);
        // Ruby: role first, `+` for spaces, no scope, no expiry (24 hours then).
        let data =
            "role=subscriber&session_id=1_MX4&create_time=1795500471&nonce=0.5&connection_data=a+b";
        let ruby = t1(&format!("partner_id={KEY}&sig={}", sign_hex(data)), data);
        let t = projects().client_token(&ruby).expect("T1").expect("valid");
        assert_eq!(t.role, Role::Subscriber);
        assert_eq!(t.data, "a b");
        assert_eq!(t.expires, 1_795_500_471 + 86_400);
        assert!(t.layout.is_empty());
    }

    #[test]
    fn t1_tokens_out_of_rule_are_forged() {
        let ok = "session_id=1_MX4&create_time=1795500471&role=publisher";
        let meta = format!("partner_id={KEY}&sig={}", sign_hex(ok));
        let tampered = t1(&meta, &ok.replace("publisher", "moderator"));
        let other_key = t1(&meta.replace(KEY, "47000002"), ok);
        let long = "session_id=1_MX4&create_time=1795500471&expire_time=1798200000";
        let too_long = t1(&format!("partner_id={KEY}&sig={}", sign_hex(long)), long);
        let bad_role = "session_id=1_MX4&create_time=1795500471&role=admin";
        let role = t1(
            &format!("partner_id={KEY}&sig={}", sign_hex(bad_role)),
            bad_role,
        );
        let big = format!(
            "session_id=1_MX4&create_time=1795500471&connection_data={}",
            "d".repeat(1025)
        );
        let data = t1(&format!("partner_id={KEY}&sig={}", sign_hex(&big)), &big);
        for (what, token, words) in [
            ("tampered", tampered, "does not verify"),
            ("another key", other_key, "unknown API key"),
            ("31 days", too_long, "30 days"),
            ("role", role, "unknown role"),
            ("data", data, "1024"),
            ("not base64", "T1==%%%".to_owned(), "base64"),
        ] {
            match projects().client_token(&token) {
                Some(Err(EntryRefused::Forged(why))) => {
                    assert!(why.contains(words), "{what}: {why}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    fn hs256(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign")
    }

    #[test]
    fn jwt_tokens_are_checked_with_the_project_secret() {
        let claims = serde_json::json!({
            "iss": KEY, "ist": "project", "iat": 1_795_500_471, "nonce": 0.3,
            "session_id": "1_MX4", "role": "publisheronly", "scope": "session.connect",
            "exp": 1_795_586_871, "connection_data": "x", "initial_layout_class_list": "",
        });
        let t = projects()
            .client_token(&hs256(claims.clone(), SECRET))
            .expect("a JWT of a project")
            .expect("valid");
        assert_eq!(t.role, Role::PublisherOnly);
        assert_eq!(t.expires, 1_795_586_871);
        assert!(t.layout.is_empty());
        assert!(matches!(
            projects().client_token(&hs256(claims.clone(), "wrong")),
            Some(Err(EntryRefused::Forged(_)))
        ));
        let mut no_scope = claims.clone();
        no_scope["scope"] = Value::Null;
        assert!(matches!(
            projects().client_token(&hs256(no_scope, SECRET)),
            Some(Err(EntryRefused::Forged(_)))
        ));
        // A JWT naming no project is none of this door's: another check may know it.
        let other = hs256(serde_json::json!({"sub": "x", "exp": 1}), SECRET);
        assert!(projects().client_token(&other).is_none());
        assert!(projects().client_token("tok_abc").is_none());
    }
}
