//! The OpenTok REST door driven with raw requests that skip the SDKs' own checks: the
//! session-create rules, content negotiation, authentication failures, bad bodies and unknown
//! ids, each answered with its status and an error naming the problem, nothing created or
//! changed, other sessions unaffected.

use crate::support::{Server, TempDir};
use serde_json::{Value, json};

const P1: &str = "47000001";
const S1: &str = "secret-one";
const P2: &str = "47000002";
const S2: &str = "secret-two";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// An `X-OPENTOK-AUTH` JWT with these claims, signed with `secret`.
fn jwt(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// The JWT the Node SDK sends for project `key`.
fn auth(key: &str, secret: &str) -> String {
    let t = now();
    jwt(
        json!({"iss": key, "ist": "project", "iat": t, "exp": t + 300}),
        secret,
    )
}

async fn start() -> (TempDir, Server) {
    let dir = TempDir::new();
    let projects = format!("{P1}:{S1},{P2}:{S2}");
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--opentok-project", &projects, "--recording", "true"],
    )
    .await;
    (dir, s)
}

/// `POST /session/create` with a form, as project 1.
async fn create(s: &Server, form: &str, accept: &str) -> crate::support::Resp {
    let token = auth(P1, S1);
    s.raw(
        "POST",
        "/session/create",
        Some(form),
        &[
            ("x-opentok-auth", &token),
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", accept),
        ],
    )
    .await
}

/// A request as project `key` with its secret.
async fn call(
    s: &Server,
    (key, secret): (&str, &str),
    method: &str,
    path: &str,
    body: Option<&str>,
) -> crate::support::Resp {
    let token = auth(key, secret);
    s.raw(method, path, body, &[("x-opentok-auth", &token)])
        .await
}

/// The number of rooms the OpenVidu REST API lists.
async fn rooms(s: &Server) -> usize {
    let r = s.call("GET", "/openvidu/api/sessions", None).await;
    r.json["numberOfElements"].as_u64().expect("count") as usize
}

/// Asserts the service's error body with `status`, its message containing `words`.
fn refused(r: &crate::support::Resp, status: u16, words: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["code"], status, "{}", r.text);
    let message = r.json["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "'{words}' not in '{message}'");
}

#[tokio::test]
async fn session_create_rules_hold_for_raw_callers() {
    let (_dir, s) = start().await;
    let json = "application/json";
    for (form, words) in [
        ("p2p.preference=enabled&archiveMode=always", "routed"),
        ("p2p.preference=enabled&e2ee=true", "e2ee"),
        (
            "p2p.preference=disabled&archiveMode=always&e2ee=true",
            "e2ee",
        ),
        ("p2p.preference=disabled&archiveName=x", "archiveName"),
        (
            "p2p.preference=disabled&archiveResolution=1280x720",
            "archiveResolution",
        ),
        (
            "p2p.preference=disabled&archiveMode=always&archiveResolution=1280x721",
            "archiveResolution",
        ),
        (
            "p2p.preference=disabled&archiveMode=always&archiveName=",
            "archiveName",
        ),
        ("location=1.2.3", "IPv4"),
        ("location=%3A%3A1", "IPv4"),
        ("p2p.preference=maybe", "p2p.preference"),
        ("archiveMode=sometimes", "archiveMode"),
        ("e2ee=yes", "e2ee"),
    ] {
        let r = create(&s, form, json).await;
        refused(&r, 400, words);
    }
    let long = format!(
        "p2p.preference=disabled&archiveMode=always&archiveName={}",
        "n".repeat(81)
    );
    refused(&create(&s, &long, json).await, 400, "80");
    // Callers that do not take JSON get the error in XML.
    let xml = create(&s, "p2p.preference=maybe", "*/*").await;
    assert_eq!(xml.status, 400);
    assert!(
        xml.text.contains("<errorPayload><code>400</code>"),
        "{}",
        xml.text
    );
    // Not a form, or too large: nothing read.
    let token = auth(P1, S1);
    let r = s
        .raw(
            "POST",
            "/session/create",
            Some("{\"p2p.preference\":\"disabled\"}"),
            &[("x-opentok-auth", &token), ("accept", json)],
        )
        .await;
    refused(&r, 415, "x-www-form-urlencoded");
    let huge = format!("location=&pad={}", "x".repeat(70_000));
    refused(&create(&s, &huge, json).await, 413, "larger");
    assert_eq!(rooms(&s).await, 0, "no refused call created a session");

    // Valid: the Vonage SDK's `location=null`, every documented field, unknown extra fields.
    let r = create(
        &s,
        "archiveMode=always&archiveName=a-b_c~d&archiveResolution=1280x720&e2ee=false&location=null&p2p.preference=disabled&extra=1",
        json,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let id = r.json[0]["session_id"]
        .as_str()
        .expect("a session id")
        .to_owned();
    assert_eq!(r.json[0]["project_id"], P1);
    assert_eq!(
        camerata_server::protocols::opentok::session_project(&id).as_deref(),
        Some(P1)
    );
    // It is an ordinary room for the OpenVidu REST API.
    let ov = s
        .call("GET", &format!("/openvidu/api/sessions/{id}"), None)
        .await;
    assert_eq!(ov.status, 200, "{}", ov.text);
    assert_eq!(ov.json["mediaMode"], "ROUTED");
    assert_eq!(ov.json["recordingMode"], "ALWAYS");
    assert_eq!(ov.json["defaultRecordingProperties"]["name"], "a:b:c:d");
    assert_eq!(
        ov.json["defaultRecordingProperties"]["resolution"],
        "1280x720"
    );
    // Ruby's `Accept: */*` gets XML, with the location inside the id.
    let r = create(&s, "location=10.0.0.7", "*/*").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/xml")
    );
    assert!(
        r.text.contains("<sessions><Session><session_id>1_"),
        "{}",
        r.text
    );
    let relayed = r
        .text
        .split("<session_id>")
        .nth(1)
        .and_then(|t| t.split('<').next());
    let relayed = relayed.expect("an id in the XML").to_owned();
    let ov = s
        .call("GET", &format!("/openvidu/api/sessions/{relayed}"), None)
        .await;
    assert_eq!(ov.json["mediaMode"], "ROUTED", "no p2p.preference: routed");
    assert_eq!(rooms(&s).await, 2);
    s.stop().await;
}

#[tokio::test]
async fn authentication_failures_are_403_and_change_nothing() {
    let (_dir, s) = start().await;
    let t = now();
    let form = "p2p.preference=disabled";
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        ("wrong secret", vec![("x-opentok-auth", auth(P1, "nope"))]),
        (
            "expired",
            vec![(
                "x-opentok-auth",
                jwt(
                    json!({"iss": P1, "ist": "project", "iat": t - 900, "exp": t - 600}),
                    S1,
                ),
            )],
        ),
        (
            "lives an hour",
            vec![(
                "x-opentok-auth",
                jwt(
                    json!({"iss": P1, "ist": "project", "iat": t, "exp": t + 3600}),
                    S1,
                ),
            )],
        ),
        (
            "account scope",
            vec![(
                "x-opentok-auth",
                jwt(
                    json!({"iss": P1, "ist": "account", "iat": t, "exp": t + 60}),
                    S1,
                ),
            )],
        ),
        (
            "unknown key",
            vec![("x-opentok-auth", auth("99999999", S1))],
        ),
        (
            "unsigned",
            vec![(
                "x-opentok-auth",
                format!(
                    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                    base64_url(
                        &json!({"iss": P1, "ist": "project", "iat": t, "exp": t + 60}).to_string()
                    )
                ),
            )],
        ),
        ("not a JWT", vec![("x-opentok-auth", "garbage".to_owned())]),
        (
            "bearer of no application",
            vec![("authorization", format!("Bearer {}", auth(P1, S1)))],
        ),
    ];
    for (what, headers) in &cases {
        let mut h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        h.push(("content-type", "application/x-www-form-urlencoded"));
        h.push(("accept", "application/json"));
        let r = s.raw("POST", "/session/create", Some(form), &h).await;
        assert_eq!(r.status, 403, "{what}: {}", r.text);
        assert_eq!(r.json["code"], 403, "{what}");
    }
    assert_eq!(rooms(&s).await, 0);

    // Project 2's valid JWT on project 1's paths; project 1's session through project 2.
    let created = create(&s, form, "application/json").await;
    let sid = created.json[0]["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v2/project/{P1}/session/{sid}/stream");
    refused(&call(&s, (P2, S2), "GET", &path, None).await, 403, P1);
    let other = format!("/v2/project/{P2}/session/{sid}/stream");
    refused(&call(&s, (P2, S2), "GET", &other, None).await, 404, &sid);
    // Unsupported features need authentication first, then say what is missing.
    let r = s
        .raw(
            "POST",
            &format!("/v2/project/{P1}/broadcast"),
            Some("{}"),
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
    for (method, p) in [
        ("POST", "/broadcast"),
        ("GET", "/broadcast/"),
        ("POST", "/dial"),
        ("POST", "/captions"),
        ("POST", "/render"),
        ("POST", "/connect"),
        ("GET", "/callback"),
    ] {
        let r = call(
            &s,
            (P1, S1),
            method,
            &format!("/v2/project/{P1}{p}"),
            Some("{}"),
        )
        .await;
        refused(&r, 501, "not supported by Camerata");
    }
    // A base URL ending in a slash: `//v2/...` reaches the same route.
    let r = call(
        &s,
        (P1, S1),
        "GET",
        &format!("//v2/project/{P1}/session/{sid}/stream"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"count": 0, "items": []}));
    s.stop().await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn bad_bodies_and_unknown_ids_get_their_status() {
    let (_dir, s) = start().await;
    let created = create(&s, "p2p.preference=disabled", "application/json").await;
    let sid = created.json[0]["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let me = (P1, S1);
    let base = format!("/v2/project/{P1}");
    let signal = format!("{base}/session/{sid}/signal");

    // Signals: wrong content type, malformed, wrong types, too large; nobody connected.
    let token = auth(P1, S1);
    let r = s
        .raw(
            "POST",
            &signal,
            Some("type=chat"),
            &[("x-opentok-auth", &token), ("content-type", "text/plain")],
        )
        .await;
    refused(&r, 415, "application/json");
    refused(
        &call(&s, me, "POST", &signal, Some("{\"type\":")).await,
        400,
        "JSON",
    );
    refused(
        &call(&s, me, "POST", &signal, Some("[1]")).await,
        400,
        "object",
    );
    refused(
        &call(&s, me, "POST", &signal, Some("{\"type\":1}")).await,
        400,
        "'type'",
    );
    let long_type = json!({"type": "t".repeat(129), "data": "x"}).to_string();
    refused(
        &call(&s, me, "POST", &signal, Some(&long_type)).await,
        413,
        "type",
    );
    let big = json!({"type": "chat", "data": "d".repeat(8193)}).to_string();
    refused(
        &call(&s, me, "POST", &signal, Some(&big)).await,
        413,
        "data",
    );
    let huge = json!({"type": "chat", "data": "d".repeat(70_000)}).to_string();
    refused(
        &call(&s, me, "POST", &signal, Some(&huge)).await,
        413,
        "larger",
    );
    let ok = json!({"type": "chat", "data": "hi"}).to_string();
    refused(
        &call(&s, me, "POST", &signal, Some(&ok)).await,
        404,
        "no client",
    );

    // Unknown sessions, connections, streams and archives.
    let unknown = "1_MX40NzAwMDAwMX5-fk1vbiBNYXIgMTcgMDA6NDE6MzEgUERUIDIwMTR-MC42fg";
    for (method, path, body) in [
        (
            "POST",
            format!("{base}/session/{unknown}/signal"),
            Some(ok.as_str()),
        ),
        (
            "POST",
            format!("{base}/session/{sid}/connection/nobody/signal"),
            Some(ok.as_str()),
        ),
        (
            "DELETE",
            format!("{base}/session/{sid}/connection/nobody"),
            None,
        ),
        ("GET", format!("{base}/session/{unknown}/stream"), None),
        (
            "GET",
            format!("{base}/session/{sid}/stream/str_CAM_Abcd_x"),
            None,
        ),
        (
            "POST",
            format!("{base}/session/{sid}/stream/str_CAM_Abcd_x/mute"),
            Some("{}"),
        ),
        (
            "POST",
            format!("{base}/session/{unknown}/mute"),
            Some("{\"active\":true}"),
        ),
        ("GET", format!("{base}/archive/{sid}"), None),
        ("POST", format!("{base}/archive/{sid}/stop"), None),
        ("DELETE", format!("{base}/archive/{sid}"), None),
        (
            "PUT",
            format!("{base}/archive/{sid}/layout"),
            Some("{\"type\":\"pip\"}"),
        ),
        (
            "PATCH",
            format!("{base}/archive/{sid}/streams"),
            Some("{\"removeStream\":\"x\"}"),
        ),
        (
            "POST",
            format!("{base}/archive"),
            Some(&*format!("{{\"sessionId\":\"{unknown}\"}}")),
        ),
    ] {
        let r = call(&s, me, method, &path, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert_eq!(r.json["code"], 404);
    }

    // Archive and class-list bodies checked before anything starts.
    let archive = format!("{base}/archive");
    for (body, status, words) in [
        (json!({}), 400, "sessionId"),
        (
            json!({"sessionId": sid, "hasAudio": false, "hasVideo": "false"}),
            400,
            "hasAudio",
        ),
        (
            json!({"sessionId": sid, "outputMode": "individual", "resolution": "640x480"}),
            400,
            "resolution",
        ),
        (
            json!({"sessionId": sid, "resolution": "800x600"}),
            400,
            "resolution",
        ),
        (
            json!({"sessionId": sid, "layout": {"type": "custom"}}),
            400,
            "stylesheet",
        ),
        (
            json!({"sessionId": sid, "layout": {"type": "pip", "stylesheet": "x"}}),
            400,
            "stylesheet",
        ),
        (
            json!({"sessionId": sid, "layout": {"type": "pip", "screenshareType": "pip"}}),
            400,
            "screenshareType",
        ),
        (
            json!({"sessionId": sid, "layout": {"type": "mosaic"}}),
            400,
            "layout type",
        ),
        (
            json!({"sessionId": sid, "maxBitrate": 100000, "quantizationParameter": 30}),
            400,
            "together",
        ),
        (
            json!({"sessionId": sid, "streamMode": "manual"}),
            501,
            "streamMode",
        ),
        (json!({"sessionId": sid}), 400, "no client"),
    ] {
        let r = call(&s, me, "POST", &archive, Some(&body.to_string())).await;
        refused(&r, status, words);
    }
    let classes = format!("{base}/session/{sid}/stream");
    refused(
        &call(&s, me, "PUT", &classes, Some("{\"items\":3}")).await,
        400,
        "items",
    );
    let unknown_stream = json!({"items": [{"id": "str_x", "layoutClassList": ["full"]}]});
    refused(
        &call(&s, me, "PUT", &classes, Some(&unknown_stream.to_string())).await,
        400,
        "str_x",
    );
    refused(
        &call(&s, me, "GET", &format!("{archive}?count=1001"), None).await,
        400,
        "count",
    );
    refused(
        &call(&s, me, "GET", &format!("{archive}?offset=-1"), None).await,
        400,
        "offset",
    );
    let list = call(&s, me, "GET", &format!("{archive}?sessionId={sid}"), None).await;
    assert_eq!(list.json, json!({"count": 0, "items": []}));

    // The session is untouched by all of it.
    let ov = s
        .call("GET", &format!("/openvidu/api/sessions/{sid}"), None)
        .await;
    assert_eq!(ov.status, 200);
    assert_eq!(ov.json["recordingMode"], "MANUAL");
    assert_eq!(rooms(&s).await, 1);
    s.stop().await;
}
