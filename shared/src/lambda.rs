//! What every Lambda function shares: JSON logs for CloudWatch, the runtime loop, and the
//! mapping from [`JobError`] to a diagnostic with a stable `errorType`.
//!
//! A function's `main` is one call: `ferry::lambda::serve(ferry::jobs::snapshot).await`.
//! Configuration is read once at cold start; each invocation gets its deadline in the
//! [`Context`] so that jobs can stop with a resumable checkpoint before the runtime kills them.

use std::{future::Future, sync::Arc};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    jobs::{Context, JobError},
    progress::Logged,
};

impl From<JobError> for Diagnostic {
    fn from(e: JobError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// JSON log lines (one object per line, as CloudWatch Logs Insights wants), level from
/// `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`, `info` by default.
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}

/// Runs `job` as a Lambda handler until the runtime stops. The event is parsed here so that a
/// malformed one fails with `Ferry.BadInput` rather than a runtime-internal error type.
pub async fn serve<I, O, F, Fut>(job: F) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(I, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, JobError>> + Send,
{
    init_tracing();
    let mut base = Context::from_env().map_err(|e| e.to_string())?;
    base.progress = Arc::new(Logged);
    // An event's file:// URL would reach the function's own files (its credentials are in
    // /proc/self/environ): only s3:// in Lambda, unless the local stack says otherwise.
    base.store.refuse_local_files = std::env::var("FERRY_ALLOW_FILE_URLS").as_deref() != Ok("true");
    if base.store.refuse_local_files {
        crate::pg::tls::only_bundled_roots();
    }
    let job = Arc::new(job);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let job = job.clone();
        let mut ctx = base.clone();
        async move {
            ctx.deadline = Some(event.context.deadline());
            let input: I = serde_json::from_value(event.payload).map_err(|e| {
                Diagnostic::from(JobError::BadInput(format!(
                    "the event does not match the input schema: {e}"
                )))
            })?;
            job(input, ctx).await.map_err(|e| {
                tracing::error!(error_type = e.error_type(), error = %e, "job failed");
                Diagnostic::from(e)
            })
        }
    }))
    .await
}
