//! The pre-2.16 paths that the 1.x callback client and old backends call.

use crate::support::{Server, TempDir};
use serde_json::json;

#[tokio::test]
async fn legacy_paths_answer_with_modern_json() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    // The 1.x client: POST /api/sessions with no body, then POST /api/tokens.
    let auth = crate::support::basic("OPENVIDUAPP", crate::support::SECRET);
    let r = s
        .raw("POST", "/api/sessions", None, &[("authorization", &auth)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sid = r.json["id"].as_str().expect("id").to_owned();
    assert!(sid.starts_with("ses_"));
    let t = s
        .call(
            "POST",
            "/api/tokens",
            Some(&json!({"session": sid, "role": "PUBLISHER", "data": ""}).to_string()),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let token = t.json["id"].as_str().expect("token in id");
    assert!(token.starts_with(&format!("ws://{}?sessionId={sid}&token=tok_", s.addr)));
    // An empty builder sends only the session.
    let t = s
        .call(
            "POST",
            "/api/tokens",
            Some(&json!({"session": sid}).to_string()),
        )
        .await;
    assert_eq!(t.json["role"], "PUBLISHER");
    assert_eq!(t.json["data"], "");
    // Errors a 1.x client may meet are JSON, so its JSON.parse does not throw.
    let e = s.raw("POST", "/api/sessions", None, &[]).await;
    e.assert_error(401);
    s.call("POST", "/api/tokens", Some(r#"{"session":"nope"}"#))
        .await
        .assert_error(404);
    // Other legacy prefixes.
    assert_eq!(
        s.call("GET", &format!("/api/sessions/{sid}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        s.call("GET", "/config", None).await.json["VERSION"],
        "2.32.2"
    );
    assert_eq!(
        s.raw("GET", "/config/openvidu-publicurl", None, &[])
            .await
            .status,
        200
    );
    assert_eq!(s.call("GET", "/accept-certificate", None).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn legacy_paths_can_be_switched_off() {
    let dir = TempDir::new();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--support-deprecated-api", "false"],
    )
    .await;
    s.call("POST", "/api/sessions", Some("{}"))
        .await
        .assert_error(404);
    s.call("GET", "/config", None).await.assert_error(404);
    assert_eq!(
        s.call("POST", "/openvidu/api/sessions", Some("{}"))
            .await
            .status,
        200
    );
    s.stop().await;
}
