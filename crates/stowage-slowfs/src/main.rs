//! `stowage-slowfs SOURCE MOUNTPOINT [--delay-us N] [--fail PREFIX=KIND ...] [--threads N]`:
//! mount SOURCE read-only at MOUNTPOINT, each operation delayed; print `ready` once mounted;
//! unmount and exit on SIGTERM/SIGINT/SIGHUP, or exit when unmounted (`fusermount3 -u`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use stowage_slowfs::{DEFAULT_THREADS, Fault, Options, Session};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Read-only FUSE passthrough charging every operation a fixed delay (NFS on one machine)"
)]
struct Args {
    /// Directory to mirror.
    source: PathBuf,
    /// Where to mount it (an existing directory).
    mountpoint: PathBuf,
    /// Microseconds every operation waits before it is answered.
    #[arg(long, default_value_t = 500)]
    delay_us: u64,
    /// PREFIX=KIND: operations on paths (relative to SOURCE) starting with PREFIX fail with
    /// KIND, one of EIO, ESTALE, EACCES, ETIMEDOUT. Repeatable.
    #[arg(long = "fail", value_name = "PREFIX=KIND", value_parser = stowage_slowfs::parse_fault)]
    faults: Vec<Fault>,
    /// Worker threads: operations in flight at once.
    #[arg(long, default_value_t = DEFAULT_THREADS as u64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    threads: u64,
    /// Ask the kernel for READDIRPLUS (listings carry attributes).
    #[arg(long)]
    readdirplus: bool,
    /// Stay attached to the terminal (always the case; accepted for compatibility).
    #[arg(long, short = 'f')]
    foreground: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = args.foreground;
    // Block the stop signals before any thread exists, so every thread inherits the mask and a
    // dedicated thread takes them with sigwait.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("stowage-slowfs: blocking signals: {e}");
        return ExitCode::from(1);
    }
    let options = Options {
        delay: Duration::from_micros(args.delay_us),
        faults: args.faults,
        threads: usize::try_from(args.threads).unwrap_or(DEFAULT_THREADS),
        readdirplus: args.readdirplus,
    };
    let mut session = match Session::mount(&args.source, &args.mountpoint, &options) {
        Ok(session) => session,
        Err(e) => {
            eprintln!(
                "stowage-slowfs: mounting {} on {}: {e}",
                args.source.display(),
                args.mountpoint.display()
            );
            return ExitCode::from(1);
        }
    };
    let mut unmounter = session.unmounter();
    let stats = session.stats();
    let waiter = std::thread::Builder::new()
        .name("slowfs-signals".into())
        .spawn(move || {
            // Each stop signal tries to unmount; if that fails, the mount stays served and the
            // next signal tries again.
            loop {
                match signals.wait() {
                    Ok(signal) => {
                        eprintln!("stowage-slowfs: {signal}, unmounting");
                        match unmounter.unmount() {
                            Ok(true) => return,
                            Ok(false) => {
                                eprintln!("stowage-slowfs: mount busy, detached lazily");
                                return;
                            }
                            Err(e) => eprintln!("stowage-slowfs: unmount: {e}"),
                        }
                    }
                    Err(e) => {
                        eprintln!("stowage-slowfs: sigwait: {e}");
                        return;
                    }
                }
            }
        });
    if let Err(e) = waiter {
        eprintln!("stowage-slowfs: {e}");
        return ExitCode::from(1);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready").and_then(|()| out.flush());
    drop(out);
    let result = session.run();
    eprintln!("stowage-slowfs: unmounted; {stats}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stowage-slowfs: {e}");
            ExitCode::from(1)
        }
    }
}
