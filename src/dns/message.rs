//! DNS messages on the wire: the queries mxprobe sends, and the checks a response passes before
//! anything in it is believed. `hickory-proto` does the encoding and decoding; this module
//! decides what to send and what to accept.
//!
//! # Accepting a response (RFC 5452 §9.1)
//!
//! > "the resolver MUST match the response to the query: [...] the ID field, the question
//! > section (name, type, class), the source address and the destination port."
//!
//! [`check_response`] does the part that lives in the message: it is a response (QR=1) to a
//! standard query, carries the query's ID, and asks exactly the question that was asked (the
//! name compared without regard to case, as DNS names are). The resolver adds the rest: the
//! datagram came from the server the query went to, on the socket (and so the random port) the
//! query left from. A response that fails any check is dropped and counted, and the query keeps
//! waiting for the real one: an attacker who can only spray packets cannot end a lookup.
//!
//! Decoding never panics: truncated packets, compression-pointer loops and garbage are
//! [`Rejected::Malformed`]. The `dns_response` fuzz target holds this true.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// The EDNS(0) UDP payload size mxprobe advertises: 1232 octets, the value DNS Flag Day 2020
/// settled on, which avoids IP fragmentation on every common path (RFC 9715 discusses why).
pub const EDNS_PAYLOAD: u16 = 1232;

/// The question of a query: a name and a type, class IN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// The name asked about, fully qualified and lower-case.
    pub name: Name,
    /// `MX`, `A`, `AAAA`.
    pub qtype: RecordType,
}

impl Question {
    /// A question about `name` (fully qualified and lower-cased here).
    #[must_use]
    pub fn new(name: &Name, qtype: RecordType) -> Self {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        Self { name, qtype }
    }
}

/// Encodes a standard query for `question`: recursion desired (mxprobe asks a recursive
/// resolver, as a stub does), and an EDNS(0) OPT record advertising [`EDNS_PAYLOAD`] when
/// `edns` is set.
#[must_use]
pub fn encode_query(id: u16, question: &Question, edns: bool) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(question.name.clone(), question.qtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(EDNS_PAYLOAD);
        message.set_edns(opt);
    }
    // A query with one question of a name that `Name` accepted always encodes; an empty
    // buffer would be refused by every server and end in a timeout, never in a panic.
    message.to_vec().unwrap_or_default()
}

/// Prefixes a message with its two-octet length, as DNS over TCP frames it (RFC 1035 §4.2.2).
#[must_use]
pub fn tcp_frame(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// Why a received message was not accepted as the response to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejected {
    /// Not a DNS message: truncated, a compression loop, garbage.
    Malformed,
    /// A query, or an opcode other than QUERY.
    NotAResponse,
    /// Another ID: a late answer to an earlier try, or a spoofing attempt.
    WrongId,
    /// Another question, or none, or several.
    WrongQuestion,
}

/// Decodes `bytes` and accepts them as the response to the query `id` for `question`.
pub fn check_response(bytes: &[u8], id: u16, question: &Question) -> Result<Message, Rejected> {
    // The ID is the first two octets: a mismatch is refused before the cost of decoding.
    match bytes.get(..2) {
        Some(prefix) if prefix == id.to_be_bytes() => {}
        Some(_) => return Err(Rejected::WrongId),
        None => return Err(Rejected::Malformed),
    }
    let message = Message::from_vec(bytes).map_err(|_| Rejected::Malformed)?;
    if message.metadata.message_type != MessageType::Response
        || message.metadata.op_code != OpCode::Query
    {
        return Err(Rejected::NotAResponse);
    }
    match message.queries.as_slice() {
        [asked]
            if asked.query_class == DNSClass::IN
                && asked.query_type == question.qtype
                && asked.name == question.name =>
        {
            Ok(message)
        }
        _ => Err(Rejected::WrongQuestion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::ResponseCode;

    fn question() -> Question {
        Question::new(
            &Name::from_ascii("Example.COM").expect("name"),
            RecordType::MX,
        )
    }

    fn response(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
        let mut message = Message::response(id, OpCode::Query);
        message.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        message.to_vec().expect("encodes")
    }

    #[test]
    fn queries_carry_one_question_rd_and_edns() {
        let wire = encode_query(0x1234, &question(), true);
        let decoded = Message::from_vec(&wire).expect("decodes");
        assert_eq!(decoded.metadata.id, 0x1234);
        assert!(decoded.metadata.recursion_desired);
        assert_eq!(decoded.queries.len(), 1);
        assert_eq!(decoded.queries[0].name.to_ascii(), "example.com.");
        assert_eq!(decoded.queries[0].query_type, RecordType::MX);
        assert_eq!(decoded.edns.map(|e| e.max_payload()), Some(EDNS_PAYLOAD));
        let plain = Message::from_vec(&encode_query(7, &question(), false)).expect("decodes");
        assert!(plain.edns.is_none());
    }

    #[test]
    fn tcp_frames_carry_the_length() {
        assert_eq!(tcp_frame(b"abc"), [0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn the_matching_response_is_accepted_whatever_the_case_of_its_name() {
        let accepted = check_response(&response(9, "EXAMPLE.com.", RecordType::MX), 9, &question());
        assert!(accepted.is_ok());
    }

    #[test]
    fn everything_else_is_rejected() {
        let q = question();
        assert_eq!(
            check_response(&response(8, "example.com.", RecordType::MX), 9, &q).err(),
            Some(Rejected::WrongId)
        );
        assert_eq!(
            check_response(&response(9, "example.org.", RecordType::MX), 9, &q).err(),
            Some(Rejected::WrongQuestion)
        );
        assert_eq!(
            check_response(&response(9, "example.com.", RecordType::A), 9, &q).err(),
            Some(Rejected::WrongQuestion)
        );
        // A query is not a response.
        assert_eq!(
            check_response(&encode_query(9, &q, true), 9, &q).err(),
            Some(Rejected::NotAResponse)
        );
        let mut no_question = Message::error_msg(9, OpCode::Query, ResponseCode::ServFail);
        no_question.metadata.message_type = MessageType::Response;
        assert_eq!(
            check_response(&no_question.to_vec().expect("encodes"), 9, &q).err(),
            Some(Rejected::WrongQuestion)
        );
        for garbage in [&b""[..], b"\x00", b"\x00\x09", b"\x00\x09\x81\x80\x00\x01"] {
            assert_eq!(
                check_response(garbage, 9, &q).err(),
                Some(Rejected::Malformed)
            );
        }
    }

    #[test]
    fn a_compression_loop_is_malformed_not_a_hang() {
        // Header: ID 9, response, one question; the question's name is a pointer to itself.
        let packet = [
            0x00, 0x09, 0x81, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x0c,
            0x00, 0x0f, 0x00, 0x01,
        ];
        assert_eq!(
            check_response(&packet, 9, &question()).err(),
            Some(Rejected::Malformed)
        );
    }
}
