//! HTTPS for listeners off loopback: certificate files, or a self-signed certificate made
//! once for the public host and kept in the data folder.

use crate::config::{Settled, Tls};
use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

/// The TLS configuration to serve with, or `None` for plain HTTP.
pub async fn acceptor(settled: &Settled) -> anyhow::Result<Option<RustlsConfig>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &settled.tls {
        Tls::Off => Ok(None),
        Tls::Files { cert, key } => Ok(Some(
            RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS certificate {} / key {}",
                        cert.display(),
                        key.display()
                    )
                })?,
        )),
        Tls::SelfSigned => {
            let dir = &settled.config.data_dir;
            let cert_path = dir.join(format!(
                "selfsigned-{}.crt",
                file_safe(&settled.public_host)
            ));
            let key_path = cert_path.with_extension("key");
            if !cert_path.exists() || !key_path.exists() {
                std::fs::create_dir_all(dir)?;
                let made = rcgen::generate_simple_self_signed(vec![settled.public_host.clone()])
                    .context("cannot generate a self-signed certificate")?;
                std::fs::write(&cert_path, made.cert.pem())?;
                std::fs::write(&key_path, made.signing_key.serialize_pem())?;
            }
            tracing::warn!(
                "SERVING A SELF-SIGNED CERTIFICATE ({}). Browsers will warn and Node clients will \
                 refuse it; give CAMERATA_TLS_CERT and CAMERATA_TLS_KEY for production.",
                cert_path.display()
            );
            Ok(Some(
                RustlsConfig::from_pem_file(&cert_path, &key_path).await?,
            ))
        }
    }
}

fn file_safe(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
