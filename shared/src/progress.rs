//! Progress of long-running work, reported by the library and shown by whoever runs it.
//!
//! Jobs call [`Progress::report`] as work advances; the CLI draws a progress bar on a terminal
//! and prints periodic structured lines otherwise, and the Lambdas log them. The library never
//! decides how progress looks.

use std::sync::Arc;

use serde::Serialize;

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Bytes,
    Rows,
    Steps,
}

/// One progress update: `done` of `total` (when known) units in `step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressEvent {
    pub job: &'static str,
    pub step: String,
    pub done: u64,
    pub total: Option<u64>,
    pub unit: Unit,
}

/// Receives progress updates. Implementations must be cheap: jobs may call often.
pub trait Progress: Send + Sync {
    fn report(&self, event: ProgressEvent);
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn report(&self, _event: ProgressEvent) {}
}

/// Progress as `tracing` events (for Lambdas, whose logs are JSON lines in CloudWatch).
pub struct Logged;

impl Progress for Logged {
    fn report(&self, e: ProgressEvent) {
        tracing::info!(job = e.job, step = %e.step, done = e.done, total = e.total, unit = ?e.unit, "progress");
    }
}

pub type SharedProgress = Arc<dyn Progress>;
