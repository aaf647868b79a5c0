//! The OpenVidu REST API: shapes, statuses and the order of checks of the spec.

use crate::support::{Server, TempDir, keys, sorted};
use serde_json::{Value, json};

async fn server() -> (Server, TempDir) {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    (s, dir)
}

const API: &str = "/openvidu/api";

const SESSION_KEYS: &[&str] = &[
    "id",
    "object",
    "sessionId",
    "createdAt",
    "recording",
    "broadcasting",
    "mediaMode",
    "recordingMode",
    "defaultRecordingProperties",
    "customSessionId",
    "forcedVideoCodec",
    "allowTranscoding",
    "connections",
];

const CONNECTION_KEYS: &[&str] = &[
    "id",
    "object",
    "status",
    "connectionId",
    "sessionId",
    "createdAt",
    "activeAt",
    "location",
    "ip",
    "platform",
    "token",
    "type",
    "record",
    "role",
    "kurentoOptions",
    "customIceServers",
    "rtspUri",
    "adaptativeBitrate",
    "onlyPlayWithSubscribers",
    "networkCache",
    "serverData",
    "clientData",
    "publishers",
    "subscribers",
];

#[tokio::test]
async fn session_document_has_openvidu_shape() {
    let (s, _d) = server().await;
    let r = s.call("POST", &format!("{API}/sessions"), Some("{}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = &r.json;
    assert_eq!(keys(j), sorted(SESSION_KEYS));
    let id = j["id"].as_str().expect("id");
    assert_eq!(j["sessionId"], id);
    assert!(id.starts_with("ses_") && id.len() == 14, "{id}");
    assert_eq!(j["object"], "session");
    assert_eq!(j["customSessionId"], "");
    assert_eq!(j["mediaMode"], "ROUTED");
    assert_eq!(j["recordingMode"], "MANUAL");
    assert_eq!(j["recording"], false);
    assert_eq!(j["broadcasting"], false);
    assert_eq!(j["forcedVideoCodec"], "MEDIA_SERVER_PREFERRED");
    assert_eq!(
        j["connections"],
        json!({"numberOfElements": 0, "content": []})
    );
    assert_eq!(
        j["defaultRecordingProperties"],
        json!({"name": "", "hasAudio": true, "hasVideo": true, "outputMode": "COMPOSED",
               "recordingLayout": "BEST_FIT", "resolution": "1280x720", "frameRate": 25,
               "shmSize": 536870912})
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert!((now - j["createdAt"].as_i64().expect("number")).abs() < 60_000);
    s.stop().await;
}

#[tokio::test]
async fn session_options_are_kept_and_echoed() {
    let (s, _d) = server().await;
    let body = json!({
        "customSessionId": "Room_1-a", "mediaMode": "RELAYED", "recordingMode": "MANUAL",
        "forcedVideoCodec": "H264", "allowTranscoding": true, "mediaNode": {"id": "media_1"},
        "defaultRecordingProperties": {"outputMode": "INDIVIDUAL", "name": "n~1", "unknown": 5},
        "someUnknownKey": [1, 2]
    });
    let r = s
        .call("POST", &format!("{API}/sessions"), Some(&body.to_string()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], "Room_1-a");
    assert_eq!(r.json["customSessionId"], "Room_1-a");
    assert_eq!(r.json["mediaMode"], "RELAYED");
    assert_eq!(r.json["forcedVideoCodec"], "H264");
    assert_eq!(r.json["allowTranscoding"], true);
    assert_eq!(r.json["mediaNode"], json!({"id": "media_1"}));
    assert_eq!(
        r.json["defaultRecordingProperties"],
        json!({"name": "n~1", "hasAudio": true, "hasVideo": true, "outputMode": "INDIVIDUAL",
               "ignoreFailedStreams": false})
    );
    let g = s
        .call("GET", &format!("{API}/sessions/Room_1-a"), None)
        .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.json, r.json);
    s.stop().await;
}

#[tokio::test]
async fn null_means_default_and_bodyless_post_works() {
    let (s, _d) = server().await;
    let r = s
        .call(
            "POST",
            &format!("{API}/sessions"),
            Some(r#"{"mediaMode":null,"customSessionId":null,"defaultRecordingProperties":null}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["mediaMode"], "ROUTED");
    // The 1.x client posts with no body and no content type.
    let r = s
        .raw(
            "POST",
            &format!("{API}/sessions"),
            None,
            &[(
                "authorization",
                &crate::support::basic("OPENVIDUAPP", crate::support::SECRET),
            )],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["forcedVideoCodec"], "MEDIA_SERVER_PREFERRED");
    s.stop().await;
}

#[tokio::test]
async fn bad_session_bodies_are_400_and_create_nothing() {
    let (s, _d) = server().await;
    let bad = [
        r#"{"customSessionId": 999}"#,
        r#"{"customSessionId": "has space"}"#,
        r#"{"customSessionId": "semi;colon"}"#,
        r#"{"mediaMode": "routed"}"#,
        r#"{"recordingMode": "SOMETIMES"}"#,
        r#"{"allowTranscoding": "yes"}"#,
        r#"{"forcedVideoCodec": "AV1"}"#,
        r#"{"mediaNode": "media_1"}"#,
        r#"{"mediaNode": {"id": 5}}"#,
        r#"{"defaultRecordingProperties": "x"}"#,
        r#"{"defaultRecordingProperties": {"resolution": "4000x720"}}"#,
        r#"{"defaultRecordingProperties": {"frameRate": 0}}"#,
        r#"{"defaultRecordingProperties": {"frameRate": "25"}}"#,
        r#"{"defaultRecordingProperties": {"hasAudio": false, "hasVideo": false}}"#,
        r#"{"defaultRecordingProperties": {"shmSize": 1000}}"#,
        r#"{"defaultRecordingProperties": {"name": "bad name"}}"#,
        r#"{"defaultRecordingProperties": {"outputMode": "composed"}}"#,
        r#"{"mediaMode": "RELAYED", "recordingMode": "ALWAYS"}"#,
        r#"{"mediaMode": "RELAYED", "e2ee": true}"#,
        r#"{"recordingMode": "ALWAYS", "e2ee": true}"#,
        r#"{"location": "example.org"}"#,
        r#"{"location": "::1"}"#,
        r#"{"e2ee": "true"}"#,
        r#"[1, 2]"#,
        r#""text""#,
        r#"{"unterminated": "#,
    ];
    for body in bad {
        let r = s.call("POST", &format!("{API}/sessions"), Some(body)).await;
        r.assert_error(400);
        assert!(r.json["path"].as_str().is_some());
    }
    let list = s.call("GET", &format!("{API}/sessions"), None).await;
    assert_eq!(list.json["numberOfElements"], 0, "nothing half-written");
    // The OpenTok rules accept what they allow.
    for ok in [
        r#"{"location": "192.0.2.1"}"#,
        r#"{"location": "null"}"#,
        r#"{"e2ee": true}"#,
        r#"{"mediaMode": "ROUTED", "recordingMode": "ALWAYS"}"#,
    ] {
        let r = s.call("POST", &format!("{API}/sessions"), Some(ok)).await;
        assert_eq!(r.status, 200, "{ok}: {}", r.text);
    }
    s.stop().await;
}

#[tokio::test]
async fn duplicate_custom_id_is_409_even_when_racing() {
    let (s, _d) = server().await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.call(
                "POST",
                &format!("{API}/sessions"),
                Some(r#"{"customSessionId":"race"}"#),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|&&c| c == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&c| c == 409).count(),
        15,
        "{statuses:?}"
    );
    let s = std::sync::Arc::try_unwrap(s).ok().expect("no other owner");
    let r = s
        .call(
            "POST",
            &format!("{API}/sessions"),
            Some(r#"{"customSessionId":"race"}"#),
        )
        .await;
    r.assert_error(409);
    s.stop().await;
}

#[tokio::test]
async fn get_list_and_delete_sessions() {
    let (s, _d) = server().await;
    s.call("GET", &format!("{API}/sessions/nope"), None)
        .await
        .assert_error(404);
    s.call("DELETE", &format!("{API}/sessions/nope"), None)
        .await
        .assert_error(404);
    let a = s.session(r#"{"customSessionId":"a"}"#).await;
    let b = s.session("{}").await;
    s.call(
        "POST",
        &format!("{API}/sessions/{a}/connection"),
        Some("{}"),
    )
    .await;
    let list = s.call("GET", &format!("{API}/sessions"), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json["numberOfElements"], 2);
    let ids: Vec<&str> = list.json["content"]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);
    // pendingConnections defaults to false on sessions, true on the connection list.
    assert_eq!(
        list.json["content"][0]["connections"]["numberOfElements"],
        0
    );
    let listp = s
        .call(
            "GET",
            &format!("{API}/sessions?pendingConnections=true"),
            None,
        )
        .await;
    assert_eq!(
        listp.json["content"][0]["connections"]["numberOfElements"],
        1
    );
    let one = s.call("GET", &format!("{API}/sessions/{a}"), None).await;
    assert_eq!(one.json["connections"]["numberOfElements"], 0);
    let onep = s
        .call(
            "GET",
            &format!("{API}/sessions/{a}?pendingConnections=true"),
            None,
        )
        .await;
    assert_eq!(onep.json["connections"]["content"][0]["status"], "pending");
    s.call(
        "GET",
        &format!("{API}/sessions/{a}?pendingConnections=yes"),
        None,
    )
    .await
    .assert_error(400);
    s.call("GET", &format!("{API}/sessions?webRtcStats=1"), None)
        .await
        .assert_error(400);

    let d = s.call("DELETE", &format!("{API}/sessions/{a}"), None).await;
    assert_eq!(d.status, 204, "{}", d.text);
    assert!(d.text.is_empty());
    s.call("GET", &format!("{API}/sessions/{a}"), None)
        .await
        .assert_error(404);
    s.call("DELETE", &format!("{API}/sessions/{a}"), None)
        .await
        .assert_error(404);
    // A closed session's id can be used again.
    assert_eq!(s.session(r#"{"customSessionId":"a"}"#).await, "a");
    let again = s
        .call(
            "GET",
            &format!("{API}/sessions/a?pendingConnections=true"),
            None,
        )
        .await;
    assert_eq!(
        again.json["connections"]["numberOfElements"], 0,
        "old grants are gone"
    );
    s.stop().await;
}

#[tokio::test]
async fn connection_document_and_token_url() {
    let (s, _d) = server().await;
    let sid = s.session(r#"{"customSessionId":"room-42"}"#).await;
    let body = json!({
        "type": "WEBRTC", "data": "{\"user\":\"ana\"}", "record": false, "role": "MODERATOR",
        "kurentoOptions": {"videoMaxRecvBandwidth": 777, "videoMinSendBandwidth": "300",
                            "allowedFilters": ["GStreamerFilter", 5]},
        "customIceServers": [{"url": "turn:turn.example.org:3478?transport=tcp",
                              "username": "u", "credential": "p"},
                             {"url": "stun:stun.example.org"}],
        "rtspUri": "ignored for WEBRTC"
    });
    let r = s
        .call(
            "POST",
            &format!("{API}/sessions/{sid}/connection"),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = &r.json;
    assert_eq!(keys(c), sorted(CONNECTION_KEYS));
    let cid = c["id"].as_str().expect("id");
    assert_eq!(c["connectionId"], cid);
    assert!(cid.starts_with("con_") && cid.len() == 14, "{cid}");
    assert_eq!(c["status"], "pending");
    assert_eq!(c["sessionId"], "room-42");
    assert_eq!(c["type"], "WEBRTC");
    assert_eq!(c["record"], false);
    assert_eq!(c["role"], "MODERATOR");
    assert_eq!(c["serverData"], "{\"user\":\"ana\"}");
    for k in [
        "activeAt",
        "location",
        "ip",
        "platform",
        "clientData",
        "publishers",
        "subscribers",
        "rtspUri",
    ] {
        assert_eq!(c[k], Value::Null, "{k}");
    }
    assert_eq!(
        c["kurentoOptions"],
        json!({"videoMaxRecvBandwidth": 777, "videoMinSendBandwidth": 300,
               "allowedFilters": ["GStreamerFilter", "5"]})
    );
    assert_eq!(
        c["customIceServers"],
        json!([{"url": "turn:turn.example.org:3478?transport=tcp", "username": "u", "credential": "p"},
               {"url": "stun:stun.example.org"}])
    );
    let token = c["token"].as_str().expect("token");
    let prefix = format!("ws://{}?sessionId=room-42&token=tok_", s.addr);
    assert!(token.starts_with(&prefix), "{token}");
    let jwt = &token[prefix.len()..];
    assert_eq!(jwt.split('.').count(), 3, "a JWT: {jwt}");
    assert!(
        jwt.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    );
    // It is listed, and can be fetched one by one.
    let one = s
        .call(
            "GET",
            &format!("{API}/sessions/{sid}/connection/{cid}"),
            None,
        )
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(&one.json, c);
    let list = s
        .call("GET", &format!("{API}/sessions/{sid}/connection"), None)
        .await;
    assert_eq!(list.json["numberOfElements"], 1);
    assert_eq!(&list.json["content"][0], c);
    let none = s
        .call(
            "GET",
            &format!("{API}/sessions/{sid}/connection?pendingConnections=false"),
            None,
        )
        .await;
    assert_eq!(none.json, json!({"numberOfElements": 0, "content": []}));
    s.stop().await;
}

#[tokio::test]
async fn connection_defaults_and_roles() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    // openvidu-node-client sends every property as null when called without options.
    let nulls = r#"{"type":null,"data":null,"record":null,"role":null,"kurentoOptions":null,"rtspUri":null,"adaptativeBitrate":null,"onlyPlayWithSubscribers":null,"networkCache":null,"customIceServers":null}"#;
    let r = s
        .call(
            "POST",
            &format!("{API}/sessions/{sid}/connection"),
            Some(nulls),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["role"], "PUBLISHER");
    assert_eq!(r.json["record"], true);
    assert_eq!(r.json["serverData"], "");
    assert_eq!(r.json["kurentoOptions"], Value::Null);
    assert_eq!(r.json["customIceServers"], json!([]));
    let r = s
        .call("POST", &format!("{API}/sessions/{sid}/connection"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for role in ["SUBSCRIBER", "PUBLISHER", "MODERATOR", "PUBLISHER_ONLY"] {
        let r = s
            .call(
                "POST",
                &format!("{API}/sessions/{sid}/connection"),
                Some(&json!({ "role": role }).to_string()),
            )
            .await;
        assert_eq!(r.json["role"], role);
    }
    let data = "x".repeat(1000);
    let r = s
        .call(
            "POST",
            &format!("{API}/sessions/{sid}/connection"),
            Some(&json!({ "data": data }).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "1000 characters are allowed");
    // Characters, not bytes.
    let data = "é".repeat(1000);
    let r = s
        .call(
            "POST",
            &format!("{API}/sessions/{sid}/connection"),
            Some(&json!({ "data": data }).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "1000 two-byte characters are allowed");
    s.stop().await;
}

#[tokio::test]
async fn bad_connection_bodies() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    let path = format!("{API}/sessions/{sid}/connection");
    let over = json!({ "data": "x".repeat(1001) }).to_string();
    let bad = [
        over.as_str(),
        r#"{"role": "ADMIN"}"#,
        r#"{"role": "publisher"}"#,
        r#"{"role": 123}"#,
        r#"{"data": true}"#,
        r#"{"record": "yes"}"#,
        r#"{"type": "SIP"}"#,
        r#"{"kurentoOptions": 5}"#,
        r#"{"kurentoOptions": {"videoMaxRecvBandwidth": "lots"}}"#,
        r#"{"kurentoOptions": {"allowedFilters": "x"}}"#,
        r#"{"customIceServers": {"url": "stun:x"}}"#,
        r#"{"customIceServers": ["stun:x"]}"#,
        r#"{"customIceServers": [{"url": "http://x"}]}"#,
        r#"{"customIceServers": [{"url": "turn:x"}]}"#,
        r#"{"customIceServers": [{"url": "stun:x", "username": "u", "credential": "c"}]}"#,
        r#"{"customIceServers": [{"url": "turn:x", "staticAuthSecret": "s", "username": "u"}]}"#,
        r#"{"type": "IPCAM"}"#,
        r#"{"type": "IPCAM", "rtspUri": "ftp://cam"}"#,
        r#"{"type": "IPCAM", "rtspUri": "rtsp://cam", "networkCache": "x"}"#,
    ];
    for body in bad {
        let r = s.call("POST", &path, Some(body)).await;
        r.assert_error(400);
    }
    let list = s.call("GET", &path, None).await;
    assert_eq!(list.json["numberOfElements"], 0, "nothing half-written");
    // An unknown session is decided before the body.
    s.call(
        "POST",
        &format!("{API}/sessions/nope/connection"),
        Some(r#"{"role": 5}"#),
    )
    .await
    .assert_error(404);
    // A valid IP camera is refused with a documented reason.
    s.call(
        "POST",
        &path,
        Some(r#"{"type": "IPCAM", "rtspUri": "rtsp://cam.example.org/live"}"#),
    )
    .await
    .assert_error(501);
    // A TURN static secret mints credentials.
    let r = s
        .call(
            "POST",
            &path,
            Some(r#"{"customIceServers": [{"url": "turn:t.example.org", "staticAuthSecret": "shh"}]}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ice = &r.json["customIceServers"][0];
    assert!(ice["username"].as_str().expect("minted").contains(':'));
    assert!(ice.get("staticAuthSecret").is_none());
    s.stop().await;
}

#[tokio::test]
async fn get_patch_delete_connection_statuses() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    let c = s
        .call(
            "POST",
            &format!("{API}/sessions/{sid}/connection"),
            Some(r#"{"data":"d"}"#),
        )
        .await;
    let cid = c.json["id"].as_str().expect("id").to_owned();
    // Unknown session: 400 on GET and DELETE of one connection (OpenVidu's quirk).
    s.call(
        "GET",
        &format!("{API}/sessions/nope/connection/{cid}"),
        None,
    )
    .await
    .assert_error(400);
    s.call(
        "DELETE",
        &format!("{API}/sessions/nope/connection/{cid}"),
        None,
    )
    .await
    .assert_error(400);
    s.call("GET", &format!("{API}/sessions/nope/connection"), None)
        .await
        .assert_error(404);
    s.call(
        "GET",
        &format!("{API}/sessions/{sid}/connection/con_nope"),
        None,
    )
    .await
    .assert_error(404);
    // PATCH applies role and record only, and always answers the whole document.
    let p = s
        .call(
            "PATCH",
            &format!("{API}/sessions/{sid}/connection/{cid}"),
            Some(r#"{"role":"SUBSCRIBER","record":false,"data":"ignored"}"#),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.json["role"], "SUBSCRIBER");
    assert_eq!(p.json["record"], false);
    assert_eq!(p.json["serverData"], "d");
    let same = s
        .call(
            "PATCH",
            &format!("{API}/sessions/{sid}/connection/{cid}"),
            Some("{}"),
        )
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(same.json, p.json);
    for bad in [
        r#"{"role": false}"#,
        r#"{"record": 123}"#,
        r#"{"record": "WRONG"}"#,
    ] {
        s.call(
            "PATCH",
            &format!("{API}/sessions/{sid}/connection/{cid}"),
            Some(bad),
        )
        .await
        .assert_error(400);
    }
    s.call(
        "PATCH",
        &format!("{API}/sessions/nope/connection/{cid}"),
        Some(r#"{"role": false}"#),
    )
    .await
    .assert_error(404);
    s.call(
        "PATCH",
        &format!("{API}/sessions/{sid}/connection/con_nope"),
        Some("{}"),
    )
    .await
    .assert_error(404);
    // DELETE of a pending connection invalidates its token.
    let d = s
        .call(
            "DELETE",
            &format!("{API}/sessions/{sid}/connection/{cid}"),
            None,
        )
        .await;
    assert_eq!(d.status, 204, "{}", d.text);
    s.call(
        "DELETE",
        &format!("{API}/sessions/{sid}/connection/{cid}"),
        None,
    )
    .await
    .assert_error(404);
    let list = s
        .call("GET", &format!("{API}/sessions/{sid}/connection"), None)
        .await;
    assert_eq!(list.json["numberOfElements"], 0);
    // The session stays: revoking a grant is not a participant leaving.
    assert_eq!(
        s.call("GET", &format!("{API}/sessions/{sid}"), None)
            .await
            .status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn delete_stream_statuses() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    s.call(
        "DELETE",
        &format!("{API}/sessions/nope/stream/str_CAM_X"),
        None,
    )
    .await
    .assert_error(400);
    s.call(
        "DELETE",
        &format!("{API}/sessions/{sid}/stream/str_CAM_X"),
        None,
    )
    .await
    .assert_error(404);
    s.stop().await;
}

#[tokio::test]
async fn deprecated_token_call() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    let path = format!("{API}/tokens");
    s.call("POST", &path, None).await.assert_error(400);
    s.call("POST", &path, Some("{}")).await.assert_error(400);
    s.call("POST", &path, Some(r#"{"session": 5}"#))
        .await
        .assert_error(400);
    s.call("POST", &path, Some(r#"{"session": "nope"}"#))
        .await
        .assert_error(404);
    s.call(
        "POST",
        &path,
        Some(&json!({"session": sid, "role": "KING"}).to_string()),
    )
    .await
    .assert_error(400);
    let r = s
        .call(
            "POST",
            &path,
            Some(
                &json!({"session": sid, "role": "SUBSCRIBER", "data": "bob", "record": false,
                          "kurentoOptions": {"videoMaxSendBandwidth": 500}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        keys(&r.json),
        sorted(&[
            "id",
            "token",
            "createdAt",
            "connectionId",
            "session",
            "data",
            "role",
            "kurentoOptions"
        ])
    );
    assert_eq!(r.json["id"], r.json["token"]);
    assert_eq!(r.json["session"], sid.as_str());
    assert_eq!(r.json["role"], "SUBSCRIBER");
    assert_eq!(r.json["data"], "bob");
    let plain = s
        .call("POST", &path, Some(&json!({"session": sid}).to_string()))
        .await;
    assert!(plain.json.get("kurentoOptions").is_none());
    assert_eq!(plain.json["role"], "PUBLISHER");
    // The token is a pending connection, always recorded.
    let cid = r.json["connectionId"].as_str().expect("id");
    let c = s
        .call(
            "GET",
            &format!("{API}/sessions/{sid}/connection/{cid}"),
            None,
        )
        .await;
    assert_eq!(c.json["token"], r.json["token"]);
    assert_eq!(c.json["record"], true);
    s.stop().await;
}

#[tokio::test]
async fn signal_statuses() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    let path = format!("{API}/signal");
    s.call("POST", &path, None).await.assert_error(400);
    for bad in [
        json!({"session": 1}),
        json!({"session": sid, "type": 1}),
        json!({"session": sid, "data": {}}),
        json!({"session": sid, "to": "con_x"}),
        json!({"session": sid, "to": [1]}),
        json!({"type": "t"}),
    ] {
        s.call("POST", &path, Some(&bad.to_string()))
            .await
            .assert_error(400);
    }
    s.call("POST", &path, Some(r#"{"session":"nope"}"#))
        .await
        .assert_error(404);
    // Nobody is connected to a session that only has tokens.
    s.call(
        "POST",
        &path,
        Some(&json!({"session": sid, "to": []}).to_string()),
    )
    .await
    .assert_error(406);
    s.stop().await;
}

#[tokio::test]
async fn recording_calls_answer_as_a_server_without_recording() {
    let (s, _d) = server().await;
    let sid = s.session("{}").await;
    s.call("POST", &format!("{API}/recordings/start"), None)
        .await
        .assert_error(400);
    s.call(
        "POST",
        &format!("{API}/recordings/start"),
        Some(&json!({"session": sid}).to_string()),
    )
    .await
    .assert_error(501);
    s.call("POST", &format!("{API}/recordings/stop/{sid}"), None)
        .await
        .assert_error(501);
    s.call("GET", &format!("{API}/recordings/{sid}"), None)
        .await
        .assert_error(501);
    s.call("GET", &format!("{API}/recordings"), None)
        .await
        .assert_error(501);
    s.call("DELETE", &format!("{API}/recordings/{sid}"), None)
        .await
        .assert_error(501);
    s.stop().await;
}

#[tokio::test]
async fn config_and_health() {
    let (s, _d) = server().await;
    let c = s.call("GET", &format!("{API}/config"), None).await;
    assert_eq!(c.status, 200);
    assert_eq!(c.json["VERSION"], "2.32.2");
    assert_eq!(c.json["OPENVIDU_PUBLICURL"], format!("http://{}/", s.addr));
    assert_eq!(c.json["HTTPS_PORT"], s.addr.port());
    assert_eq!(c.json["OPENVIDU_RECORDING"], false);
    for (path, want) in [
        ("openvidu-version", "2.32.2".to_owned()),
        ("openvidu-recording", "false".to_owned()),
        ("openvidu-cdr", "false".to_owned()),
        (
            "openvidu-recording-path",
            "/opt/openvidu/recordings/".to_owned(),
        ),
        ("openvidu-publicurl", format!("http://{}/", s.addr)),
    ] {
        let r = s.call("GET", &format!("{API}/config/{path}"), None).await;
        assert_eq!((r.status, r.text.as_str()), (200, want.as_str()), "{path}");
    }
    // The public URL needs no credentials; the rest does.
    let r = s
        .raw(
            "GET",
            &format!("{API}/config/openvidu-publicurl"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .raw(
            "HEAD",
            &format!("{API}/config/openvidu-publicurl"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    s.raw("GET", &format!("{API}/config"), None, &[])
        .await
        .assert_error(401);
    let h = s.call("GET", &format!("{API}/health"), None).await;
    assert_eq!(
        h.json,
        json!({"status": "UP", "disconnectedMediaNodes": []})
    );
    s.stop().await;
}

#[tokio::test]
async fn authentication() {
    let (s, _d) = server().await;
    let path = format!("{API}/sessions");
    let wrong_user = crate::support::basic("ADMIN", crate::support::SECRET);
    let wrong_pass = crate::support::basic("OPENVIDUAPP", "nope");
    for auth in [
        None,
        Some(wrong_user.as_str()),
        Some(wrong_pass.as_str()),
        Some("Basic !!!not-base64"),
        Some("Bearer abc"),
        Some("Basic"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = s.raw("POST", &path, Some("{}"), &headers).await;
        r.assert_error(401);
        assert_eq!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"Realm\"")
        );
    }
    let list = s.call("GET", &path, None).await;
    assert_eq!(
        list.json["numberOfElements"], 0,
        "refused calls create nothing"
    );
    // The scheme name is case-insensitive.
    let lower =
        crate::support::basic("OPENVIDUAPP", crate::support::SECRET).replacen("Basic", "basic", 1);
    assert_eq!(
        s.raw("GET", &path, None, &[("authorization", &lower)])
            .await
            .status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn framework_errors_are_json() {
    let (s, _d) = server().await;
    let big = format!("{{\"data\":\"{}\"}}", "x".repeat(70 * 1024));
    s.call("POST", &format!("{API}/sessions"), Some(&big))
        .await
        .assert_error(413);
    s.call("PUT", &format!("{API}/sessions"), Some("{}"))
        .await
        .assert_error(405);
    s.call("GET", &format!("{API}/nothing-here"), None)
        .await
        .assert_error(404);
    s.call("GET", "/no/such/page", None).await.assert_error(404);
    // The node client sends a form content type on calls without a body.
    let r = s
        .raw(
            "GET",
            &format!("{API}/sessions"),
            None,
            &[
                (
                    "authorization",
                    &crate::support::basic("OPENVIDUAPP", crate::support::SECRET),
                ),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn cors_preflight_needs_no_credentials() {
    let (s, _d) = server().await;
    let r = s
        .raw(
            "OPTIONS",
            &format!("{API}/sessions"),
            None,
            &[
                ("origin", "http://app.example.org"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    s.stop().await;
}

#[tokio::test]
async fn sessions_nobody_joins_are_collected() {
    let dir = TempDir::new();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &[
            "--sessions-garbage-interval",
            "1",
            "--sessions-garbage-threshold",
            "0",
        ],
    )
    .await;
    let sid = s.session("{}").await;
    let mut gone = false;
    for _ in 0..100 {
        if s.call("GET", &format!("{API}/sessions/{sid}"), None)
            .await
            .status
            == 404
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the sweep dropped the idle session");
    s.stop().await;
}

/// Brute force: an address that fails authentication `--auth-failure-limit` times within a
/// minute gets the wrong-secret status for `--auth-block-seconds`, even with the right
/// secret; other addresses are served; the block ends.
#[tokio::test]
async fn authentication_failures_block_the_address_for_a_while() {
    use crate::support::{basic, request_from};
    let dir = crate::support::TempDir::new();
    let s = Server::start_with(
        &dir.sqlite_url(),
        dir.0.clone(),
        &["--auth-failure-limit", "3", "--auth-block-seconds", "2"],
    )
    .await;
    let wrong = basic("OPENVIDUAPP", "guess");
    let right = basic("OPENVIDUAPP", crate::support::SECRET);
    let me = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    let other = Some(std::net::IpAddr::from([127, 0, 0, 2]));
    async fn get(s: &Server, source: Option<std::net::IpAddr>, auth: &str) -> u16 {
        request_from(
            source,
            s.addr,
            "GET",
            "/openvidu/api/sessions",
            Some(auth),
            None,
            &[],
        )
        .await
        .status
    }
    for _ in 0..3 {
        assert_eq!(get(&s, me, &wrong).await, 401);
    }
    assert_eq!(
        get(&s, me, &right).await,
        401,
        "blocked: even the right secret is refused"
    );
    assert_eq!(
        get(&s, other, &right).await,
        200,
        "another address is served"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(get(&s, me, &right).await, 200, "the block ends");
    s.stop().await;
}
