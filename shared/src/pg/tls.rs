//! rustls client configurations for each `sslmode`.
//!
//! - `prefer` / `require` (without a root certificate): encrypted, certificate not verified,
//!   exactly as libpq does; signatures are still checked so the handshake is sound.
//! - `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
//! - `verify-full`: chain and host name. SNI carries the host name, which Neon routes by.
//!
//! Trusted roots come from `sslrootcert` (a PEM file) or, by default and for `system`, the
//! bundled Mozilla roots (webpki-roots), so the Lambda needs no CA files on disk.

use std::sync::Arc;

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};

use super::{PgConfig, PgError, SslMode};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `config`'s sslmode, or `None` for `disable` and Unix sockets.
pub fn client_config(config: &PgConfig) -> Result<Option<ClientConfig>, PgError> {
    if config.sslmode == SslMode::Disable || config.host.starts_with('/') {
        return Ok(None);
    }
    let verify = match config.sslmode {
        SslMode::Require if config.sslrootcert.is_some() => SslMode::VerifyCa,
        mode => mode,
    };
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(config.sslrootcert.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| {
                    PgError::BadConfig(format!("cannot build the certificate verifier: {e}"))
                })?;
            if verify == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
        _ => Arc::new(Unverified(provider.clone())),
    };
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::BadConfig(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(tls))
}

/// Set in Lambda functions (see [`only_bundled_roots`]).
static ONLY_BUNDLED_ROOTS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// From now on `sslrootcert` may only be `system` (the bundled roots): set in Lambda functions,
/// where a path given in an event would read the function's own files (`/dev/zero` never
/// ends; whether a path exists would show in the error). The local stack, whose servers have
/// a certificate authority of their own, sets `FERRY_ALLOW_FILE_URLS=true` instead.
pub fn only_bundled_roots() {
    ONLY_BUNDLED_ROOTS.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn roots(sslrootcert: Option<&str>) -> Result<RootCertStore, PgError> {
    let mut store = RootCertStore::empty();
    match sslrootcert {
        None | Some("system") => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(_) if ONLY_BUNDLED_ROOTS.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(PgError::BadConfig(
                "a Lambda function trusts only the bundled roots: sslrootcert must be `system` \
                 or left out, not a path on the function's file system"
                    .into(),
            ));
        }
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    PgError::BadConfig(format!("cannot read sslrootcert {path:?}: {e}"))
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(PgError::BadConfig(format!(
                    "sslrootcert {path:?} holds no usable certificate"
                )));
            }
        }
    }
    Ok(store)
}

/// `verify-ca`: the full check, except that a certificate for another name is accepted.
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
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require`: libpq does not look at the certificate in these modes; neither do we.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
