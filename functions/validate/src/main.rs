//! The `validate` Lambda: parses its event and runs [`ferry::jobs::validate`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry::lambda::serve(ferry::jobs::validate).await
}
