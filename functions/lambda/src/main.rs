//! The Lambda functions, one binary (one optimised link instead of five): each deployed
//! function runs the job its `FERRY_FUNCTION` names (set for each function by the SAM
//! template), or, without it, the job named by the file it was started as (a link named
//! `snapshot`, as the local stack starts it). Each arm is [`ferry::lambda::serve`] of one job.

use ferry::{jobs, lambda::serve};

const FUNCTIONS: &str = "branch, snapshot, restore, validate or import-csv";

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let started_as = std::env::args_os()
        .next()
        .and_then(|a| Some(std::path::Path::new(&a).file_name()?.to_str()?.to_string()));
    let name = std::env::var("FERRY_FUNCTION").ok().or(started_as);
    match name.as_deref() {
        Some("branch") => serve(jobs::branch).await,
        Some("snapshot") => serve(jobs::snapshot_request).await,
        Some("restore") => serve(jobs::restore).await,
        Some("validate") => serve(jobs::validate_or_fail).await,
        Some("import-csv") => serve(jobs::import_csv).await,
        other => Err(format!(
            "no function {:?}: set FERRY_FUNCTION to {FUNCTIONS}",
            other.unwrap_or_default()
        )
        .into()),
    }
}
