//! OpenTok's identifiers: session ids in the shape the SDKs decode (the project's API key is
//! inside, and the Node and Python SDKs refuse to mint tokens for a session that does not
//! carry theirs), connection ids, and the dates the create call reports.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The longest session id the SDKs document.
const MAX_SESSION_ID: usize = 255;

/// A new session id of project `api_key`: `1_` + base64url (unpadded) of
/// `1~<apiKey>~<location>~<date>~<random>~`, as the service's ids decode.
pub fn new_session_id(api_key: &str, location: &str, now_ms: i64) -> String {
    let text = format!(
        "1~{api_key}~{location}~{}~{}~",
        date_text(now_ms),
        rand::random::<f64>()
    );
    format!("1_{}", URL_SAFE_NO_PAD.encode(text))
}

/// The API key a session id carries, when it is one of this shape.
pub fn session_project(session_id: &str) -> Option<String> {
    if session_id.len() > MAX_SESSION_ID {
        return None;
    }
    let body = session_id.get(2..)?;
    // The service's ids are base64url; the standard alphabet is accepted too.
    let bytes = URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(body))
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut fields = text.split('~');
    if fields.next() != Some("1") {
        return None;
    }
    fields.next().filter(|k| !k.is_empty()).map(str::to_owned)
}

/// A new connection id: a random UUID (version 4), the shape OpenTok's connection ids have.
pub fn new_connection_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `Mon Mar 17 07:41:31 UTC 2014`: the date text of session ids and `create_dt`.
pub fn date_text(now_ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = now_ms.div_euclid(86_400_000);
    let (y, m, d) = crate::protocols::civil_from_days(days);
    let secs = now_ms.div_euclid(1000).rem_euclid(86_400);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m.saturating_sub(1)).unwrap_or(0).min(11)];
    format!(
        "{weekday} {month} {d:02} {:02}:{:02}:{:02} UTC {y}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_id_decodes_to_its_key() {
        let id = "1_MX4xMjM0NTZ-fk1vbiBNYXIgMTcgMDA6NDE6MzEgUERUIDIwMTR-MC42ODM3ODk1MzQ0OTQyODA4fg";
        assert_eq!(session_project(id).as_deref(), Some("123456"));
    }

    #[test]
    fn new_ids_carry_their_key_and_location() {
        let id = new_session_id("47000001", "10.1.2.3", 1_394_955_691_000);
        assert!(id.starts_with("1_") && id.len() <= MAX_SESSION_ID, "{id}");
        assert!(
            id[2..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        );
        assert_eq!(session_project(&id).as_deref(), Some("47000001"));
        let bytes = URL_SAFE_NO_PAD.decode(&id[2..]).expect("base64url");
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(
            text.starts_with("1~47000001~10.1.2.3~Sun Mar 16 07:41:31 UTC 2014~"),
            "{text}"
        );
        assert_eq!(session_project("ses_abc"), None);
        assert_eq!(session_project("1_"), None);
    }

    #[test]
    fn connection_ids_are_uuids() {
        let id = new_connection_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_connection_id(), id);
    }
}
