//! The `mxprobe` command line: parses flags, calls the library, formats output.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
