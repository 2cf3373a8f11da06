//! The FIX acceptor's TLS certificate: configured PEM files, or a self-signed certificate for
//! localhost generated into `data/tls` on first start (kept for later starts, so clients can
//! pin it).

use crate::config::Config;
use anyhow::Context as _;
use std::sync::Arc;

/// The rustls server configuration for the FIX TLS listener.
pub fn server_config(config: &Config) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert, key) = if config.fix.tls_cert.is_empty() {
        let dir = config.data.dir.join("tls");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !cert.exists() || !key.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let key_pair = rcgen::KeyPair::generate().context("generating a TLS key")?;
            let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .context("certificate parameters")?;
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(std::net::IpAddr::V4(
                    std::net::Ipv4Addr::LOCALHOST,
                )));
            params.distinguished_name.push(
                rcgen::DnType::CommonName,
                "exchange appliance (self-signed)",
            );
            let signed = params.self_signed(&key_pair).context("self-signing")?;
            write_private(&key, key_pair.serialize_pem().as_bytes())?;
            std::fs::write(&cert, signed.pem())
                .with_context(|| format!("writing {}", cert.display()))?;
            tracing::warn!(cert = %cert.display(), "generated a self-signed TLS certificate for localhost; see deploy/tls.md for a real one");
        }
        (cert, key)
    } else {
        (
            config.fix.tls_cert.clone().into(),
            config.fix.tls_key.clone().into(),
        )
    };
    gateway::tls_from_pem_files(&cert, &key)
        .map_err(|e| anyhow::anyhow!("TLS certificate {}: {e}", cert.display()))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
