//! The `stowage` binary: argument parsing, settings resolution and command glue. The work is
//! done by the library crates; this crate decides what to call and how to print it.

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
                eprintln!("error: {}", stowage_model::escape::escape_lines(&msg));
                exit::ERROR
            }
        }
    };
    std::process::exit(code);
}
