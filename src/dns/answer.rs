//! What an accepted response says about the question: records, an alias to follow, "no such
//! data", "no such name", or a server error — and for how long that may be believed.
//!
//! - **CNAME chains** (RFC 1034 §3.6.2) are followed inside the answer section, at most
//!   [`MAX_CHAIN`] links, each name visited once: a loop ends the chain, it does not spin.
//! - A chain that ends at a name with no data of the type asked is "no data" if the response
//!   carries the target zone's SOA (a recursive resolver followed the chain and found nothing),
//!   and an [`Answer::Alias`] to query otherwise (an authoritative server answers only for its
//!   own zone and leaves the rest of the chain to the client).
//! - **TTLs**: records live for the smallest TTL along the chain. A negative answer lives for
//!   the smaller of the SOA record's TTL and its MINIMUM field (RFC 2308 §5); without an SOA it
//!   is not cached at all ("SHOULD NOT be cached", §5).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::message::Question;

/// Most CNAME links followed for one question, inside one answer or across queries.
pub const MAX_CHAIN: usize = 8;

/// What a response says about its question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The records of the type asked, for the name at the end of the chain.
    Records {
        /// The record data, in the order received.
        data: Vec<RData>,
        /// The additional section: glue addresses for MX exchanges.
        additionals: Vec<Record>,
        /// Seconds the records may be cached: the smallest TTL along the chain.
        ttl: u32,
    },
    /// The name is an alias for `target`, whose records this response does not hold.
    Alias {
        /// The name to ask about next.
        target: Name,
        /// The smallest TTL along the chain so far.
        ttl: u32,
    },
    /// The name exists but has no records of the type (NOERROR, empty answer: "NODATA").
    NoData {
        /// Seconds to cache this, from the SOA; `None` when there was no SOA.
        negative_ttl: Option<u32>,
    },
    /// The name does not exist (NXDOMAIN).
    NxDomain {
        /// Seconds to cache this, from the SOA; `None` when there was no SOA.
        negative_ttl: Option<u32>,
    },
    /// The server could not or would not answer: SERVFAIL, REFUSED, NOTIMP, FORMERR, others.
    ServerError(ResponseCode),
}

/// Reads the answer to `question` out of an accepted response.
#[must_use]
pub fn interpret(message: &Message, question: &Question) -> Answer {
    let rcode = message.metadata.response_code;
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return Answer::ServerError(rcode);
    }
    let mut current = question.name.clone();
    let mut ttl = u32::MAX;
    let mut visited: Vec<Name> = Vec::new();
    loop {
        let data: Vec<RData> = message
            .answers
            .iter()
            .filter(|r| r.record_type() == question.qtype && r.name == current)
            .map(|r| {
                ttl = ttl.min(r.ttl);
                r.data.clone()
            })
            .collect();
        if !data.is_empty() {
            return Answer::Records {
                data,
                additionals: message.additionals.clone(),
                ttl,
            };
        }
        let alias = message.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(cname) if r.name == current && question.qtype != RecordType::CNAME => {
                Some((cname.0.clone(), r.ttl))
            }
            _ => None,
        });
        match alias {
            Some((target, link_ttl)) if visited.len() < MAX_CHAIN && !visited.contains(&target) => {
                ttl = ttl.min(link_ttl);
                visited.push(current);
                current = target;
            }
            // A loop, or a chain too long: nothing more this response can tell.
            Some(_) => return Answer::ServerError(ResponseCode::ServFail),
            None => break,
        }
    }
    let negative_ttl = negative_ttl(message);
    match rcode {
        ResponseCode::NXDomain => Answer::NxDomain { negative_ttl },
        _ if current != question.name && negative_ttl.is_none() => Answer::Alias {
            target: current,
            ttl,
        },
        _ => Answer::NoData { negative_ttl },
    }
}

/// RFC 2308 §5: "the TTL of this record is set from the minimum of the MINIMUM field of the SOA
/// record and the TTL of the SOA itself".
fn negative_ttl(message: &Message) -> Option<u32> {
    message.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::OpCode;
    use hickory_proto::rr::rdata::{A, CNAME, MX, SOA};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    fn mx_question() -> Question {
        Question::new(&name("example.com."), RecordType::MX)
    }

    fn message(rcode: ResponseCode, answers: Vec<Record>, soa_ttl: Option<u32>) -> Message {
        let mut message = Message::response(1, OpCode::Query);
        message.metadata.response_code = rcode;
        message.answers = answers;
        if let Some(ttl) = soa_ttl {
            let soa = SOA::new(
                name("ns.example."),
                name("hostmaster.example."),
                1,
                3600,
                600,
                86400,
                300,
            );
            message.add_authority(Record::from_rdata(
                name("example.com."),
                ttl,
                RData::SOA(soa),
            ));
        }
        message
    }

    fn mx(owner: &str, ttl: u32, pref: u16, exchange: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::MX(MX::new(pref, name(exchange))))
    }

    fn cname(owner: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
    }

    #[test]
    fn records_with_the_smallest_ttl() {
        let answer = interpret(
            &message(
                ResponseCode::NoError,
                vec![
                    mx("example.com.", 300, 10, "mx1.example.com."),
                    mx("example.com.", 200, 20, "mx2.example.com."),
                ],
                None,
            ),
            &mx_question(),
        );
        let Answer::Records { data, ttl, .. } = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(data.len(), 2);
        assert_eq!(ttl, 200);
    }

    #[test]
    fn a_cname_chain_in_the_answer_is_followed() {
        let answer = interpret(
            &message(
                ResponseCode::NoError,
                vec![
                    cname("example.com.", 60, "alias.example.net."),
                    cname("alias.example.net.", 3600, "mail.example.org."),
                    mx("mail.example.org.", 600, 10, "mx.example.org."),
                    mx("unrelated.example.", 600, 10, "mx.unrelated.example."),
                ],
                None,
            ),
            &mx_question(),
        );
        let Answer::Records { data, ttl, .. } = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(data.len(), 1);
        assert_eq!(ttl, 60);
    }

    #[test]
    fn a_chain_that_leaves_the_answer_is_an_alias_unless_an_soa_says_nodata() {
        let chain = vec![cname("example.com.", 120, "elsewhere.example.net.")];
        assert_eq!(
            interpret(
                &message(ResponseCode::NoError, chain.clone(), None),
                &mx_question()
            ),
            Answer::Alias {
                target: name("elsewhere.example.net."),
                ttl: 120
            }
        );
        assert_eq!(
            interpret(
                &message(ResponseCode::NoError, chain.clone(), Some(900)),
                &mx_question()
            ),
            Answer::NoData {
                negative_ttl: Some(300)
            }
        );
        assert_eq!(
            interpret(
                &message(ResponseCode::NXDomain, chain, Some(60)),
                &mx_question()
            ),
            Answer::NxDomain {
                negative_ttl: Some(60)
            }
        );
    }

    #[test]
    fn cname_loops_and_long_chains_end() {
        let looped = vec![
            cname("example.com.", 60, "b.example."),
            cname("b.example.", 60, "example.com."),
        ];
        assert_eq!(
            interpret(
                &message(ResponseCode::NoError, looped, None),
                &mx_question()
            ),
            Answer::ServerError(ResponseCode::ServFail)
        );
        let mut long = vec![cname("example.com.", 60, "c0.example.")];
        for i in 0..20 {
            long.push(cname(
                &format!("c{i}.example."),
                60,
                &format!("c{}.example.", i + 1),
            ));
        }
        assert_eq!(
            interpret(&message(ResponseCode::NoError, long, None), &mx_question()),
            Answer::ServerError(ResponseCode::ServFail)
        );
    }

    #[test]
    fn negative_answers_take_the_soa_minimum() {
        assert_eq!(
            interpret(
                &message(ResponseCode::NXDomain, vec![], Some(3600)),
                &mx_question()
            ),
            Answer::NxDomain {
                negative_ttl: Some(300)
            }
        );
        assert_eq!(
            interpret(
                &message(ResponseCode::NoError, vec![], Some(100)),
                &mx_question()
            ),
            Answer::NoData {
                negative_ttl: Some(100)
            }
        );
        assert_eq!(
            interpret(
                &message(ResponseCode::NoError, vec![], None),
                &mx_question()
            ),
            Answer::NoData { negative_ttl: None }
        );
    }

    #[test]
    fn records_of_another_type_are_not_an_answer() {
        let a = Record::from_rdata(name("example.com."), 60, RData::A(A(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            interpret(
                &message(ResponseCode::NoError, vec![a], Some(60)),
                &mx_question()
            ),
            Answer::NoData {
                negative_ttl: Some(60)
            }
        );
    }

    #[test]
    fn server_errors_pass_through() {
        for rcode in [
            ResponseCode::ServFail,
            ResponseCode::Refused,
            ResponseCode::NotImp,
            ResponseCode::FormErr,
        ] {
            assert_eq!(
                interpret(&message(rcode, vec![], None), &mx_question()),
                Answer::ServerError(rcode)
            );
        }
    }
}
