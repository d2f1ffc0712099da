//! TLS for `rediss://` URLs: rustls with the ring provider, trusting the CA
//! named by the URL's `tls_ca_file` (else the system's roots), and sending
//! the client certificate of `tls_cert_file` / `tls_key_file` when given.
//! `conn::parse_url` reads these query parameters and removes them before
//! fred parses the URL.

use crate::errors::{Error, Result};
use fred::types::config::{TlsConfig, TlsConnector, TlsHostMapping};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// The query parameters ChasquiMQ adds to a Redis URL.
pub const PARAMS: [&str; 3] = ["tls_ca_file", "tls_cert_file", "tls_key_file"];

/// PEM files named by a URL's `tls_*` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }

    /// Records one query parameter; false when `key` is not one of `PARAMS`.
    pub fn set(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "tls_ca_file" => &mut self.ca_file,
            "tls_cert_file" => &mut self.cert_file,
            "tls_key_file" => &mut self.key_file,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

fn bad(param: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid_argument("redis_url", format!("{param}: {message}"))
}

/// Every certificate of a PEM file (a CA bundle or a certificate chain).
fn read_certs(param: &str, path: &str) -> Result<Vec<CertificateDer<'static>>> {
    // Read first so a missing file says so (the PEM iterator's error would
    // not name the cause as plainly).
    let pem = std::fs::read(path).map_err(|e| bad(param, format!("cannot read {path:?}: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad(param, format!("{path:?} is not a valid PEM file")))?;
    if certs.is_empty() {
        return Err(bad(
            param,
            format!("{path:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| bad("tls_key_file", format!("cannot read {path:?}: {e}")))?;
    // The parser's messages may quote lines of the file: never surface them.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        bad(
            "tls_key_file",
            format!("{path:?} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
        )
    })
}

fn roots(files: &TlsFiles) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    match &files.ca_file {
        Some(path) => {
            for cert in read_certs("tls_ca_file", path)? {
                store.add(cert).map_err(|e| {
                    bad(
                        "tls_ca_file",
                        format!("{path:?} holds a certificate that cannot be a trust root: {e}"),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(Error::invalid_argument(
                    "redis_url",
                    "rediss:// found no system trust roots; pass the server's CA with ?tls_ca_file=/path/ca.pem",
                ));
            }
        }
    }
    Ok(store)
}

/// The fred TLS configuration for `files`.
pub fn config(files: &TlsFiles) -> Result<TlsConfig> {
    match (&files.cert_file, &files.key_file) {
        (Some(_), None) => {
            return Err(bad(
                "tls_cert_file",
                "needs tls_key_file (the client certificate's private key) too",
            ))
        }
        (None, Some(_)) => {
            return Err(bad(
                "tls_key_file",
                "needs tls_cert_file (the client certificate) too",
            ))
        }
        _ => {}
    }
    // An explicit provider: rustls' process default would depend on which
    // crypto features other crates in the build happen to enable.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("rustls protocol versions: {e}")))?
        .with_root_certificates(roots(files)?);
    let client = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs("tls_cert_file", cert)?, read_key(key)?)
            .map_err(|e| {
                bad(
                    "tls_key_file",
                    format!("does not fit the certificate of tls_cert_file: {e}"),
                )
            })?,
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConfig {
        connector: TlsConnector::from(client),
        hostnames: TlsHostMapping::None,
    })
}

#[cfg(test)]
mod tests {
    use crate::conn::parse_url;
    use fred::types::config::ServerConfig;

    /// A throwaway CA certificate (no key kept): enough to build a root store.
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkzCCATmgAwIBAgIUPWf3x/Mhi5kV5BUfG8cYg+mXRK0wCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUY2hhc3F1aS11bml0LXRlc3QtY2EwHhcNMjYxMTI5MDE1MzMx
WhcNMzYxMTI2MDE1MzMxWjAfMR0wGwYDVQQDDBRjaGFzcXVpLXVuaXQtdGVzdC1j
YTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFHidI+7lJH+Kxfy8TT7rffdvOho
D3HeP1QqGYkJETrRME0xpIsY97GojTHWQJ5d1WauP53YghdzZa5JJQ1A+EyjUzBR
MB0GA1UdDgQWBBQl/ZkzZA2nj0A8kjhjagsLxecKajAfBgNVHSMEGDAWgBQl/Zkz
ZA2nj0A8kjhjagsLxecKajAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA
MEUCIQC/4zXM+YCjje4QVN+fQcZPSwnTn4Pj9Q2DrtTEo7KT5AIgAkovhhis36KE
37dZ5x/PP8e03hCoek73R7DJIpZRVDs=
-----END CERTIFICATE-----
";

    /// The CA in a file of its own per test (tests run in parallel).
    fn ca_file(test: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("chasqui-unit-ca-{test}-{}.pem", std::process::id()));
        std::fs::write(&path, CA).unwrap();
        path
    }

    fn err(url: &str) -> String {
        let e = parse_url(url).expect_err(url);
        assert_eq!(e.code(), "invalid_argument", "{url}: {e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        e.to_string()
    }

    #[test]
    fn tls_parameters_configure_rustls_and_leave_the_url() {
        let ca = ca_file("ok");
        let url = format!("rediss://u:pw@h:7000/2?tls_ca_file={}", ca.display());
        let c = parse_url(&url).unwrap();
        assert!(c.tls.is_some());
        assert_eq!(c.database, Some(2));
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert!(
            matches!(c.server, ServerConfig::Centralized { ref server } if server.host == "h" && server.port == 7000)
        );
        // Cluster seeds survive the rewrite of the query.
        let url = format!(
            "rediss-cluster://h:7000?node=h:7001&tls_ca_file={}&node=h:7002",
            ca.display()
        );
        let c = parse_url(&url).unwrap();
        assert!(c.tls.is_some());
        match c.server {
            ServerConfig::Clustered { ref hosts, .. } => {
                let mut ports: Vec<u16> = hosts.iter().map(|s| s.port).collect();
                ports.sort();
                assert_eq!(ports, [7000, 7001, 7002]);
            }
            ref other => panic!("not clustered: {other:?}"),
        }
        assert!(parse_url("redis://h:7000").unwrap().tls.is_none());
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn tls_parameter_mistakes_are_invalid_arguments() {
        let path = ca_file("bad");
        let ca = path.display();
        assert!(err(&format!("redis://u:pw@h:1?tls_ca_file={ca}")).contains("rediss://"));
        assert!(err("rediss://u:pw@h:1?tls_ca=/x.pem").contains("tls_ca"));
        assert!(err("rediss://u:pw@h:1?tls_ca_file=/nonexistent.pem").contains("tls_ca_file"));
        assert!(err(&format!(
            "rediss://u:pw@h:1?tls_ca_file={ca}&tls_cert_file={ca}"
        ))
        .contains("tls_key_file"));
        assert!(err(&format!(
            "rediss://u:pw@h:1?tls_ca_file={ca}&tls_key_file={ca}"
        ))
        .contains("tls_cert_file"));
        // A certificate is not a private key.
        assert!(err(&format!(
            "rediss://u:pw@h:1?tls_ca_file={ca}&tls_cert_file={ca}&tls_key_file={ca}"
        ))
        .contains("no PEM private key"));
        // A file without a certificate.
        let empty =
            std::env::temp_dir().join(format!("chasqui-unit-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not pem").unwrap();
        assert!(err(&format!(
            "rediss://u:pw@h:1?tls_ca_file={}",
            empty.display()
        ))
        .contains("no PEM certificate"));
        let _ = std::fs::remove_file(empty);
        let _ = std::fs::remove_file(path);
    }
}
