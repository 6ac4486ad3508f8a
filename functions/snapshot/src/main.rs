//! The `snapshot` Lambda: parses its event and runs [`ferry::jobs::snapshot_request`] (a
//! snapshot, or a prune of old ones).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry::lambda::serve(ferry::jobs::snapshot_request).await
}
