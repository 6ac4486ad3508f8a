//! The `import-csv` Lambda: parses its event and runs [`ferry::jobs::import_csv`].

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry::lambda::serve(ferry::jobs::import_csv).await
}
