//! Who may use the Janus API: off by default, as Janus ships. With an API secret, every
//! request but `info` and `ping` carries it as `apisecret`; with a token secret, requests may
//! carry instead a token signed with it, in Janus's signed-token form
//! `<expiry>,janus,<plugin>[,<plugin>…]:<base64 HMAC-SHA1 of what precedes the colon>`, valid
//! until its expiry (Unix seconds) and, for `attach`, only for the plugins it names. Either
//! one suffices. Janus's stored tokens need its Admin API, which Camerata does not serve.

use super::error::JanusError;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// The configured checks.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// Janus's `api_secret`.
    pub api_secret: Option<String>,
    /// Janus's `token_auth_secret` (signed tokens).
    pub token_secret: Option<String>,
}

impl Auth {
    /// Whether any check is on.
    pub fn enabled(&self) -> bool {
        self.api_secret.is_some() || self.token_secret.is_some()
    }

    /// Checks a request's credentials: `secret` and `token` as given (the body's
    /// `apisecret` and `token`, or a long poll's query), `now` in Unix seconds, and the
    /// plugin an `attach` asks for.
    pub fn check(
        &self,
        secret: Option<&str>,
        token: Option<&str>,
        now: u64,
        attach: Option<&str>,
    ) -> Result<(), JanusError> {
        if !self.enabled() {
            return Ok(());
        }
        if let (Some(expected), Some(given)) = (&self.api_secret, secret)
            && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
        {
            return Ok(());
        }
        if let (Some(key), Some(token)) = (&self.token_secret, token)
            && let Some(plugins) = signed_plugins(key, token, now)
        {
            return match attach {
                Some(p) if !plugins.iter().any(|q| q == p) => {
                    Err(JanusError::TokenPlugin(p.to_owned()))
                }
                _ => Ok(()),
            };
        }
        Err(JanusError::Unauthorized)
    }

    /// Checks a request body.
    pub fn check_body(
        &self,
        o: &Map<String, Value>,
        now: u64,
        attach: Option<&str>,
    ) -> Result<(), JanusError> {
        let text = |k: &str| o.get(k).and_then(Value::as_str);
        self.check(text("apisecret"), text("token"), now, attach)
    }
}

/// The plugins a signed token opens, when its signature holds and it has not expired.
fn signed_plugins(key: &str, token: &str, now: u64) -> Option<Vec<String>> {
    let (text, signature) = token.split_once(':')?;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(text.as_bytes());
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .ok()?;
    mac.verify_slice(&given).ok()?;
    let mut fields = text.split(',');
    let expiry: u64 = fields.next()?.parse().ok()?;
    if fields.next()? != "janus" || expiry <= now {
        return None;
    }
    Some(fields.map(str::to_owned).collect())
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &str, text: &str) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("any key");
        mac.update(text.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("{text}:{sig}")
    }

    #[test]
    fn secrets_and_signed_tokens() {
        let off = Auth::default();
        assert_eq!(off.check(None, None, 0, None), Ok(()));
        let auth = Auth {
            api_secret: Some("s3".into()),
            token_secret: Some("k".into()),
        };
        assert_eq!(auth.check(Some("s3"), None, 0, None), Ok(()));
        assert_eq!(
            auth.check(Some("nope"), None, 0, None),
            Err(JanusError::Unauthorized)
        );
        let token = sign("k", "2000,janus,janus.plugin.videoroom");
        assert_eq!(auth.check(None, Some(&token), 1000, None), Ok(()));
        assert_eq!(
            auth.check(None, Some(&token), 1000, Some("janus.plugin.videoroom")),
            Ok(())
        );
        assert_eq!(
            auth.check(None, Some(&token), 1000, Some("janus.plugin.echotest")),
            Err(JanusError::TokenPlugin("janus.plugin.echotest".into()))
        );
        assert_eq!(
            auth.check(None, Some(&token), 2000, None),
            Err(JanusError::Unauthorized),
            "expired"
        );
        let forged = sign("other", "2000,janus,janus.plugin.videoroom");
        assert_eq!(
            auth.check(None, Some(&forged), 1000, None),
            Err(JanusError::Unauthorized)
        );
    }
}
