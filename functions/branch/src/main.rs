//! The `branch` Lambda: parses its event and runs [`ferry::jobs::branch`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry::lambda::serve(ferry::jobs::branch).await
}
