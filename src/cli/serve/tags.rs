//! What an engine tag says: which real-time request, or which job's which line, a verdict
//! answers. The engine hands tags back untouched; this is the only place that packs them.
//!
//! ```text
//! bit 63      1: real-time — bits 0..63 are the request's serial number
//!             0: bulk — bits 40..63 are the job's slot, bits 0..40 its line
//! ```
//!
//! Slots are handed out while the process runs (a job gets one when its work starts); 2²³
//! of them and lines up to 2⁴⁰ are far beyond what one process meets.

/// The tag of a real-time request, or of a job's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A `POST /v1/verify`, by serial number.
    RealTime(u64),
    /// Line `line` of the job in slot `slot`.
    Line {
        /// The job's slot.
        slot: u32,
        /// The line, from 1.
        line: u64,
    },
}

const REAL_TIME: u64 = 1 << 63;
const LINE_BITS: u32 = 40;
/// The most slots and lines the packing holds.
pub const MAX_SLOT: u32 = (1 << 23) - 1;
/// The highest line number the packing holds.
pub const MAX_LINE: u64 = (1 << LINE_BITS) - 1;

impl Tag {
    /// The engine's tag. Slots and lines beyond [`MAX_SLOT`] and [`MAX_LINE`] are the
    /// caller's bug: they are checked where jobs and lines are made.
    pub fn pack(self) -> u64 {
        match self {
            Self::RealTime(serial) => REAL_TIME | (serial & !REAL_TIME),
            Self::Line { slot, line } => {
                debug_assert!(slot <= MAX_SLOT && line <= MAX_LINE);
                (u64::from(slot) << LINE_BITS) | (line & MAX_LINE)
            }
        }
    }

    /// What the engine's tag says.
    pub fn unpack(tag: u64) -> Self {
        if tag & REAL_TIME != 0 {
            Self::RealTime(tag & !REAL_TIME)
        } else {
            Self::Line {
                slot: u32::try_from(tag >> LINE_BITS).unwrap_or(u32::MAX),
                line: tag & MAX_LINE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_back_as_they_went() {
        for tag in [
            Tag::RealTime(0),
            Tag::RealTime(12345),
            Tag::RealTime(REAL_TIME - 1),
            Tag::Line { slot: 0, line: 1 },
            Tag::Line {
                slot: 7,
                line: 10_000_000,
            },
            Tag::Line {
                slot: MAX_SLOT,
                line: MAX_LINE,
            },
        ] {
            assert_eq!(Tag::unpack(tag.pack()), tag, "{tag:?}");
        }
        assert_ne!(
            Tag::RealTime(1).pack(),
            Tag::Line { slot: 0, line: 1 }.pack()
        );
    }
}
