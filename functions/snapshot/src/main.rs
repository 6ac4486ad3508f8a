//! The `snapshot` Lambda: parses its event and runs [`ferry::jobs::snapshot`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry::lambda::serve(ferry::jobs::snapshot).await
}
