//! STUN and TURN servers handed to participants: the checks a server given by an API call or
//! by the configuration must pass (as OpenVidu checks `customIceServers` and
//! `OPENVIDU_WEBRTC_ICE_SERVERS`), and TURN credentials minted from a static auth secret.

use crate::room::IceServer;
use base64::Engine;
use hmac::{Hmac, Mac};

/// One ICE server as asked for, before checking.
#[derive(Debug, Default, Clone)]
pub struct IceServerRequest {
    /// The URL.
    pub url: Option<String>,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<String>,
    /// Secret to mint time-limited TURN credentials from.
    pub static_auth_secret: Option<String>,
}

fn host_ok(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks one ICE server and returns it with final credentials; `now_secs` dates minted
/// TURN credentials.
pub fn check_ice_server(req: IceServerRequest, now_secs: i64) -> Result<IceServer, String> {
    let url = req.url.ok_or("every ICE server needs a 'url'")?;
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| format!("'{url}' has no scheme"))?;
    let turn = match scheme {
        "turn" | "turns" => true,
        "stun" | "stuns" => false,
        _ => {
            return Err(format!(
                "'{url}': scheme must be turn, turns, stun or stuns"
            ));
        }
    };
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    if let Some(q) = query {
        if !turn {
            return Err(format!("'{url}': only TURN URLs may have a query"));
        }
        if q != "transport=udp" && q != "transport=tcp" {
            return Err(format!(
                "'{url}': the only query allowed is ?transport=udp or ?transport=tcp"
            ));
        }
    }
    let (host, port) = match hostport.find(']') {
        Some(end) if hostport.starts_with('[') => match &hostport[end + 1..] {
            "" => (&hostport[..=end], None),
            tail => (
                &hostport[..=end],
                Some(tail.strip_prefix(':').unwrap_or(tail)),
            ),
        },
        _ => match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if !host_ok(host) {
        return Err(format!("'{url}': '{host}' is not a valid host"));
    }
    if let Some(p) = port {
        match p.parse::<u32>() {
            Ok(1..=65535) => {}
            _ => return Err(format!("'{url}': port must be 1 to 65535")),
        }
    }
    let has_creds = req.username.is_some() || req.credential.is_some();
    if !turn {
        if has_creds || req.static_auth_secret.is_some() {
            return Err(format!("'{url}': STUN servers take no credentials"));
        }
        return Ok(IceServer {
            url,
            username: None,
            credential: None,
        });
    }
    match (req.static_auth_secret, req.username, req.credential) {
        (Some(secret), None, None) => {
            let (username, credential) = mint_turn_credentials(&secret, now_secs);
            Ok(IceServer {
                url,
                username: Some(username),
                credential: Some(credential),
            })
        }
        (Some(_), _, _) => Err(format!(
            "'{url}': give either staticAuthSecret or username and credential, not both"
        )),
        (None, Some(u), Some(c)) => Ok(IceServer {
            url,
            username: Some(u),
            credential: Some(c),
        }),
        (None, _, _) => Err(format!(
            "'{url}': TURN needs username and credential, or staticAuthSecret"
        )),
    }
}

/// Time-limited TURN credentials (the TURN REST convention): a user name that carries its
/// expiry, and the HMAC-SHA1 of it under the shared secret.
pub fn mint_turn_credentials(secret: &str, now_secs: i64) -> (String, String) {
    use rand::distr::{Alphanumeric, SampleString};
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 8);
    let username = format!("{}:{suffix}", now_secs + 86_400);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

/// Parses `OPENVIDU_WEBRTC_ICE_SERVERS`: a JSON array of strings like
/// `"url=turn:host:3478,username=u,credential=p"`.
pub fn parse_ice_server_config(text: &str, _secret: &str) -> Result<Vec<IceServer>, String> {
    let items: Vec<String> =
        serde_json::from_str(text).map_err(|e| format!("must be a JSON array of strings: {e}"))?;
    let now = crate::rooms::now_ms() / 1000;
    items
        .iter()
        .map(|item| {
            let mut req = IceServerRequest::default();
            for part in item.split(',') {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| format!("'{part}' is not key=value"))?;
                let v = Some(v.trim().to_owned());
                match k.trim() {
                    "url" => req.url = v,
                    "username" => req.username = v,
                    "credential" => req.credential = v,
                    "staticAuthSecret" => req.static_auth_secret = v,
                    other => return Err(format!("unknown key '{other}'")),
                }
            }
            check_ice_server(req, now)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str, u: Option<&str>, c: Option<&str>, s: Option<&str>) -> IceServerRequest {
        IceServerRequest {
            url: Some(url.into()),
            username: u.map(Into::into),
            credential: c.map(Into::into),
            static_auth_secret: s.map(Into::into),
        }
    }

    #[test]
    fn accepted_servers() {
        for r in [
            req("stun:stun.example.org:3478", None, None, None),
            req("stuns:10.0.0.1", None, None, None),
            req("turn:[::1]:3478?transport=tcp", Some("u"), Some("p"), None),
            req("turns:turn.example.org", Some("u"), Some("p"), None),
        ] {
            let url = r.url.clone();
            assert!(check_ice_server(r, 0).is_ok(), "{url:?}");
        }
    }

    #[test]
    fn refused_servers() {
        for r in [
            req("http://x", None, None, None),
            req("stun:host?transport=udp", None, None, None),
            req("turn:host?transport=sctp", Some("u"), Some("p"), None),
            req("turn:host", None, None, None),
            req("turn:host", Some("u"), None, Some("s")),
            req("stun:host", Some("u"), Some("p"), None),
            req("stun:bad_host!", None, None, None),
            req("stun:host:70000", None, None, None),
        ] {
            let url = r.url.clone();
            assert!(check_ice_server(r, 0).is_err(), "{url:?}");
        }
    }

    #[test]
    fn static_secret_mints_verifiable_credentials() {
        let s = check_ice_server(req("turn:t.example.org", None, None, Some("shh")), 1_000)
            .expect("valid");
        let user = s.username.expect("minted");
        assert!(user.starts_with("87400:"));
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"shh").expect("key");
        mac.update(user.as_bytes());
        let expect = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(s.credential, Some(expect));
    }

    #[test]
    fn config_format() {
        let v = parse_ice_server_config(
            r#"["url=turn:turn.example.org:3478,username=u,credential=p","url=stun:s.example.org"]"#,
            "x",
        )
        .expect("valid");
        assert_eq!(v.len(), 2);
        assert!(parse_ice_server_config("[\"url=turn:x\"]", "x").is_err());
        assert!(parse_ice_server_config("nope", "x").is_err());
    }
}
