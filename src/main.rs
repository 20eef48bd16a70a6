//! The `mxprobe` command line.

use clap::Parser;

/// Tells whether a mailbox exists without sending mail: DNS MX lookup, then EHLO, MAIL FROM,
/// RCPT TO and QUIT on the preferred mail server. It never sends DATA.
///
/// This build contains the SMTP wire layer (reply parser, command encoder) as a library; the
/// `verify`, `mx` and `bench` commands are not built yet.
#[derive(Debug, Parser)]
#[command(name = "mxprobe", version, about, long_about)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
}
