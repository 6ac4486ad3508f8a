//! The `validate` Lambda: parses its event and runs [`ferry::jobs::validate_or_fail`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry::lambda::serve(ferry::jobs::validate_or_fail).await
}
