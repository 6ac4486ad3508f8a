//! Reading credentials from AWS Secrets Manager.
//!
//! Lambdas get database passwords and the Neon API key as secret references (an ARN, or
//! `secretsmanager:NAME`), never as values in their event: workflow payloads are logged by Step
//! Functions. The value is fetched at the last moment and kept in a [`Secret`].

use tokio::sync::OnceCell;

use crate::secret::Secret;

/// Why a secret could not be read. Names the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference} does not exist")]
    NotFound { reference: String },
    #[error("cannot read secret {reference}: {reason}")]
    Access { reference: String, reason: String },
    #[error("secret {reference} is not in a form ferry understands: {reason}")]
    Malformed { reference: String, reason: String },
}

impl SecretError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretError::Access { .. })
    }
}

/// Whether `s` names a Secrets Manager secret rather than holding a value.
pub fn is_reference(s: &str) -> bool {
    s.starts_with("arn:aws:secretsmanager:") || s.starts_with("secretsmanager:")
}

async fn client() -> &'static aws_sdk_secretsmanager::Client {
    static CLIENT: OnceCell<aws_sdk_secretsmanager::Client> = OnceCell::const_new();
    CLIENT
        .get_or_init(|| async {
            let config = crate::aws::config_loader().load().await;
            aws_sdk_secretsmanager::Client::new(&config)
        })
        .await
}

/// Reads the string value of a secret (`arn:aws:secretsmanager:...` or `secretsmanager:NAME`).
pub async fn fetch(reference: &str) -> Result<Secret, SecretError> {
    let id = reference
        .strip_prefix("secretsmanager:")
        .unwrap_or(reference);
    let out = client()
        .await
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            let service = e.as_service_error();
            if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                SecretError::NotFound {
                    reference: reference.to_string(),
                }
            } else {
                SecretError::Access {
                    reference: reference.to_string(),
                    reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                }
            }
        })?;
    out.secret_string()
        .map(Secret::new)
        .ok_or_else(|| SecretError::Malformed {
            reference: reference.to_string(),
            reason: "it has no string value (binary secrets are not supported)".into(),
        })
}
