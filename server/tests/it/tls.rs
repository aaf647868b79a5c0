//! HTTPS off the plain-HTTP default: a generated self-signed certificate serves the API and
//! the public URL and tokens switch to https/wss.

use crate::support::{SECRET, Server, TempDir, basic};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;

#[tokio::test]
async fn self_signed_https() {
    let dir = TempDir::new();
    let s = Server::start_tls(&dir).await;
    let cert_path = dir.0.join("selfsigned-127.0.0.1.crt");
    let pem = std::fs::read(&cert_path).expect("certificate written to the data folder");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("valid certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the self-signed certificate");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("HTTP over TLS");
    tokio::spawn(conn);
    let req = hyper::Request::post("/openvidu/api/sessions")
        .header("host", s.addr.to_string())
        .header("authorization", basic("OPENVIDUAPP", SECRET))
        .body(Full::new(Bytes::from_static(
            b"{\"customSessionId\":\"secure\"}",
        )))
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    assert_eq!(res.status(), 200);
    let req = hyper::Request::post("/openvidu/api/sessions/secure/connection")
        .header("host", s.addr.to_string())
        .header("authorization", basic("OPENVIDUAPP", SECRET))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let token = json["token"].as_str().expect("token");
    assert!(
        token.starts_with(&format!(
            "wss://127.0.0.1:{}?sessionId=secure&token=tok_",
            s.addr.port()
        )),
        "{token}"
    );
    // Plain HTTP is not served on a TLS listener.
    let plain = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let handshake = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
        hyper_util::rt::TokioIo::new(plain),
    )
    .await;
    if let Ok((mut sender, conn)) = handshake {
        tokio::spawn(conn);
        let req = hyper::Request::get("/openvidu/api/config")
            .header("host", s.addr.to_string())
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert!(
            sender.send_request(req).await.is_err(),
            "plain HTTP must fail"
        );
    }
    s.stop().await;
}
