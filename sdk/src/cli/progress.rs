//! Progress of an apply: bars on a terminal, plain timestamped lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::engine::Event;
use crate::plan::StepAction;
use crate::state::now;

/// Whether to use colour: stderr is a terminal and `NO_COLOR` is unset.
pub(crate) fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn verb(a: StepAction) -> &'static str {
    match a {
        StepAction::Create => "create",
        StepAction::Update => "update",
        StepAction::Roll => "roll",
        StepAction::Delete => "delete",
        StepAction::DeleteDeposed => "delete old",
    }
}

/// Paints `text` with an ANSI colour when colour is on.
pub(crate) fn paint(text: &str, code: &str, on: bool) -> String {
    if on { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
}

/// Renders events until the sender is dropped.
pub(crate) async fn render(mut rx: mpsc::UnboundedReceiver<Event>, total: usize) {
    if std::io::stderr().is_terminal() {
        bars(&mut rx, total).await;
    } else {
        lines(&mut rx).await;
    }
}

async fn lines(rx: &mut mpsc::UnboundedReceiver<Event>) {
    while let Some(e) = rx.recv().await {
        let line = match e {
            Event::Started { id, action } => format!("{} {id}: started", verb(action)),
            Event::Finished { id, action, elapsed } => {
                format!("{} {id}: done in {:.1}s", verb(action), elapsed.as_secs_f64())
            }
            Event::Failed { id, action, error } => {
                format!("{} {id}: FAILED: {error}", verb(action))
            }
            Event::Retrying { id, call, attempt, delay, error } => {
                format!("{id}: {call} retry {attempt} in {}ms ({error})", delay.as_millis())
            }
            Event::Fleet { id, message } => format!("fleet {id}: {message}"),
            Event::Adopted { id, physical_id } => {
                format!("{id}: adopted {physical_id}, created by an interrupted run")
            }
        };
        eprintln!("{} {line}", now());
    }
}

async fn bars(rx: &mut mpsc::UnboundedReceiver<Event>, total: usize) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let main_style =
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let overall = multi.add(ProgressBar::new(total as u64).with_style(main_style));
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    while let Some(e) = rx.recv().await {
        match e {
            Event::Started { id, action } => {
                let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                bar.set_prefix(format!("{} {id}", verb(action)));
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                bars.insert(id, bar);
            }
            Event::Finished { id, action, elapsed } => {
                if let Some(bar) = bars.remove(&id) {
                    bar.finish_and_clear();
                }
                overall.inc(1);
                let _ = multi.println(format!(
                    "  {} {id} ({:.1}s)",
                    verb(action),
                    elapsed.as_secs_f64()
                ));
            }
            Event::Failed { id, action, error } => {
                if let Some(bar) = bars.remove(&id) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(format!("  {} {id} FAILED: {error}", verb(action)));
            }
            Event::Retrying { id, call, attempt, error, .. } => {
                if let Some(bar) = bars.get(&id) {
                    bar.set_message(format!("{call} retry {attempt} ({error})"));
                }
            }
            Event::Fleet { id, message } => {
                if let Some(bar) = bars.get(&id) {
                    bar.set_message(message.clone());
                }
                let _ = multi.println(format!("  fleet {id}: {message}"));
            }
            Event::Adopted { id, physical_id } => {
                let _ = multi.println(format!(
                    "  {id}: adopted {physical_id}, created by an interrupted run"
                ));
            }
        }
    }
    overall.finish_and_clear();
}
