//! The TLS under one served connection after STARTTLS, sans-IO: [`TlsLayer`] turns the client's
//! ciphertext into plaintext for the dialogue, and the dialogue's released replies into
//! ciphertext for the socket.
//!
//! # Guarantees
//!
//! - No I/O and no clock: bytes in, bytes out, as rustls' buffered API does it.
//! - Nothing the client sends makes it panic: bytes that are not TLS, a handshake that fails
//!   or a record that does not decrypt make [`TlsLayer::receive`] return
//!   [`Received::Failed`]; the alert rustls queues for the client is in
//!   [`TlsLayer::unsent`], and the connection closes once it is written.
//! - Memory is bounded by what the caller feeds it: the plaintext of one call to
//!   [`TlsLayer::receive`] is at most the ciphertext handed in, and the ciphertext waiting for
//!   the socket is the caller's to bound (the conversation counts it in its backlog). rustls'
//!   own buffer limit is lifted so a reply is never cut short.
//! - The handshake costs no simulated latency: its records go out the moment rustls makes
//!   them. Only SMTP replies follow the latency model.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

/// Plaintext read out of rustls at a time.
const PLAINTEXT_CHUNK: usize = 4096;

/// What one [`TlsLayer::receive`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// The bytes were TLS; `handshake_completed` if this call completed the handshake.
    Ok { handshake_completed: bool },
    /// The bytes were not TLS, or the handshake failed: close once the alert is written.
    Failed,
}

/// The server side of TLS on one connection, from the first byte after the `220` to STARTTLS.
#[derive(Debug)]
pub(crate) struct TlsLayer {
    connection: ServerConnection,
    /// Ciphertext for the socket; the first `written` bytes of it already are.
    ciphertext: Vec<u8>,
    written: usize,
    close_notify_sent: bool,
}

impl TlsLayer {
    /// A server connection presenting `config`'s certificate, its handshake not yet begun.
    ///
    /// # Errors
    ///
    /// If rustls refuses `config` (never for the farm's own).
    pub(crate) fn new(config: &Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        let mut connection = ServerConnection::new(Arc::clone(config))?;
        // The conversation bounds what it hands over (it stops reading from a client that
        // does not read its replies); a limit here would cut a reply short instead.
        connection.set_buffer_limit(None);
        Ok(Self {
            connection,
            ciphertext: Vec::new(),
            written: 0,
            close_notify_sent: false,
        })
    }

    /// The client's bytes of one read: decrypted into `plaintext` (appended), handshake
    /// records answered into [`TlsLayer::unsent`].
    pub(crate) fn receive(&mut self, mut bytes: &[u8], plaintext: &mut Vec<u8>) -> Received {
        let was_handshaking = self.connection.is_handshaking();
        let mut outcome = Received::Ok {
            handshake_completed: false,
        };
        while !bytes.is_empty() {
            // read_tls takes what fits in rustls' buffer, which processing and reading the
            // plaintext out empties again: loop until every byte is in.
            match self.connection.read_tls(&mut bytes) {
                Ok(0) | Err(_) => {
                    outcome = Received::Failed;
                    break;
                }
                Ok(_) => {}
            }
            if self.connection.process_new_packets().is_err() {
                outcome = Received::Failed;
                break;
            }
            if !self.read_plaintext(plaintext) {
                outcome = Received::Failed;
                break;
            }
        }
        self.flush();
        match outcome {
            Received::Failed => Received::Failed,
            Received::Ok { .. } => Received::Ok {
                handshake_completed: was_handshaking && !self.connection.is_handshaking(),
            },
        }
    }

    /// Moves the plaintext rustls holds into `plaintext`; false if the stream is broken.
    fn read_plaintext(&mut self, plaintext: &mut Vec<u8>) -> bool {
        let mut chunk = [0; PLAINTEXT_CHUNK];
        loop {
            match self.connection.reader().read(&mut chunk) {
                // The client's close_notify: nothing more will come; the conversation sees
                // the TCP close soon after.
                Ok(0) => return true,
                Ok(read) => plaintext.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    /// Encrypts `reply` for the socket (held by rustls until the handshake is done).
    pub(crate) fn send(&mut self, reply: &[u8]) {
        // With no buffer limit rustls takes every byte; an error would mean the connection
        // already failed, and then nothing more is owed to the client.
        let _ = self.connection.writer().write_all(reply);
        self.flush();
    }

    /// Says close_notify, once, if TLS is up: the server has said its last reply. A server that
    /// gives up on a handshake (the client fell silent after the `220`) just closes, as
    /// Postfix does.
    pub(crate) fn close(&mut self) {
        if !self.close_notify_sent && !self.connection.is_handshaking() {
            self.close_notify_sent = true;
            self.connection.send_close_notify();
            self.flush();
        }
    }

    /// Moves the records rustls has ready into [`TlsLayer::unsent`].
    fn flush(&mut self) {
        while self.connection.wants_write() {
            // Writing into a Vec cannot fail and always makes progress.
            if self.connection.write_tls(&mut self.ciphertext).is_err() {
                return;
            }
        }
    }

    /// Ciphertext ready and not yet written.
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.ciphertext[self.written..]
    }

    /// The first `count` bytes of [`TlsLayer::unsent`] have been written.
    pub(crate) fn mark_written(&mut self, count: usize) {
        self.written += count;
        if self.written >= self.ciphertext.len() {
            self.ciphertext.clear();
            self.written = 0;
        }
    }
}
