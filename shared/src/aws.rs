//! How ferry configures the AWS SDK: one place that starts every SDK configuration, so that
//! every client (S3, Secrets Manager) uses the same HTTPS client, with rustls over ring (the
//! crypto provider the rest of ferry uses; the SDK's default, aws-lc-rs, is a large C build).

use aws_smithy_http_client::{
    Builder,
    tls::{Provider, rustls_provider::CryptoMode},
};

/// The SDK's configuration loader with ferry's HTTPS client; the caller adds endpoint, region
/// and credentials and loads it.
pub(crate) fn config_loader() -> aws_config::ConfigLoader {
    let http = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}
