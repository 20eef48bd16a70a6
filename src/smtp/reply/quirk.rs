//! The tolerated deviations from RFC 5321 (STYLE.md habit 6: every tolerated deviation has a
//! name). Each has a strict and a relaxed test in `tests.rs`.

/// A tolerated deviation from RFC 5321 seen in a reply.
///
/// Each is accepted because real servers send it and its meaning is unambiguous; each is recorded
/// so a transcript, a test or a statistic can tell a conforming server from a sloppy one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quirk {
    /// A line ended with LF alone instead of CRLF.
    BareLf,
    /// The text held bytes above 127 (RFC 5321 text is US-ASCII; localized servers send UTF-8
    /// or Latin-1).
    EightBitText,
    /// The text held a control byte other than HT: a stray CR, a NUL, an escape.
    ControlInText,
    /// The text began with an enhanced status code whose class disagrees with the reply code
    /// (`550 2.1.5 …`). RFC 3463 §2 forbids it; the reply code wins and the enhanced code is
    /// not reported.
    EnhancedClassMismatch,
}

impl Quirk {
    /// Every quirk, in declaration order.
    pub const ALL: [Self; 4] = [
        Self::BareLf,
        Self::EightBitText,
        Self::ControlInText,
        Self::EnhancedClassMismatch,
    ];

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// A stable snake_case name for logs and statistics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::BareLf => "bare_lf",
            Self::EightBitText => "eight_bit_text",
            Self::ControlInText => "control_in_text",
            Self::EnhancedClassMismatch => "enhanced_class_mismatch",
        }
    }
}

/// The set of [`Quirk`]s one reply showed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Quirks(u8);

impl Quirks {
    /// No quirk: the reply conformed to RFC 5321.
    pub const NONE: Self = Self(0);

    /// True if the reply showed `quirk`.
    #[must_use]
    pub const fn contains(self, quirk: Quirk) -> bool {
        self.0 & quirk.bit() != 0
    }

    /// True if the reply conformed.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The quirks present, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Quirk> {
        Quirk::ALL.into_iter().filter(move |q| self.contains(*q))
    }

    pub(super) fn insert(&mut self, quirk: Quirk) {
        self.0 |= quirk.bit();
    }

    pub(super) fn union(&mut self, other: Self) {
        self.0 |= other.0;
    }
}
