//! Progress on stderr for long scans: phase, paths per second, operations in flight. Hidden
//! when stderr is not a terminal (or with --no-progress).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stowage_scan::Progress;
use stowage_storage::Storage;

/// A running progress display; stops when dropped.
pub struct Display {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Display {
    pub fn start(enabled: bool, progress: Arc<Progress>, storage: Arc<dyn Storage>) -> Display {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Display { stop, handle: None };
        }
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let start = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let c = storage.counters().snapshot();
                let paths = progress.paths.load(Ordering::Relaxed);
                let secs = start.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{}: {} paths ({:.0}/s), {} blobs, {} repositories, {} manifests; {} ops, {} in flight",
                    progress.phase_name(),
                    paths,
                    paths as f64 / secs,
                    progress.blobs.load(Ordering::Relaxed),
                    progress.repositories.load(Ordering::Relaxed),
                    progress.manifests.load(Ordering::Relaxed),
                    c.lists + c.stats + c.reads,
                    c.in_flight,
                ));
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Display {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
