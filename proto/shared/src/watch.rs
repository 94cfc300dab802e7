//! Noticing rotated files (as cert-manager rotates certificates): a task
//! that compares the files' modification time and size every interval and
//! calls back when they change. A callback that fails (often the files are
//! mid-rotation: the certificate written, the key not yet) is called again
//! on the next tick.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// Spawns the watch: `reload` runs whenever any of `files` changed since
/// the last successful reload; it returns whether it succeeded.
pub fn spawn(
    files: Vec<PathBuf>,
    interval: Duration,
    mut reload: impl FnMut() -> bool + Send + 'static,
) {
    if files.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut last = stamp(&files);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = stamp(&files);
            if now != last && reload() {
                last = now;
            }
        }
    });
}
