//! The `restore` Lambda: parses its event and runs [`ferry::jobs::restore`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry::lambda::serve(ferry::jobs::restore).await
}
