//! Scripted conversations, byte for byte: what the client writes after each thing the server
//! says, and what becomes of each recipient. Every script also runs with every server chunk
//! split at every byte boundary, and must end the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::smtp::Extensions;
use crate::verdict::{Reason, Stage};

const HELO: &str = "probe.example.net";
const SENDER: &str = "probe@example.net";

fn config() -> SessionConfig {
    SessionConfig::new(HELO, Sender::Mailbox(SENDER.into()))
}

fn checked(config: SessionConfig) -> Arc<CheckedSessionConfig> {
    Arc::new(config.check().expect("a valid configuration"))
}

fn recipients(mailboxes: &[&str]) -> Recipients {
    mailboxes
        .iter()
        .map(|m| Recipient {
            mailbox: m,
            smtputf8: !m.is_ascii(),
        })
        .collect()
}

/// One step of a script.
#[derive(Debug, Clone)]
enum Step {
    /// The server sends these bytes.
    Server(&'static str),
    /// The client must have written exactly this since the last check.
    Client(&'static str),
    /// The server closes the connection.
    Close,
    /// Time passes.
    Wait(Duration),
}

/// Plays a script against a session, the server's bytes fed as `split` says. Returns the
/// outcomes by recipient index and the summary.
fn play(
    config: SessionConfig,
    mailboxes: &[&str],
    script: &[Step],
    split: Option<usize>,
) -> (Vec<RecipientOutcome>, SessionSummary, String) {
    let origin = Instant::now();
    let mut now = origin;
    let mut session = Session::new(checked(config), recipients(mailboxes), now);
    session.handle_connected(now);
    let mut written = String::new();
    let mut all_written = String::new();
    let take_output = |session: &mut Session, written: &mut String, all: &mut String| {
        let bytes = session.pending_output().to_vec();
        session.consume_output(bytes.len());
        let text = String::from_utf8(bytes).expect("commands are UTF-8");
        written.push_str(&text);
        all.push_str(&text);
    };
    for step in script {
        take_output(&mut session, &mut written, &mut all_written);
        match step {
            Step::Server(bytes) => match split {
                None => session.handle_input(bytes.as_bytes(), now),
                Some(at) => {
                    let (a, b) = bytes.as_bytes().split_at(at.min(bytes.len()));
                    session.handle_input(a, now);
                    take_output(&mut session, &mut written, &mut all_written);
                    session.handle_input(b, now);
                }
            },
            Step::Client(expected) => {
                assert_eq!(written, *expected, "client output, split {split:?}");
                written.clear();
            }
            Step::Close => session.handle_closed(now),
            Step::Wait(duration) => {
                let until = now + *duration;
                while let Some(at) = session.poll_timeout() {
                    if at > until {
                        break;
                    }
                    now = at;
                    session.handle_timeout(now);
                }
                now = until;
            }
        }
    }
    take_output(&mut session, &mut written, &mut all_written);
    assert!(written.is_empty(), "unchecked client output: {written:?}");
    assert!(
        session.is_finished(),
        "the script ended but the session did not"
    );
    let mut outcomes: Vec<Option<RecipientOutcome>> = vec![None; mailboxes.len()];
    let mut summary = None;
    while let Some(event) = session.poll_event() {
        match event {
            SessionEvent::Recipient { index, outcome } => {
                assert!(summary.is_none(), "a recipient event after Finished");
                assert!(outcomes[index].is_none(), "recipient {index} settled twice");
                outcomes[index] = Some(outcome);
            }
            SessionEvent::Finished(s) => {
                assert!(summary.is_none(), "Finished twice");
                summary = Some(*s);
            }
        }
    }
    let outcomes = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.unwrap_or_else(|| panic!("recipient {i} never settled")))
        .collect();
    (outcomes, summary.expect("Finished"), all_written)
}

/// Plays the script whole, then split at every byte of every server chunk: the outcomes must
/// not depend on how the bytes arrived.
fn run(
    config: SessionConfig,
    mailboxes: &[&str],
    script: &[Step],
) -> (Vec<RecipientOutcome>, SessionSummary) {
    let (outcomes, summary, written) = play(config.clone(), mailboxes, script, None);
    let longest = script
        .iter()
        .map(|s| match s {
            Step::Server(b) => b.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    for at in 0..=longest {
        let (split_outcomes, split_summary, split_written) =
            play(config.clone(), mailboxes, script, Some(at));
        assert_eq!(split_outcomes, outcomes, "split at {at}");
        assert_eq!(split_summary, summary, "split at {at}");
        assert_eq!(split_written, written, "split at {at}");
    }
    assert!(!written.contains("DATA") && !written.contains("BDAT"));
    (outcomes, summary)
}

/// For scripts where the server talks out of turn: that can only be seen when the extra bytes
/// arrive together with the reply before them (once they arrive after our next command, they
/// are indistinguishable from its reply). So the script runs whole, and split only inside its
/// first `within` bytes of each chunk.
fn run_out_of_turn(
    mailboxes: &[&str],
    script: &[Step],
    within: usize,
) -> (Vec<RecipientOutcome>, SessionSummary) {
    let (outcomes, summary, written) = play(config(), mailboxes, script, None);
    for at in 0..within {
        let (o, s, w) = play(config(), mailboxes, script, Some(at));
        assert_eq!(
            (&o, &s, &w),
            (&outcomes, &summary, &written),
            "split at {at}"
        );
    }
    (outcomes, summary)
}

fn reason(outcome: &RecipientOutcome) -> Option<Reason> {
    outcome.reason()
}

fn reasons(outcomes: &[RecipientOutcome]) -> Vec<Option<Reason>> {
    outcomes.iter().map(reason).collect()
}

const POSTFIX_GREETING: &str = "220 mx.example.com ESMTP Postfix (Debian/GNU)\r\n";
const POSTFIX_EHLO: &str = "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n";
const EXIM_EHLO: &str = "250-mail.example.org Hello probe.example.net [192.0.2.7]\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 HELP\r\n";
const EHLO_CMD: &str = "EHLO probe.example.net\r\n";
const MAIL_CMD: &str = "MAIL FROM:<probe@example.net>\r\n";

mod conversations {
    use super::*;

    #[test]
    fn postfix_pipelined_batch() {
        let (outcomes, summary) = run(
            config(),
            &["alice@example.com", "nobody@example.com", "bob@example.com"],
            &[
                Step::Client(""),
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<alice@example.com>\r\n\
                     RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nQUIT\r\n",
                ),
                Step::Server(
                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@example.com>: Recipient \
                     address rejected: User unknown in virtual mailbox table\r\n250 2.1.5 Ok\r\n",
                ),
                Step::Client(""),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
        assert_eq!(
            reasons(&outcomes),
            [
                Some(Reason::Accepted),
                Some(Reason::MailboxNotFound),
                Some(Reason::Accepted)
            ]
        );
        let RecipientOutcome::Replied { stage, reply, .. } = &outcomes[1] else {
            panic!("{outcomes:?}");
        };
        assert_eq!(*stage, Stage::RcptTo);
        assert_eq!(reply.as_reply().code().get(), 550);
        assert!(summary.quit_acknowledged);
        assert!(summary.extensions.as_ref().is_some_and(|e| e.pipelining()));
        assert_eq!(summary.transactions, 1);
        assert!(summary.failure.is_none());
    }

    #[test]
    fn exim_without_pipelining_is_lock_step() {
        let (outcomes, _) = run(
            config(),
            &["alice@example.org", "gone@example.org"],
            &[
                Step::Server("220 mail.example.org ESMTP Exim 4.96\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server(EXIM_EHLO),
                Step::Client(MAIL_CMD),
                Step::Server("250 OK\r\n"),
                Step::Client("RCPT TO:<alice@example.org>\r\n"),
                Step::Server("250 Accepted\r\n"),
                Step::Client("RCPT TO:<gone@example.org>\r\n"),
                Step::Server("550 Unrouteable address\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 mail.example.org closing connection\r\n"),
            ],
        );
        assert_eq!(
            reasons(&outcomes),
            [Some(Reason::Accepted), Some(Reason::MailboxNotFound)]
        );
    }

    #[test]
    fn a_multi_line_greeting_is_waited_for_whole() {
        let (outcomes, summary) = run(
            config(),
            &["alice@example.com"],
            &[
                Step::Server("220-mx.example.com ESMTP\r\n"),
                Step::Client(""),
                Step::Server("220-Unauthorised access is prohibited.\r\n"),
                Step::Client(""),
                Step::Server("220 Talk to postmaster@example.com for help.\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 mx.example.com\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<alice@example.com>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        assert_eq!(reasons(&outcomes), [Some(Reason::Accepted)]);
        assert_eq!(summary.greeting.map(|g| g.as_reply().line_count()), Some(3));
    }

    #[test]
    fn ehlo_refused_falls_back_to_helo() {
        let (outcomes, summary) = run(
            config(),
            &["alice@old.example"],
            &[
                Step::Server("220 old.example SMTP\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("502 5.5.2 Error: command not recognized\r\n"),
                Step::Client("HELO probe.example.net\r\n"),
                Step::Server("250 old.example\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<alice@old.example>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        assert_eq!(reasons(&outcomes), [Some(Reason::Accepted)]);
        assert_eq!(summary.extensions, Some(Extensions::default()));
    }

    #[test]
    fn gmail_style_multi_line_rejection() {
        let (outcomes, _) = run(
            config(),
            &["nosuchuser@gmail.example"],
            &[
                Step::Server("220 mx.google.com ESMTP gsmtp\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server(
                    "250-mx.google.com at your service\r\n250-SIZE 157286400\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n",
                ),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<nosuchuser@gmail.example>\r\nQUIT\r\n",
                ),
                Step::Server(
                    "250 2.1.0 OK gsmtp\r\n550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n550-5.1.1 double-checking the recipient's email address for typos or\r\n550-5.1.1 unnecessary spaces. For more information, go to\r\n550 5.1.1  https://support.google.com/mail/?p=NoSuchUser gsmtp\r\n",
                ),
                Step::Server("221 2.0.0 closing connection gsmtp\r\n"),
            ],
        );
        assert_eq!(reasons(&outcomes), [Some(Reason::MailboxNotFound)]);
    }

    #[test]
    fn greylisting_at_rcpt() {
        let (outcomes, _) = run(
            config(),
            &["alice@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<alice@example.com>\r\nQUIT\r\n",
                ),
                Step::Server(
                    "250 2.1.0 Ok\r\n451 4.7.1 Greylisting in action, please come back in 00:05:00\r\n",
                ),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
        assert_eq!(reasons(&outcomes), [Some(Reason::Greylisted)]);
    }

    #[test]
    fn a_null_sender_when_configured() {
        let config = SessionConfig::new(HELO, Sender::Null);
        let (outcomes, _) = run(
            config,
            &["alice@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client("MAIL FROM:<>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<alice@example.org>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        assert_eq!(reasons(&outcomes), [Some(Reason::Accepted)]);
    }
}

mod refusals {
    use super::*;

    #[test]
    fn a_554_greeting_settles_everyone_and_quits() {
        let (outcomes, summary) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(
                    "554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org\r\n",
                ),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        for outcome in &outcomes {
            let RecipientOutcome::Replied { stage, reason, .. } = outcome else {
                panic!("{outcome:?}");
            };
            assert_eq!((*stage, *reason), (Stage::Greeting, Reason::Blocked));
        }
        assert!(summary.quit_acknowledged);
    }

    #[test]
    fn a_421_greeting_hands_everyone_back_for_the_next_mx() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com"],
            &[
                Step::Server(
                    "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.7\r\n",
                ),
                Step::Client(""),
            ],
        );
        assert_eq!(
            outcomes,
            [RecipientOutcome::HandedBack(HandBack::ServiceUnavailable)]
        );
    }

    #[test]
    fn a_refused_sender_is_never_a_verdict_on_the_recipients() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nQUIT\r\n",
                ),
                Step::Server(
                    "553 5.1.8 <probe@example.net>: Sender address rejected: Domain not found\r\n503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n",
                ),
                Step::Client(""),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
        for outcome in &outcomes {
            let RecipientOutcome::Replied { stage, reason, .. } = outcome else {
                panic!("{outcome:?}");
            };
            assert_eq!((*stage, *reason), (Stage::MailFrom, Reason::SenderRejected));
        }
    }

    #[test]
    fn a_421_mid_session_hands_back_the_unanswered() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com", "b@example.com", "c@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nQUIT\r\n",
                ),
                Step::Server(
                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n421 4.4.2 mx.example.com Error: timeout exceeded\r\n",
                ),
                Step::Client(""),
            ],
        );
        // The 250 read for a is not vouched for: a pipelined exchange that ends before QUIT
        // is answered proves nothing about which reply answered what.
        assert_eq!(
            outcomes[0],
            RecipientOutcome::Unconfirmed(Misalignment::Unproven(None))
        );
        assert_eq!(
            outcomes[1],
            RecipientOutcome::HandedBack(HandBack::ServiceUnavailable)
        );
        assert_eq!(
            outcomes[2],
            RecipientOutcome::HandedBack(HandBack::ServiceUnavailable)
        );
    }

    #[test]
    fn too_many_recipients_hands_back_the_rest_pipelined() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com", "b@example.com", "c@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nQUIT\r\n",
                ),
                Step::Server(
                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n452 4.5.3 Error: too many recipients\r\n",
                ),
                Step::Client(""),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::Accepted));
        assert_eq!(
            outcomes[1],
            RecipientOutcome::HandedBack(HandBack::TooManyRecipients)
        );
        assert_eq!(
            outcomes[2],
            RecipientOutcome::HandedBack(HandBack::TooManyRecipients)
        );
    }

    #[test]
    fn too_many_recipients_stops_asking_in_lock_step() {
        let (outcomes, _) = run(
            config(),
            &["a@example.org", "b@example.org", "c@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<a@example.org>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<b@example.org>\r\n"),
                Step::Server("452 Too many recipients\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::Accepted));
        assert_eq!(
            outcomes[1],
            RecipientOutcome::HandedBack(HandBack::TooManyRecipients)
        );
        assert_eq!(
            outcomes[2],
            RecipientOutcome::HandedBack(HandBack::TooManyRecipients)
        );
    }

    #[test]
    fn a_452_about_storage_is_not_a_recipient_limit() {
        let (outcomes, _) = run(
            config(),
            &["a@example.org", "b@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<a@example.org>\r\n"),
                Step::Server("452 4.2.2 Mailbox full\r\n"),
                Step::Client("RCPT TO:<b@example.org>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        assert_eq!(
            reasons(&outcomes),
            [Some(Reason::MailboxFull), Some(Reason::Accepted)]
        );
    }
}

mod transactions {
    use super::*;

    #[test]
    fn more_recipients_than_a_transaction_holds_means_rset_and_another() {
        let mut config = config();
        config.max_recipients_per_transaction = 2;
        let (outcomes, summary) = run(
            config,
            &["a@example.com", "b@example.com", "c@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n",
                ),
                Step::Server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n"),
                Step::Client("RSET\r\n"),
                Step::Server("250 2.0.0 Ok\r\n"),
                // The last transaction: QUIT ends its group (RFC 2920 §3.1).
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<c@example.com>\r\nQUIT\r\n",
                ),
                Step::Server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
                Step::Client(""),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
        assert_eq!(
            reasons(&outcomes),
            [
                Some(Reason::Accepted),
                Some(Reason::MailboxNotFound),
                Some(Reason::Accepted)
            ]
        );
        assert_eq!(summary.transactions, 2);
    }

    #[test]
    fn pipelining_is_used_only_when_offered_and_configured() {
        let mut config = config();
        config.pipelining = false;
        run(
            config,
            &["a@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(MAIL_CMD),
                Step::Server("250 2.1.0 Ok\r\n"),
                Step::Client("RCPT TO:<a@example.com>\r\n"),
                Step::Server("250 2.1.5 Ok\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
    }

    #[test]
    fn smtputf8_recipients_go_only_to_servers_that_offer_it() {
        // Postfix offers SMTPUTF8: the transaction is opened with it.
        let (outcomes, _) = run(
            config(),
            &["josé@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net> SMTPUTF8\r\nRCPT TO:<josé@example.com>\r\nQUIT\r\n",
                ),
                Step::Server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
        assert_eq!(reasons(&outcomes), [Some(Reason::Accepted)]);
        // Exim here does not: the UTF-8 recipient is never sent; the ASCII one is.
        let (outcomes, _) = run(
            config(),
            &["josé@example.org", "jose@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server(EXIM_EHLO),
                Step::Client(MAIL_CMD),
                Step::Server("250 OK\r\n"),
                Step::Client("RCPT TO:<jose@example.org>\r\n"),
                Step::Server("250 Accepted\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        assert_eq!(outcomes[0], RecipientOutcome::Smtputf8Unsupported);
        assert_eq!(outcomes[1].reason(), Some(Reason::Accepted));
    }

    #[test]
    fn no_recipient_left_after_the_filter_means_quit() {
        let (outcomes, summary) = run(
            config(),
            &["josé@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("221 bye\r\n"),
            ],
        );
        assert_eq!(outcomes, [RecipientOutcome::Smtputf8Unsupported]);
        assert_eq!(summary.transactions, 0);
    }
}

mod hostile_servers {
    use super::*;

    #[test]
    fn closing_without_a_reply_hands_back() {
        let (outcomes, summary) = run(
            config(),
            &["a@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Close,
            ],
        );
        assert_eq!(
            outcomes,
            [RecipientOutcome::HandedBack(HandBack::ConnectionLost)]
        );
        assert!(!summary.quit_acknowledged);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let (outcomes, summary) = run(
            config(),
            &["a@example.com"],
            &[
                Step::Server("HTTP/1.1 400 Bad Request\r\n"),
                Step::Client("QUIT\r\n"),
            ],
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::ProtocolError));
        assert!(matches!(
            summary.failure,
            Some(Failure::Protocol(ProtocolViolation::Malformed(_)))
        ));
    }

    #[test]
    fn a_server_that_talks_before_being_asked_is_a_protocol_error() {
        let (outcomes, summary) = run_out_of_turn(
            &["a@example.com"],
            &[
                Step::Server("220 x\r\n250 unasked\r\n"),
                Step::Client("EHLO probe.example.net\r\nQUIT\r\n"),
            ],
            "220 x\r\n".len(),
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::ProtocolError));
        // The reply that came unasked is kept: it is what the verdict shows.
        assert!(matches!(
            summary.failure,
            Some(Failure::Protocol(ProtocolViolation::Unsolicited(Some(ref r))))
                if r.as_reply().code().get() == 250
        ));
    }

    #[test]
    fn a_reply_after_the_last_one_expected_is_unsolicited() {
        let (outcomes, _) = run_out_of_turn(
            &["a@example.com"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n250 extra\r\n"),
                Step::Client("RCPT TO:<a@example.com>\r\nQUIT\r\n"),
            ],
            "250 ok\r\n".len(),
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::ProtocolError));
    }

    #[test]
    fn an_unexpected_code_is_a_protocol_error() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com"],
            &[Step::Server("250 hello\r\n"), Step::Client("QUIT\r\n")],
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::ProtocolError));
    }

    #[test]
    fn an_endless_multi_line_reply_ends_at_the_cap() {
        let line =
            "250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n";
        let endless: &'static str = Box::leak(line.repeat(100).into_boxed_str());
        let (outcomes, summary) = run(
            config(),
            &["a@example.com"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server(endless),
                Step::Client("QUIT\r\n"),
            ],
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::ProtocolError));
        assert!(matches!(
            summary.failure,
            Some(Failure::Protocol(ProtocolViolation::Malformed(e))) if e.is_limit_exceeded()
        ));
    }
}

/// Every reply is read as the answer to one command; these are the ways a server makes that
/// reading wrong, and what the session does instead of a verdict.
mod alignment {
    use super::*;

    const GROUP_AB: &str = "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\n\
                            RCPT TO:<b@example.com>\r\nQUIT\r\n";

    fn broken(outcome: &RecipientOutcome) -> &ProtocolViolation {
        match outcome {
            RecipientOutcome::Unconfirmed(Misalignment::Broken(violation))
            | RecipientOutcome::Failed(Failure::Protocol(violation)) => violation,
            other => panic!("not a broken pairing: {other:?}"),
        }
    }

    fn code(violation: &ProtocolViolation) -> Option<u16> {
        violation.reply().map(|r| r.as_reply().code().get())
    }

    #[test]
    fn a_221_before_the_group_is_answered_hands_everyone_back() {
        // Seen with a real server: MAIL, RCPT, RCPT, QUIT pipelined; back came 250 and 221.
        // Pairing by order alone made the 221 the first RCPT's answer: a false deliverable.
        let (outcomes, summary) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(GROUP_AB),
                Step::Server("250 2.1.0 Ok\r\n221 2.0.0 Bye\r\n"),
                Step::Close,
            ],
        );
        for outcome in &outcomes {
            assert!(matches!(
                outcome,
                RecipientOutcome::Unconfirmed(Misalignment::Broken(
                    ProtocolViolation::RepliesLost(_)
                ))
            ));
            assert_eq!(code(broken(outcome)), Some(221));
            assert_eq!(outcome.reason(), None, "never a verdict from the 221");
        }
        assert!(!summary.quit_acknowledged);
        assert!(summary.pipelined);
    }

    #[test]
    fn positive_replies_an_rcpt_may_not_get_break_the_pairing() {
        for reply in [
            "220 mx ready",
            "221 bye",
            "235 2.7.0 ok",
            "354 go ahead",
            "200 ok",
        ] {
            let wire: &'static str = Box::leak(format!("250 2.1.0 Ok\r\n{reply}\r\n").into());
            let (outcomes, _) = run(
                config(),
                &["a@example.com"],
                &[
                    Step::Server(POSTFIX_GREETING),
                    Step::Client(EHLO_CMD),
                    Step::Server(POSTFIX_EHLO),
                    Step::Client(
                        "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\nQUIT\r\n",
                    ),
                    Step::Server(wire),
                    Step::Close,
                ],
            );
            assert!(
                matches!(
                    &outcomes[0],
                    RecipientOutcome::Unconfirmed(Misalignment::Broken(_))
                ),
                "{reply}: {outcomes:?}"
            );
        }
    }

    #[test]
    fn in_lock_step_a_misfit_rcpt_reply_is_a_protocol_error_with_that_reply() {
        let (outcomes, summary) = run(
            config(),
            &["a@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<a@example.org>\r\n"),
                Step::Server("221 closing\r\n"),
                Step::Client("QUIT\r\n"),
            ],
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::ProtocolError));
        assert!(matches!(
            broken(&outcomes[0]),
            ProtocolViolation::UnexpectedCode {
                to: Answering::RcptTo,
                ..
            }
        ));
        assert_eq!(code(broken(&outcomes[0])), Some(221));
        assert!(!summary.pipelined);
    }

    #[test]
    fn an_extra_reply_shifts_the_pairing_and_quit_catches_it() {
        // One reply too many after MAIL: a reads the extra 250, b reads a's 250, and QUIT
        // reads b's 550. Only QUIT's reply shows it; nobody may keep what they read.
        let (outcomes, summary) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(GROUP_AB),
                Step::Server(
                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 Recipient \
                     address rejected: User unknown\r\n",
                ),
                Step::Server("221 2.0.0 Bye\r\n"),
            ],
        );
        for outcome in &outcomes {
            assert!(matches!(
                broken(outcome),
                ProtocolViolation::UnexpectedCode {
                    to: Answering::Quit,
                    ..
                }
            ));
            assert_eq!(code(broken(outcome)), Some(550));
        }
        assert!(!summary.quit_acknowledged);
    }

    #[test]
    fn in_lock_step_an_extra_reply_after_our_next_command_is_caught_by_quit() {
        // The extra 250 comes after RCPT went out, so it cannot be told from RCPT's reply; the
        // real reply then answers QUIT, which may only be answered 221.
        let (outcomes, _) = run(
            config(),
            &["a@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<a@example.org>\r\n"),
                Step::Server("250 2.1.5 extra\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("550 5.1.1 no such user\r\n"),
            ],
        );
        assert_eq!(outcomes[0].reason(), Some(Reason::ProtocolError));
        assert_eq!(code(broken(&outcomes[0])), Some(550));
    }

    #[test]
    fn a_partial_reply_to_quit_that_cannot_be_221_breaks_the_pairing() {
        // Found by the simulation: an extra 250 read as RCPT's answer, then the real RCPT
        // reply trickling in where QUIT's belongs, and the connection gone before it was
        // whole. Its first bytes are enough: no 221 starts with "55".
        for ending in [Step::Close, Step::Wait(Duration::from_secs(5))] {
            let (outcomes, _) = run(
                config(),
                &["a@example.org"],
                &[
                    Step::Server("220 x\r\n"),
                    Step::Client(EHLO_CMD),
                    Step::Server("250 x\r\n"),
                    Step::Client(MAIL_CMD),
                    Step::Server("250 ok\r\n"),
                    Step::Client("RCPT TO:<a@example.org>\r\n"),
                    Step::Server("250 2.1.5 extra\r\n"),
                    Step::Client("QUIT\r\n"),
                    Step::Server("550 5.1"),
                    ending.clone(),
                ],
            );
            assert_eq!(
                outcomes[0],
                RecipientOutcome::Failed(Failure::Protocol(ProtocolViolation::ShiftedOntoQuit)),
                "{ending:?}"
            );
        }
        // A 221 on its way is no such evidence: unproven, not broken.
        let (outcomes, _) = run(
            config(),
            &["a@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<a@example.org>\r\n"),
                Step::Server("250 2.1.5 ok\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Server("22"),
                Step::Close,
            ],
        );
        assert_eq!(
            outcomes,
            [RecipientOutcome::Unconfirmed(Misalignment::Unproven(None))]
        );
    }

    #[test]
    fn a_reply_naming_another_recipient_means_the_replies_are_out_of_order() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(GROUP_AB),
                Step::Server(
                    "250 2.1.0 Ok\r\n550 5.1.1 <B@example.com>: Recipient address rejected: \
                     User unknown\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n",
                ),
            ],
        );
        for outcome in &outcomes {
            assert!(matches!(
                broken(outcome),
                ProtocolViolation::NamesAnotherRecipient(_)
            ));
        }
    }

    #[test]
    fn a_reply_naming_its_own_recipient_or_a_stranger_is_read() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(GROUP_AB),
                Step::Server(
                    "250 2.1.0 Ok\r\n251 2.1.5 will forward to <c@elsewhere.example>\r\n\
                     550 5.1.1 <b@EXAMPLE.com>: Recipient address rejected\r\n221 Bye\r\n",
                ),
            ],
        );
        assert_eq!(
            reasons(&outcomes),
            [Some(Reason::Accepted), Some(Reason::MailboxNotFound)]
        );
    }

    #[test]
    fn a_reply_after_the_221_means_the_221_was_not_quits() {
        let (outcomes, _) = run_out_of_turn(
            &["a@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\nQUIT\r\n",
                ),
                Step::Server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n221 Bye\r\n250 Ok\r\n"),
            ],
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n221 Bye\r\n".len(),
        );
        assert!(matches!(
            outcomes[0],
            RecipientOutcome::Unconfirmed(Misalignment::Broken(ProtocolViolation::Unsolicited(_)))
        ));
    }

    #[test]
    fn a_pipelined_group_closed_before_its_221_is_unproven() {
        let (outcomes, summary) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(GROUP_AB),
                Step::Server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"),
                Step::Close,
            ],
        );
        assert_eq!(
            outcomes,
            [
                RecipientOutcome::Unconfirmed(Misalignment::Unproven(None)),
                RecipientOutcome::Unconfirmed(Misalignment::Unproven(None))
            ]
        );
        assert_eq!(summary.misalignment, Some(Misalignment::Unproven(None)));
    }

    #[test]
    fn lock_step_answers_need_the_221_too() {
        // Found by the simulation: in lock-step, an extra reply that comes after RCPT went out
        // is read as RCPT's answer; if the server then hangs up (or falls silent) before the
        // real reply lands where QUIT's belongs, nothing ever shows the shift. Not even the
        // end of the stream proves the pairing: a server can close with a reply still owed.
        let mut config = config();
        config.pipelining = false;
        for (ending, expected) in [
            (Step::Close, None),
            (
                Step::Wait(Duration::from_secs(5)),
                Some(Failure::Timeout(Wait::Quit)),
            ),
        ] {
            let (outcomes, summary) = run(
                config.clone(),
                &["a@example.com"],
                &[
                    Step::Server(POSTFIX_GREETING),
                    Step::Client(EHLO_CMD),
                    Step::Server(POSTFIX_EHLO),
                    Step::Client(MAIL_CMD),
                    Step::Server("250 2.1.0 Ok\r\n"),
                    Step::Client("RCPT TO:<a@example.com>\r\n"),
                    Step::Server("250 2.1.5 Ok\r\n"),
                    Step::Client("QUIT\r\n"),
                    ending,
                ],
            );
            assert_eq!(
                outcomes,
                [RecipientOutcome::Unconfirmed(Misalignment::Unproven(
                    expected.clone()
                ))]
            );
            assert!(!summary.pipelined);
        }
    }

    #[test]
    fn a_greeting_refusal_needs_no_221() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com"],
            &[
                Step::Server("554 5.7.1 No SMTP service here\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Close,
            ],
        );
        assert_eq!(reasons(&outcomes), [Some(Reason::Blocked)]);
    }

    #[test]
    fn mail_from_and_rset_accept_only_250() {
        let (outcomes, _) = run(
            config(),
            &["a@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("251 ok\r\n"),
                Step::Client("QUIT\r\n"),
            ],
        );
        assert!(matches!(
            broken(&outcomes[0]),
            ProtocolViolation::UnexpectedCode {
                to: Answering::MailFrom,
                ..
            }
        ));
        let mut config = config();
        config.max_recipients_per_transaction = 1;
        config.pipelining = false;
        let (outcomes, _) = run(
            config,
            &["a@example.org", "b@example.org"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<a@example.org>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("RSET\r\n"),
                Step::Server("220 what\r\n"),
                Step::Client("QUIT\r\n"),
            ],
        );
        for outcome in &outcomes {
            assert!(matches!(
                broken(outcome),
                ProtocolViolation::UnexpectedCode {
                    to: Answering::Rset,
                    ..
                }
            ));
        }
    }
}

mod deadlines {
    use super::*;

    #[test]
    fn a_silent_server_times_out_at_the_greeting() {
        let (outcomes, _) = run(
            config(),
            &["a@example.com"],
            &[
                Step::Wait(Duration::from_secs(30)),
                Step::Client("QUIT\r\n"),
            ],
        );
        assert_eq!(
            outcomes,
            [RecipientOutcome::Failed(Failure::Timeout(Wait::Reply(
                Stage::Greeting
            )))]
        );
    }

    #[test]
    fn a_drip_fed_reply_cannot_stretch_its_deadline() {
        // One byte a second: the RCPT reply is never complete within its 30 s.
        let origin = Instant::now();
        let mut now = origin;
        let mut session = Session::new(checked(config()), recipients(&["a@example.com"]), now);
        session.handle_connected(now);
        for reply in ["220 x\r\n", "250 x\r\n", "250 ok\r\n"] {
            session.handle_input(reply.as_bytes(), now);
        }
        let drip = b"250 2.1.5 Ok but very slowly, one byte at a time\r\n";
        let mut settled = None;
        for &byte in drip.iter().cycle().take(60) {
            now += Duration::from_secs(1);
            if session.poll_timeout().is_some_and(|at| at <= now) {
                session.handle_timeout(now);
            }
            session.handle_input(&[byte], now);
            while let Some(event) = session.poll_event() {
                if let SessionEvent::Recipient { outcome, .. } = event {
                    settled.get_or_insert((now - origin, outcome));
                }
            }
        }
        let (at, outcome) = settled.expect("settled");
        assert_eq!(
            outcome,
            RecipientOutcome::Failed(Failure::Timeout(Wait::Reply(Stage::RcptTo)))
        );
        assert_eq!(at, Duration::from_secs(30));
    }

    #[test]
    fn the_session_deadline_ends_everything() {
        let mut config = config();
        config.timeouts.session = Duration::from_secs(10);
        let (outcomes, summary) = run(
            config,
            &["a@example.com"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Wait(Duration::from_secs(10)),
                // Found by the simulation: a session that got a greeting says QUIT, even
                // when its own deadline ends it.
                Step::Client("QUIT\r\n"),
            ],
        );
        assert_eq!(
            outcomes,
            [RecipientOutcome::Failed(Failure::Timeout(Wait::Session))]
        );
        assert_eq!(summary.failure, Some(Failure::Timeout(Wait::Session)));
    }

    #[test]
    fn no_221_is_waited_for_only_briefly() {
        let (outcomes, summary) = run(
            config(),
            &["a@example.com"],
            &[
                Step::Server("220 x\r\n"),
                Step::Client(EHLO_CMD),
                Step::Server("250 x\r\n"),
                Step::Client(MAIL_CMD),
                Step::Server("250 ok\r\n"),
                Step::Client("RCPT TO:<a@example.com>\r\n"),
                Step::Server("250 ok\r\n"),
                Step::Client("QUIT\r\n"),
                Step::Wait(Duration::from_secs(5)),
            ],
        );
        // Waited for only briefly, and then the answer is unproven: the engine asks again.
        assert_eq!(
            outcomes[0],
            RecipientOutcome::Unconfirmed(Misalignment::Unproven(Some(Failure::Timeout(
                Wait::Quit
            ))))
        );
        assert!(!summary.quit_acknowledged);
    }

    #[test]
    fn a_server_silent_after_a_pipelined_group_gets_no_second_quit() {
        let (outcomes, summary) = run(
            config(),
            &["a@example.com", "b@example.com"],
            &[
                Step::Server(POSTFIX_GREETING),
                Step::Client(EHLO_CMD),
                Step::Server(POSTFIX_EHLO),
                Step::Client(
                    "MAIL FROM:<probe@example.net>\r\nRCPT TO:<a@example.com>\r\n\
                     RCPT TO:<b@example.com>\r\nQUIT\r\n",
                ),
                Step::Server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
                Step::Wait(Duration::from_secs(31)),
                Step::Client(""),
            ],
        );
        let timeout = Failure::Timeout(Wait::Reply(Stage::RcptTo));
        assert_eq!(
            outcomes[0],
            RecipientOutcome::Unconfirmed(Misalignment::Unproven(Some(timeout.clone())))
        );
        assert_eq!(outcomes[1], RecipientOutcome::Failed(timeout.clone()));
        assert!(!summary.quit_acknowledged);
        assert_eq!(
            summary.misalignment,
            Some(Misalignment::Unproven(Some(timeout)))
        );
    }

    #[test]
    fn connect_failures_hand_back_for_the_next_mx() {
        let now = Instant::now();
        let mut refused = Session::new(checked(config()), recipients(&["a@example.com"]), now);
        refused.handle_closed(now);
        assert_eq!(
            refused.poll_event(),
            Some(SessionEvent::Recipient {
                index: 0,
                outcome: RecipientOutcome::HandedBack(HandBack::ConnectFailed)
            })
        );
        let mut slow = Session::new(checked(config()), recipients(&["a@example.com"]), now);
        assert_eq!(slow.poll_timeout(), Some(now + Duration::from_secs(10)));
        slow.handle_timeout(now + Duration::from_secs(10));
        assert!(slow.is_finished());
        assert_eq!(
            slow.poll_event(),
            Some(SessionEvent::Recipient {
                index: 0,
                outcome: RecipientOutcome::HandedBack(HandBack::ConnectFailed)
            })
        );
        assert!(
            slow.pending_output().is_empty(),
            "nothing is written without a connection"
        );
    }
}

mod transcripts {
    use super::*;

    #[test]
    fn both_directions_with_times() {
        let mut config = config();
        config.transcript = true;
        let origin = Instant::now();
        let mut session = Session::new(checked(config), recipients(&["a@example.com"]), origin);
        session.handle_connected(origin);
        session.handle_input(b"220 x\r\n", origin + Duration::from_millis(10));
        session.handle_input(b"250 x\r\n", origin + Duration::from_millis(20));
        let transcript = session.transcript().expect("asked for").to_string();
        assert_eq!(
            transcript,
            "+0.010s < 220 x\n+0.010s > EHLO probe.example.net\n+0.020s < 250 x\n+0.020s > MAIL FROM:<probe@example.net>\n"
        );
    }

    #[test]
    fn a_hostile_reply_cannot_write_control_characters_to_a_terminal() {
        let mut config = config();
        config.transcript = true;
        let now = Instant::now();
        let mut session = Session::new(checked(config), recipients(&["a@example.com"]), now);
        session.handle_connected(now);
        session.handle_input(b"220 \x1b[2Jcleared\r\n", now);
        let transcript = session.transcript().expect("asked for").to_string();
        assert!(transcript.contains("220 \\x1b[2Jcleared"), "{transcript}");
    }

    #[test]
    fn none_is_kept_unless_asked_for() {
        let session = Session::new(checked(config()), Recipients::default(), Instant::now());
        assert!(session.transcript().is_none());
    }
}

mod configuration {
    use super::*;

    #[test]
    fn injection_in_the_helo_name_or_sender_is_refused_up_front() {
        assert!(config().validate().is_ok());
        let helo = SessionConfig::new("bad\r\nDATA", Sender::Null).check();
        assert!(matches!(helo, Err(ConfigError::HeloName { .. })));
        let sender =
            SessionConfig::new(HELO, Sender::Mailbox("a@b.example>\r\nRSET".into())).check();
        assert!(matches!(sender, Err(ConfigError::Sender { .. })));
    }

    #[test]
    fn a_bad_helo_name_or_sender_is_refused_with_what_to_fix() {
        // Once, this settled every recipient as `invalid_syntax`: the prober's own mistake
        // became a verdict on each mailbox. Now no session can be made with it.
        let Err(error) = SessionConfig::new("bad name", Sender::Null).check() else {
            panic!("a space in the EHLO name");
        };
        let message = error.to_string();
        assert!(
            message.starts_with("the EHLO name \"bad name\" cannot be used")
                && message.contains("such as probe.example.com"),
            "{message}"
        );
        let Err(error) = SessionConfig::new(HELO, Sender::Mailbox("no at sign".into())).check()
        else {
            panic!("a sender without @");
        };
        assert!(
            error
                .to_string()
                .contains("give a mailbox on a domain you control")
        );
    }
}
