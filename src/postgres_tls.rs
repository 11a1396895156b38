//! Connecting to PostgreSQL the way libpq does, for the store and for `sql` steps: the URL's
//! `sslmode` (`disable`, `allow`, `prefer` by default, `require`, `verify-ca`, `verify-full`),
//! `sslrootcert` (a PEM file of CA certificates, or `system` for the system's roots) and, for a
//! client certificate, `sslcert` and `sslkey`; TLS through rustls. As with libpq, `require` with
//! an `sslrootcert` checks the chain like `verify-ca`; `allow` tries TLS first, as `prefer` does.
use anyhow::{Context, Result, anyhow, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

pub use tokio_postgres_rustls::MakeRustlsConnect;

/// What libpq's `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    /// As libpq spells it.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for TlsMode {
    type Err = anyhow::Error;

    fn from_str(mode: &str) -> Result<TlsMode> {
        Ok(match mode {
            "disable" => TlsMode::Disable,
            "allow" | "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => bail!("sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"),
        })
    }
}

/// A PostgreSQL connection string made ready to connect: the settings tokio-postgres reads, and
/// the TLS connector the URL's `ssl…` parameters ask for.
pub struct Connector {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub mode: TlsMode,
}

/// The TLS parameters tokio-postgres does not read itself; they are taken out of the URL.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Reads `connection` (a `postgres://` URL, or libpq's `key=value` form with tokio-postgres's
/// own `sslmode` values) and builds its connector. Errors never repeat the connection string,
/// which may carry a password.
pub fn connector(connection: &str) -> Result<Connector> {
    let (rest, tls) = split_tls_parameters(connection)?;
    let mut config = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| anyhow!("not a valid PostgreSQL connection string: {e}"))?;
    let mode = match tls.get("sslmode") {
        Some(mode) => mode.parse()?,
        None => match config.get_ssl_mode() {
            SslMode::Disable => TlsMode::Disable,
            SslMode::Require => TlsMode::Require,
            _ => TlsMode::Prefer,
        },
    };
    let roots = tls.get("sslrootcert").map(|path| roots(path)).transpose()?;
    let verify = match (mode, roots) {
        (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => bail!(
            "sslmode={} needs sslrootcert: the CA certificates to check the server against (a PEM file, or `system`)",
            if mode == TlsMode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        ),
        (TlsMode::VerifyFull, Some(roots)) => Verify::Full(roots),
        (TlsMode::VerifyCa | TlsMode::Require, Some(roots)) => Verify::ChainOnly(roots),
        _ => Verify::Nothing,
    };
    config.ssl_mode(match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let client_certificate = match (tls.get("sslcert"), tls.get("sslkey")) {
        (Some(cert), Some(key)) => Some(client_certificate(cert, key)?),
        (None, None) => None,
        _ => bail!("a client certificate needs both sslcert and sslkey"),
    };
    let tls = MakeRustlsConnect::new(client_config(verify, client_certificate)?);
    Ok(Connector { config, tls, mode })
}

enum Verify {
    Nothing,
    ChainOnly(rustls::RootCertStore),
    Full(rustls::RootCertStore),
}

type ClientCertificate = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(verify: Verify, certificate: Option<ClientCertificate>) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(AnyServer(provider)),
        Verify::Full(roots) => WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("building the certificate verifier")?,
        Verify::ChainOnly(roots) => Arc::new(ChainOnly(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("building the certificate verifier")?,
        )),
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    Ok(match certificate {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .context("the client certificate (sslcert, sslkey) cannot be used")?,
        None => builder.with_no_client_auth(),
    })
}

fn roots(path: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    if path == "system" {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    } else {
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("sslrootcert {path}: {e}"))?;
        roots.add_parsable_certificates(certificates);
    }
    if roots.is_empty() {
        bail!("sslrootcert {path} holds no CA certificate");
    }
    Ok(roots)
}

fn client_certificate(cert: &str, key: &str) -> Result<ClientCertificate> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("sslcert {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow!("sslkey {key}: {e}"))?;
    Ok((chain, key))
}

/// Takes libpq's TLS parameters out of a `postgres://` URL's query; other strings keep them
/// (tokio-postgres reads `sslmode=disable|prefer|require` there itself).
fn split_tls_parameters(connection: &str) -> Result<(String, std::collections::HashMap<String, String>)> {
    let mut tls = std::collections::HashMap::new();
    if !(connection.starts_with("postgres://") || connection.starts_with("postgresql://")) {
        return Ok((connection.to_owned(), tls));
    }
    let Some((base, query)) = connection.split_once('?') else {
        return Ok((connection.to_owned(), tls));
    };
    let mut kept = vec![];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_KEYS.contains(&key) {
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| anyhow!("{key} is not valid UTF-8"))?;
            tls.insert(key.to_owned(), value.into_owned());
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, tls))
}

/// `prefer` and `require` without a CA: encrypted, the server not checked (as libpq does). The
/// handshake's signatures are still verified.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_leave_the_url_and_the_rest_stays() {
        let (rest, tls) = split_tls_parameters(
            "postgres://app:pw@db.internal:5432/rollbot?sslmode=verify-full&application_name=rollbot&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://app:pw@db.internal:5432/rollbot?application_name=rollbot"
        );
        assert_eq!(tls["sslmode"], "verify-full");
        assert_eq!(tls["sslrootcert"], "/etc/ca.pem");
        let (rest, tls) = split_tls_parameters("host=db user=app sslmode=require").unwrap();
        assert_eq!(
            rest, "host=db user=app sslmode=require",
            "tokio-postgres reads its own form"
        );
        assert!(tls.is_empty());
    }

    #[test]
    fn modes_read_as_libpq_and_a_check_without_a_ca_is_refused_plainly() {
        let mode = |url: &str| connector(url).map(|c| c.mode);
        assert_eq!(mode("postgres://h/db").unwrap(), TlsMode::Prefer, "libpq's default");
        assert_eq!(mode("postgres://h/db?sslmode=disable").unwrap(), TlsMode::Disable);
        assert_eq!(mode("postgres://h/db?sslmode=allow").unwrap(), TlsMode::Prefer);
        assert_eq!(mode("host=h dbname=db sslmode=require").unwrap(), TlsMode::Require);
        let refused = connector("postgres://u:secret@h/db?sslmode=verify-full")
            .err()
            .unwrap()
            .to_string();
        assert!(refused.contains("needs sslrootcert"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
        let refused = connector("postgres://h/db?sslmode=verify-everything")
            .err()
            .unwrap()
            .to_string();
        assert!(refused.contains("is not one of disable"), "{refused}");
        let refused = connector("postgres://h/db?sslmode=require&sslrootcert=/nonexistent.pem")
            .err()
            .unwrap()
            .to_string();
        assert!(refused.contains("sslrootcert /nonexistent.pem"), "{refused}");
        let refused = connector("postgres://h/db?sslcert=/c.pem").err().unwrap().to_string();
        assert!(refused.contains("both sslcert and sslkey"), "{refused}");
    }
}
