//! The `stowage` binary: argument parsing, settings resolution and command glue. The work is
//! done by the library crates; this crate decides what to call and how to print it.

/// `eprintln!` that never panics: notes and warnings go to stderr when it is there. A
/// dashboard whose stderr reader went away (a closed pipe) would otherwise panic its scan at
/// the first note (`eprintln!` panics on a write error).
macro_rules! note {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod args;
mod commands;
mod exit;
mod memory;
mod output;
mod pipeline;
mod progress;
mod settings;

use clap::Parser;

fn main() {
    memory::configure();
    let cli = args::Cli::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`stowage inventory | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                exit::OK
            } else {
                // Errors name repositories, tags and paths from the storage: escaped.
                let msg = format!("{e:#}");
                note!("error: {}", stowage_model::escape::escape_lines(&msg));
                exit::ERROR
            }
        }
    };
    std::process::exit(code);
}
