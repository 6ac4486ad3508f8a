//! Progress on the command line: a bar on a terminal, periodic JSON lines otherwise (CI logs).

use std::{
    io::IsTerminal,
    sync::Mutex,
    time::{Duration, Instant},
};

use ferry::jobs::{Progress, ProgressEvent, Unit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a non-terminal gets a progress line for the same step.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

pub struct CliProgress {
    state: Mutex<State>,
}

enum State {
    Bar(Option<(String, ProgressBar)>),
    Lines { step: String, last: Option<Instant> },
}

impl CliProgress {
    pub fn new() -> CliProgress {
        let state = if std::io::stderr().is_terminal() {
            State::Bar(None)
        } else {
            State::Lines {
                step: String::new(),
                last: None,
            }
        };
        CliProgress {
            state: Mutex::new(state),
        }
    }
}

fn bar_for(e: &ProgressEvent) -> ProgressBar {
    let bar = match e.total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = match (e.unit, e.total.is_some()) {
        (Unit::Bytes, true) => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        (Unit::Bytes, false) => "{spinner} {msg} {bytes} {bytes_per_sec}",
        (_, true) => "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        (_, false) => "{spinner} {msg} {pos} {per_sec}",
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(e.step.clone());
    bar
}

impl Progress for CliProgress {
    fn report(&self, e: ProgressEvent) {
        let mut state = self.state.lock().expect("progress lock");
        match &mut *state {
            State::Bar(current) => {
                let same_step = current.as_ref().is_some_and(|(step, _)| *step == e.step);
                if !same_step {
                    if let Some((_, old)) = current.take() {
                        old.finish_and_clear();
                    }
                    *current = Some((e.step.clone(), bar_for(&e)));
                }
                if let Some((_, bar)) = current {
                    bar.set_position(e.done);
                    if e.total.is_some_and(|t| e.done >= t) {
                        bar.finish_and_clear();
                    }
                }
            }
            State::Lines { step, last } => {
                let due = *step != e.step || last.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
                if due {
                    *step = e.step.clone();
                    *last = Some(Instant::now());
                    eprintln!("{}", serde_json::json!({"progress": e}));
                }
            }
        }
    }
}
