//! Durable state: a restart keeps sessions and their tokens, on SQLite and PostgreSQL; a
//! token is admitted once, and refused when forged, expired, reused or for a closed session.

use crate::support::{Server, TempDir};
use camerata_server::room::{ActiveInfo, RoomId};
use camerata_server::rooms::{AdmitError, Lifetimes, Rooms};
use camerata_server::store::Store;
use std::time::Duration;

const API: &str = "/openvidu/api";

fn info() -> ActiveInfo {
    ActiveInfo {
        joined_at: 0,
        ip: "127.0.0.1".into(),
        platform: "test".into(),
        client_data: String::new(),
        door: "test".into(),
        streams: Vec::new(),
        subscriptions: Vec::new(),
    }
}

fn lifetimes() -> Lifetimes {
    Lifetimes {
        grant_ttl: Duration::from_secs(3600),
        gc_interval: Duration::ZERO,
        gc_threshold: Duration::from_secs(3600),
    }
}

/// The JWT inside a token URL.
fn jwt(token: &str) -> &str {
    token
        .split("&token=tok_")
        .nth(1)
        .expect("token has a tok_ part")
}

async fn restart_keeps_sessions_and_tokens(database_url: &str, dir: std::path::PathBuf) {
    let s = Server::start_with(database_url, dir.clone(), &[]).await;
    let sid = s
        .session(r#"{"customSessionId":"kept","mediaMode":"ROUTED","recordingMode":"ALWAYS","forcedVideoCodec":"VP8"}"#)
        .await;
    let other = s.session("{}").await;
    let c = s
        .call(
            "POST",
            &format!("{API}/sessions/{sid}/connection"),
            Some(r#"{"role":"MODERATOR","data":"ana","kurentoOptions":{"videoMaxRecvBandwidth":600}}"#),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text);
    let revoked = s
        .call(
            "POST",
            &format!("{API}/sessions/{sid}/connection"),
            Some("{}"),
        )
        .await;
    let revoked_id = revoked.json["id"].as_str().expect("id").to_owned();
    assert_eq!(
        s.call(
            "DELETE",
            &format!("{API}/sessions/{sid}/connection/{revoked_id}"),
            None
        )
        .await
        .status,
        204
    );
    let patched = s
        .call(
            "POST",
            &format!("{API}/sessions/{other}/connection"),
            Some("{}"),
        )
        .await;
    let patched_id = patched.json["id"].as_str().expect("id").to_owned();
    s.call(
        "PATCH",
        &format!("{API}/sessions/{other}/connection/{patched_id}"),
        Some(r#"{"role":"SUBSCRIBER"}"#),
    )
    .await;
    let gone = s.session("{}").await;
    assert_eq!(
        s.call("DELETE", &format!("{API}/sessions/{gone}"), None)
            .await
            .status,
        204
    );
    let before = s
        .call(
            "GET",
            &format!("{API}/sessions?pendingConnections=true"),
            None,
        )
        .await;
    s.stop().await;

    let s = Server::start_with(database_url, dir.clone(), &[]).await;
    let after = s
        .call(
            "GET",
            &format!("{API}/sessions?pendingConnections=true"),
            None,
        )
        .await;
    assert_eq!(
        after.json, before.json,
        "a restart keeps sessions and pending connections"
    );
    assert_eq!(after.json["numberOfElements"], 2);
    let kept = s
        .call("GET", &format!("{API}/sessions/{sid}/connection"), None)
        .await;
    assert_eq!(
        kept.json["numberOfElements"], 1,
        "the revoked token stays revoked"
    );
    assert_eq!(kept.json["content"][0], c.json);
    let p = s
        .call(
            "GET",
            &format!("{API}/sessions/{other}/connection/{patched_id}"),
            None,
        )
        .await;
    assert_eq!(p.json["role"], "SUBSCRIBER", "updates are durable");
    s.call("GET", &format!("{API}/sessions/{gone}"), None)
        .await
        .assert_error(404);
    s.stop().await;

    // The token issued before the restart is still usable, exactly once.
    let store = Store::open(database_url).await.expect("store opens");
    let rooms = Rooms::load(store, lifetimes(), None)
        .await
        .expect("rooms load");
    let token = c.json["token"].as_str().expect("token");
    let (_, joined, _) = rooms
        .admit(&RoomId::new(sid.as_str()), jwt(token), info(), None)
        .await
        .expect("admitted");
    assert!(joined.is_active());
    assert!(matches!(
        rooms
            .admit(&RoomId::new(sid.as_str()), jwt(token), info(), None)
            .await,
        Err(AdmitError::Join(_))
    ));
    rooms.shutdown().await;

    // Used grants stay used across a restart too.
    let store = Store::open(database_url).await.expect("store opens");
    let rooms = Rooms::load(store, lifetimes(), None)
        .await
        .expect("rooms load");
    assert!(matches!(
        rooms
            .admit(&RoomId::new(sid.as_str()), jwt(token), info(), None)
            .await,
        Err(AdmitError::Join(_))
    ));
    rooms.shutdown().await;
}

#[tokio::test]
async fn restart_on_sqlite() {
    let dir = TempDir::new();
    restart_keeps_sessions_and_tokens(&dir.sqlite_url(), dir.0.clone()).await;
}

/// The URL of a PostgreSQL server to create test databases on (the test command starts
/// one); without it the test fails in CI and is skipped elsewhere.
pub(crate) fn postgres_admin_url() -> Option<String> {
    match std::env::var("CAMERATA_TEST_PG_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CAMERATA_TEST_PG_URL must be set in CI (tests/run-all.sh sets it)")
        }
        Err(_) => {
            eprintln!("skipping: CAMERATA_TEST_PG_URL is not set");
            None
        }
    }
}

pub(crate) async fn fresh_postgres_db(admin: &str) -> String {
    use sqlx::Executor;
    let name = format!("camerata_test_{}", crate::support::rand_suffix());
    let pool = sqlx::postgres::PgPool::connect(admin)
        .await
        .expect("postgres reachable");
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').expect("URL with a database");
    format!("{base}/{name}")
}

#[tokio::test]
async fn restart_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let url = fresh_postgres_db(&admin).await;
    let dir = TempDir::new();
    restart_keeps_sessions_and_tokens(&url, dir.0.clone()).await;
}

#[tokio::test]
async fn tokens_are_refused_when_forged_expired_foreign_or_closed() {
    let dir = TempDir::new();
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &[]).await;
    let a = s.session(r#"{"customSessionId":"a"}"#).await;
    let b = s.session(r#"{"customSessionId":"b"}"#).await;
    let for_a = s.token(&a, "{}").await;
    let for_b = s.token(&b, "{}").await;
    s.call("DELETE", &format!("{API}/sessions/{b}"), None).await;
    s.stop().await;
    // The same database served with a one-second token lifetime.
    let s = Server::start_with(&dir.sqlite_url(), dir.0.clone(), &["--token-ttl", "1"]).await;
    let expiring = s.token(&a, "{}").await;
    s.stop().await;

    let store = Store::open(&dir.sqlite_url()).await.expect("store opens");
    let rooms = Rooms::load(store, lifetimes(), None)
        .await
        .expect("rooms load");
    // Forged: a payload re-signed by nobody we know.
    let mut parts: Vec<String> = jwt(&for_a).split('.').map(str::to_owned).collect();
    parts[2] = "AAAA".into();
    assert!(matches!(
        rooms
            .admit(&RoomId::new(a.as_str()), &parts.join("."), info(), None)
            .await,
        Err(AdmitError::Grant(_))
    ));
    assert!(matches!(
        rooms
            .admit(&RoomId::new(a.as_str()), "garbage", info(), None)
            .await,
        Err(AdmitError::Grant(_))
    ));
    // For another session than the one joined.
    assert!(matches!(
        rooms
            .admit(&RoomId::new(b.as_str()), jwt(&for_a), info(), None)
            .await,
        Err(AdmitError::WrongRoom)
    ));
    // Of a closed session.
    assert!(matches!(
        rooms
            .admit(&RoomId::new(b.as_str()), jwt(&for_b), info(), None)
            .await,
        Err(AdmitError::RoomNotFound)
    ));
    // Expired (the TTL was one second).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        rooms
            .admit(&RoomId::new(a.as_str()), jwt(&expiring), info(), None)
            .await,
        Err(AdmitError::Grant(
            camerata_server::grant::GrantError::Expired
        ))
    ));
    // A valid grant still gets in, once.
    let admitted = rooms
        .admit(&RoomId::new(a.as_str()), jwt(&for_a), info(), None)
        .await;
    assert!(admitted.is_ok(), "{:?}", admitted.err());
    rooms.shutdown().await;
}
