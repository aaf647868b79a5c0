//! Signed join grants: a JWT that names the room, the participant, its role, its data and
//! its expiry, so a join can be checked without a lookup before the room consumes it once.

use crate::room::{ParticipantId, Role, RoomId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims carried by a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The room it admits to.
    pub room: RoomId,
    /// The participant it admits as.
    pub sub: ParticipantId,
    /// The participant's role.
    pub role: Role,
    /// The participant's server data.
    pub data: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// A grant that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// It is past its expiry.
    #[error("token has expired")]
    Expired,
    /// It was not signed by this server, or is not a grant at all.
    #[error("token is not valid: {0}")]
    Invalid(String),
}

/// Signs and verifies grants with one HMAC key.
#[derive(Clone)]
pub struct GrantKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// The length of a signing key, in bytes.
pub const KEY_LEN: usize = 32;

impl GrantKey {
    /// A key from secret bytes.
    pub fn from_bytes(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Fresh random secret bytes for a new key.
    pub fn generate_secret() -> [u8; KEY_LEN] {
        rand::random()
    }

    /// Signs a grant into its compact JWT form.
    pub fn sign(&self, grant: &Grant) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), grant, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// Verifies a compact JWT at `now_secs` and returns its claims.
    pub fn verify(&self, jwt: &str, now_secs: i64) -> Result<Grant, GrantError> {
        let data =
            jsonwebtoken::decode::<Grant>(jwt, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => GrantError::Expired,
                    _ => GrantError::Invalid(e.to_string()),
                }
            })?;
        // The library's expiry check reads the system clock; the caller's clock decides.
        if data.claims.exp <= now_secs {
            return Err(GrantError::Expired);
        }
        Ok(data.claims)
    }
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(exp: i64) -> Grant {
        Grant {
            room: RoomId::new("ses_A"),
            sub: ParticipantId::new("con_B"),
            role: Role::Moderator,
            data: "{\"user\":\"ana\"}".into(),
            iat: 0,
            exp,
        }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64
    }

    #[test]
    fn round_trip() {
        let key = GrantKey::from_bytes(&GrantKey::generate_secret());
        let g = grant(now() + 3600);
        let jwt = key.sign(&g);
        assert_eq!(key.verify(&jwt, now()), Ok(g));
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let key = GrantKey::from_bytes(b"one key");
        let other = GrantKey::from_bytes(b"another key");
        let jwt = other.sign(&grant(now() + 3600));
        assert!(matches!(
            key.verify(&jwt, now()),
            Err(GrantError::Invalid(_))
        ));
        assert!(matches!(
            key.verify("not.a.jwt", now()),
            Err(GrantError::Invalid(_))
        ));
        // Tampering with the payload breaks the signature.
        let good = key.sign(&grant(now() + 3600));
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = other.sign(&grant(now() + 7200));
        parts[1] = forged_payload.split('.').nth(1).expect("three parts");
        assert!(matches!(
            key.verify(&parts.join("."), now()),
            Err(GrantError::Invalid(_))
        ));
    }

    #[test]
    fn expiry_follows_the_given_clock() {
        let key = GrantKey::from_bytes(b"k");
        let exp = now() + 100;
        let jwt = key.sign(&grant(exp));
        assert!(key.verify(&jwt, exp - 1).is_ok());
        assert_eq!(key.verify(&jwt, exp), Err(GrantError::Expired));
        let old = key.sign(&grant(now() - 10));
        assert_eq!(key.verify(&old, now()), Err(GrantError::Expired));
    }
}
