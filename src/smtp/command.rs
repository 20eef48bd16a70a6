//! The commands a probe sends, encoded into the caller's buffer.
//!
//! Guarantees:
//! - [`Command`] has no variant for DATA, BDAT or anything else that could deliver a message:
//!   a probe built on this type cannot send one.
//! - [`Command::encode`] writes exactly one command line ending in CRLF, and nothing at all if it
//!   returns an error. Every argument passes the wire grammar of [`super::path`] first, so no CR,
//!   LF, NUL or other control byte from an address or an option reaches the server, and no path
//!   is longer than RFC 5321 allows.
//! - Encoding allocates nothing per command beyond growing the caller's buffer, which a caller
//!   that reuses its buffer pays once.

use std::fmt;

use super::path::{PathError, check_helo_name, check_mailbox};

/// The sender in `MAIL FROM:<…>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversePath<'a> {
    /// `<>`, the null reverse-path of bounces (RFC 5321 §4.5.5). Some servers refuse it from
    /// probes; it is used only when configured.
    Null,
    /// A sender mailbox, written between `<` and `>`.
    Mailbox(&'a str),
}

/// An SMTP command a probe may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `EHLO <name>`: extended hello, asking for the server's extensions (RFC 5321 §4.1.1.1).
    Ehlo(&'a str),
    /// `HELO <name>`: the fallback for servers that answer EHLO with 500 or 502.
    Helo(&'a str),
    /// `MAIL FROM:<reverse-path>` and, if `smtputf8`, the ` SMTPUTF8` parameter (RFC 6531 §3.4)
    /// that lets the transaction carry UTF-8 addresses.
    MailFrom {
        /// The sender.
        reverse_path: ReversePath<'a>,
        /// Whether to open the transaction with SMTPUTF8; only when the server offered it.
        smtputf8: bool,
    },
    /// `RCPT TO:<forward-path>`: the question a probe asks.
    RcptTo {
        /// The mailbox to ask about.
        forward_path: &'a str,
        /// Whether the transaction was opened with SMTPUTF8, which permits a UTF-8 mailbox.
        smtputf8: bool,
    },
    /// `RSET`: abandon the transaction, keep the connection.
    Rset,
    /// `STARTTLS` (RFC 3207): after its `220`, the connection speaks TLS and the client says
    /// EHLO again.
    StartTls,
    /// `NOOP`: ask for a 250 and nothing else.
    Noop,
    /// `QUIT`: end the session politely; a probe always sends it.
    Quit,
}

/// Why a command could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// The EHLO or HELO name is not a domain or address literal.
    HeloName(PathError),
    /// The MAIL FROM mailbox breaks the grammar or a limit.
    ReversePath(PathError),
    /// The RCPT TO mailbox breaks the grammar or a limit.
    ForwardPath(PathError),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeloName(e) => write!(f, "the EHLO/HELO name {e}"),
            Self::ReversePath(e) => write!(f, "the MAIL FROM address {e}"),
            Self::ForwardPath(e) => write!(f, "the RCPT TO address {e}"),
        }
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::HeloName(e) | Self::ReversePath(e) | Self::ForwardPath(e) => Some(e),
        }
    }
}

impl Command<'_> {
    /// Appends the command line, CRLF included, to `out`.
    ///
    /// ```
    /// use mxprobe::smtp::{Command, ReversePath};
    /// let mut out = Vec::new();
    /// Command::MailFrom { reverse_path: ReversePath::Mailbox("probe@example.net"), smtputf8: false }
    ///     .encode(&mut out)?;
    /// Command::RcptTo { forward_path: "alice@example.com", smtputf8: false }.encode(&mut out)?;
    /// assert_eq!(out, b"MAIL FROM:<probe@example.net>\r\nRCPT TO:<alice@example.com>\r\n");
    ///
    /// let injection = Command::RcptTo { forward_path: "a@example.com>\r\nDATA", smtputf8: false };
    /// assert!(injection.encode(&mut out).is_err());
    /// # Ok::<(), mxprobe::smtp::CommandError>(())
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CommandError> {
        let (verb, argument, suffix): (&[u8], &[u8], &[u8]) = match *self {
            Self::Ehlo(name) => {
                check_helo_name(name.as_bytes()).map_err(CommandError::HeloName)?;
                (b"EHLO ", name.as_bytes(), b"")
            }
            Self::Helo(name) => {
                check_helo_name(name.as_bytes()).map_err(CommandError::HeloName)?;
                (b"HELO ", name.as_bytes(), b"")
            }
            Self::MailFrom {
                reverse_path,
                smtputf8,
            } => {
                let mailbox = match reverse_path {
                    ReversePath::Null => "",
                    ReversePath::Mailbox(mailbox) => {
                        check_mailbox(mailbox.as_bytes(), smtputf8)
                            .map_err(CommandError::ReversePath)?;
                        mailbox
                    }
                };
                let parameter: &[u8] = if smtputf8 { b"> SMTPUTF8" } else { b">" };
                (b"MAIL FROM:<", mailbox.as_bytes(), parameter)
            }
            Self::RcptTo {
                forward_path,
                smtputf8,
            } => {
                check_mailbox(forward_path.as_bytes(), smtputf8)
                    .map_err(CommandError::ForwardPath)?;
                (b"RCPT TO:<", forward_path.as_bytes(), b">")
            }
            Self::Rset => (b"RSET", b"", b""),
            Self::StartTls => (b"STARTTLS", b"", b""),
            Self::Noop => (b"NOOP", b"", b""),
            Self::Quit => (b"QUIT", b"", b""),
        };
        out.reserve(verb.len() + argument.len() + suffix.len() + 2);
        out.extend_from_slice(verb);
        out.extend_from_slice(argument);
        out.extend_from_slice(suffix);
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(command: Command<'_>) -> Result<String, CommandError> {
        let mut out = Vec::new();
        command.encode(&mut out)?;
        Ok(String::from_utf8(out).expect("commands are UTF-8"))
    }

    #[test]
    fn every_command_has_its_wire_form() {
        let mailbox = ReversePath::Mailbox("probe@example.net");
        let cases = [
            (
                Command::Ehlo("probe.example.net"),
                "EHLO probe.example.net\r\n",
            ),
            (
                Command::Helo("probe.example.net"),
                "HELO probe.example.net\r\n",
            ),
            (Command::Ehlo("[192.0.2.7]"), "EHLO [192.0.2.7]\r\n"),
            (
                Command::MailFrom {
                    reverse_path: mailbox,
                    smtputf8: false,
                },
                "MAIL FROM:<probe@example.net>\r\n",
            ),
            (
                Command::MailFrom {
                    reverse_path: mailbox,
                    smtputf8: true,
                },
                "MAIL FROM:<probe@example.net> SMTPUTF8\r\n",
            ),
            (
                Command::MailFrom {
                    reverse_path: ReversePath::Null,
                    smtputf8: false,
                },
                "MAIL FROM:<>\r\n",
            ),
            (
                Command::RcptTo {
                    forward_path: "alice@example.com",
                    smtputf8: false,
                },
                "RCPT TO:<alice@example.com>\r\n",
            ),
            (
                Command::RcptTo {
                    forward_path: "josé@example.com",
                    smtputf8: true,
                },
                "RCPT TO:<josé@example.com>\r\n",
            ),
            (
                Command::RcptTo {
                    forward_path: "\"john doe\"@example.com",
                    smtputf8: false,
                },
                "RCPT TO:<\"john doe\"@example.com>\r\n",
            ),
            (Command::Rset, "RSET\r\n"),
            (Command::Noop, "NOOP\r\n"),
            (Command::Quit, "QUIT\r\n"),
        ];
        for (command, wire) in cases {
            assert_eq!(encoded(command).as_deref(), Ok(wire), "{command:?}");
        }
    }

    #[test]
    fn injection_attempts_are_refused_and_write_nothing() {
        let attempts = [
            Command::Ehlo("probe\r\nDATA"),
            Command::Helo("probe\nQUIT"),
            Command::MailFrom {
                reverse_path: ReversePath::Mailbox("a@b.example>\r\nRCPT TO:<victim@x.example"),
                smtputf8: false,
            },
            Command::RcptTo {
                forward_path: "a@b.example\r\nDATA",
                smtputf8: true,
            },
            Command::RcptTo {
                forward_path: "a\0@b.example",
                smtputf8: false,
            },
            Command::RcptTo {
                forward_path: "a@b.example> NOTIFY=SUCCESS",
                smtputf8: false,
            },
            Command::RcptTo {
                forward_path: "<a@b.example>",
                smtputf8: false,
            },
            Command::RcptTo {
                forward_path: "",
                smtputf8: false,
            },
        ];
        for command in attempts {
            let mut out = b"untouched".to_vec();
            assert!(command.encode(&mut out).is_err(), "{command:?}");
            assert_eq!(out, b"untouched", "{command:?}");
        }
    }

    #[test]
    fn utf8_only_in_an_smtputf8_transaction() {
        let command = Command::RcptTo {
            forward_path: "josé@example.com",
            smtputf8: false,
        };
        assert_eq!(
            encoded(command),
            Err(CommandError::ForwardPath(PathError::NonAscii { at: 3 }))
        );
        let command = Command::MailFrom {
            reverse_path: ReversePath::Mailbox("prüfer@example.net"),
            smtputf8: false,
        };
        assert_eq!(
            encoded(command),
            Err(CommandError::ReversePath(PathError::NonAscii { at: 2 }))
        );
    }

    #[test]
    fn over_long_paths_are_refused() {
        let forward_path = format!("{}@example.com", "l".repeat(65));
        let command = Command::RcptTo {
            forward_path: &forward_path,
            smtputf8: false,
        };
        assert_eq!(
            encoded(command),
            Err(CommandError::ForwardPath(PathError::LocalPartTooLong {
                len: 65
            }))
        );
    }

    #[test]
    fn encoding_appends_to_a_reused_buffer() {
        let mut out = Vec::with_capacity(64);
        Command::Noop.encode(&mut out).expect("valid");
        Command::Quit.encode(&mut out).expect("valid");
        assert_eq!(out, b"NOOP\r\nQUIT\r\n");
    }

    #[test]
    fn errors_name_the_argument_and_the_rule() {
        let error = CommandError::ForwardPath(PathError::ForbiddenByte { byte: b'\r', at: 1 });
        assert_eq!(
            error.to_string(),
            "the RCPT TO address contains CR at byte 1, which could inject an SMTP command"
        );
    }
}
