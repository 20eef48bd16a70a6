//! The in-memory DNS server: the loopback responder's answer logic ([`crate::sim::dns`]'s
//! `reply`) behind virtual sockets, with the per-query faults of the [`FaultPlan`].

use std::collections::BTreeMap;

use rand::rngs::StdRng;

use super::faults::{FaultPlan, chance};
use crate::sim::dns::{Misbehaviour, Reply, Transport, Zone, reply_as, whole_frame_length};

/// What the server does with one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Nothing.
    Silence,
    /// These bytes (a whole message; framed for TCP), after this much extra delay.
    Send(Vec<u8>, std::time::Duration),
}

/// The server: one zone, answering on every nameserver address of the world.
#[derive(Debug)]
pub(crate) struct DnsHost {
    zone: Zone,
    /// TCP streams by the client's socket id: the bytes received and not yet a whole frame.
    streams: BTreeMap<u64, Vec<u8>>,
}

impl DnsHost {
    pub(crate) fn new(zone: Zone) -> Self {
        Self {
            zone,
            streams: BTreeMap::new(),
        }
    }

    /// Answers one UDP datagram, faults included; `note` says which fault struck.
    pub(crate) fn udp(
        &self,
        packet: &[u8],
        faults: &FaultPlan,
        rng: &mut StdRng,
        note: &mut Option<&'static str>,
    ) -> Answer {
        let forced = if chance(rng, faults.dns_drop) {
            *note = Some("dropped");
            Some(Misbehaviour::Silent)
        } else if chance(rng, faults.dns_servfail) {
            *note = Some("SERVFAIL");
            Some(Misbehaviour::ServFail)
        } else if chance(rng, faults.dns_truncate) {
            *note = Some("truncated");
            Some(Misbehaviour::Truncate)
        } else {
            None
        };
        let mut out = Vec::new();
        match reply_as(&self.zone, packet, Transport::Udp, forced, &mut out) {
            Reply::NotAQuery | Reply::Silence => Answer::Silence,
            Reply::Send => Answer::Send(out, std::time::Duration::ZERO),
            Reply::SendAfter(delay) => Answer::Send(out, delay),
        }
    }

    /// Bytes on TCP stream `socket`: the framed answers to every whole query they complete.
    /// Over TCP only SERVFAIL strikes (a stream drops nothing).
    pub(crate) fn tcp(
        &mut self,
        socket: u64,
        bytes: &[u8],
        faults: &FaultPlan,
        rng: &mut StdRng,
    ) -> Vec<u8> {
        let buffer = self.streams.entry(socket).or_default();
        buffer.extend_from_slice(bytes);
        let mut answers = Vec::new();
        while let Some(length) = whole_frame_length(buffer) {
            let query: Vec<u8> = buffer.drain(..2 + length).skip(2).collect();
            let forced = chance(rng, faults.dns_servfail).then_some(Misbehaviour::ServFail);
            let mut out = Vec::new();
            if matches!(
                reply_as(&self.zone, &query, Transport::Tcp, forced, &mut out),
                Reply::Send | Reply::SendAfter(_)
            ) && let Ok(length) = u16::try_from(out.len())
            {
                answers.extend_from_slice(&length.to_be_bytes());
                answers.extend_from_slice(&out);
            }
        }
        answers
    }

    /// The client closed TCP stream `socket`.
    pub(crate) fn close(&mut self, socket: u64) {
        self.streams.remove(&socket);
    }
}
