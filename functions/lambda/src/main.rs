//! The Lambda functions, one binary (one optimised link instead of five): started as a link
//! named after a job (`snapshot`, as the local stack starts it), it runs that job; otherwise
//! (as `bootstrap` on Lambda) the job its `FERRY_FUNCTION` names, set for each function by the
//! SAM template. Each arm is [`ferry::lambda::serve`] of one job.

use ferry::{jobs, lambda::serve};

const JOBS: [&str; 5] = ["branch", "snapshot", "restore", "validate", "import-csv"];

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started_as = std::env::args_os()
        .next()
        .and_then(|a| Some(std::path::Path::new(&a).file_name()?.to_str()?.to_string()))
        .filter(|name| JOBS.contains(&name.as_str()));
    let name = started_as.or_else(|| std::env::var("FERRY_FUNCTION").ok());
    match name.as_deref() {
        Some("branch") => serve(jobs::branch).await,
        Some("snapshot") => serve(jobs::snapshot_request).await,
        Some("restore") => serve(jobs::restore).await,
        Some("validate") => serve(jobs::validate_or_fail).await,
        Some("import-csv") => serve(jobs::import_csv).await,
        other => Err(format!(
            "no function {:?}: set FERRY_FUNCTION to one of {}",
            other.unwrap_or_default(),
            JOBS.join(", ")
        )
        .into()),
    }
}
