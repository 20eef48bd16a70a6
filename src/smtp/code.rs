//! Reply codes (RFC 5321 §4.2) and enhanced status codes (RFC 3463, RFC 2034) as values.
//!
//! Guarantees:
//! - A [`ReplyCode`] always satisfies the RFC 5321 grammar `%x32-35 %x30-35 %x30-39`: there is no
//!   way to build a `199` or a `600`.
//! - An [`EnhancedCode`] always satisfies the RFC 3463 grammar: class 2, 4 or 5, subject and
//!   detail of one to three digits (0–999).
//!
//! Codes are numbers, not strings: the verdict classifier matches on them without re-parsing.

use std::fmt;

/// A three-digit SMTP reply code.
///
/// ```text
/// Reply-code = %x32-35 %x30-35 %x30-39     ; RFC 5321 §4.2
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// `220 <domain> Service ready`: the greeting that lets a client speak.
    pub const SERVICE_READY: Self = Self(220);
    /// `221 <domain> Service closing transmission channel`: the answer to QUIT.
    pub const CLOSING: Self = Self(221);
    /// `250 Requested mail action okay, completed`.
    pub const OK: Self = Self(250);
    /// `421 <domain> Service not available, closing transmission channel`.
    pub const SERVICE_NOT_AVAILABLE: Self = Self(421);
    /// `550 Requested action not taken: mailbox unavailable`.
    pub const MAILBOX_UNAVAILABLE: Self = Self(550);

    /// Returns the code if it satisfies the RFC 5321 grammar, `None` otherwise.
    ///
    /// ```
    /// use mxprobe::smtp::ReplyCode;
    /// assert_eq!(ReplyCode::new(250).map(ReplyCode::get), Some(250));
    /// assert_eq!(ReplyCode::new(199), None); // first digit must be 2..=5
    /// assert_eq!(ReplyCode::new(260), None); // second digit must be 0..=5
    /// ```
    #[must_use]
    pub const fn new(code: u16) -> Option<Self> {
        let (first, second) = (code / 100, code / 10 % 10);
        if first >= 2 && first <= 5 && second <= 5 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// Builds a code from its three ASCII digits, as they appear on the wire.
    #[must_use]
    pub const fn from_digits(digits: [u8; 3]) -> Option<Self> {
        let [a, b, c] = digits;
        if matches!(a, b'2'..=b'5') && matches!(b, b'0'..=b'5') && c.is_ascii_digit() {
            Some(Self(
                (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16,
            ))
        } else {
            None
        }
    }

    /// The code as a number, e.g. `550`.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The class the first digit gives the reply.
    #[must_use]
    pub const fn class(self) -> ReplyClass {
        match self.0 / 100 {
            2 => ReplyClass::PositiveCompletion,
            3 => ReplyClass::PositiveIntermediate,
            4 => ReplyClass::TransientNegative,
            // The constructor admits only first digits 2..=5.
            _ => ReplyClass::PermanentNegative,
        }
    }

    /// The code's three ASCII digits, as written on the wire.
    #[must_use]
    pub const fn digits(self) -> [u8; 3] {
        [
            b'0' + (self.0 / 100) as u8,
            b'0' + (self.0 / 10 % 10) as u8,
            b'0' + (self.0 % 10) as u8,
        ]
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What the first digit of a reply code says (RFC 5321 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyClass {
    /// `2yz`: the command was accepted.
    PositiveCompletion,
    /// `3yz`: accepted, the server waits for more (354 after DATA, 334 during AUTH).
    PositiveIntermediate,
    /// `4yz`: not accepted now; the same command may succeed later (greylisting, load, quota).
    TransientNegative,
    /// `5yz`: not accepted, and repeating it unchanged will not help.
    PermanentNegative,
}

impl ReplyClass {
    /// True for `2yz` and `3yz`.
    #[must_use]
    pub const fn is_positive(self) -> bool {
        matches!(self, Self::PositiveCompletion | Self::PositiveIntermediate)
    }
}

/// The class digit of an enhanced status code (RFC 3463 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnhancedClass {
    /// `2.x.x`: success.
    Success = 2,
    /// `4.x.x`: persistent transient failure.
    PersistentTransientFailure = 4,
    /// `5.x.x`: permanent failure.
    PermanentFailure = 5,
}

impl EnhancedClass {
    const fn from_digit(digit: u16) -> Option<Self> {
        match digit {
            2 => Some(Self::Success),
            4 => Some(Self::PersistentTransientFailure),
            5 => Some(Self::PermanentFailure),
            _ => None,
        }
    }
}

/// An enhanced mail system status code, `class.subject.detail`.
///
/// ```text
/// status-code = class "." subject "." detail   ; RFC 3463 §2 (ABNF in RFC 2034 §4)
/// class       = "2" / "4" / "5"
/// subject     = 1*3digit
/// detail      = 1*3digit
/// ```
///
/// `5.1.1` is "bad destination mailbox address", `4.7.1` a transient policy refusal (often
/// greylisting), `5.7.1` a permanent policy refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnhancedCode {
    class: EnhancedClass,
    subject: u16,
    detail: u16,
}

impl EnhancedCode {
    /// Returns the code if class is 2, 4 or 5 and subject and detail are at most 999.
    ///
    /// ```
    /// use mxprobe::smtp::EnhancedCode;
    /// assert_eq!(EnhancedCode::new(5, 1, 1).unwrap().to_string(), "5.1.1");
    /// assert!(EnhancedCode::new(3, 1, 1).is_none());
    /// assert!(EnhancedCode::new(5, 1000, 1).is_none());
    /// ```
    #[must_use]
    pub const fn new(class: u16, subject: u16, detail: u16) -> Option<Self> {
        match EnhancedClass::from_digit(class) {
            Some(class) if subject <= 999 && detail <= 999 => Some(Self {
                class,
                subject,
                detail,
            }),
            _ => None,
        }
    }

    /// The class: success, transient or permanent failure.
    #[must_use]
    pub const fn class(self) -> EnhancedClass {
        self.class
    }

    /// The subject: 0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network and routing,
    /// 5 mail delivery protocol, 6 message content, 7 security or policy (RFC 3463 §3.1).
    #[must_use]
    pub const fn subject(self) -> u16 {
        self.subject
    }

    /// The detail within the subject, e.g. the final `1` of `5.1.1`.
    #[must_use]
    pub const fn detail(self) -> u16 {
        self.detail
    }

    /// True if this code's class is the one the reply code's first digit implies, as RFC 3463
    /// §2 requires ("the class sub-code … MUST match the first digit of the reply code").
    #[must_use]
    pub const fn agrees_with(self, code: ReplyCode) -> bool {
        self.class as u16 == code.get() / 100
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class as u16, self.subject, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_code_grammar_is_enforced_on_every_digit() {
        for code in 0..1000u16 {
            let (a, b) = (code / 100, code / 10 % 10);
            let valid = (2..=5).contains(&a) && b <= 5;
            assert_eq!(ReplyCode::new(code).is_some(), valid, "code {code}");
            let digits = [b'0' + a as u8, b'0' + b as u8, b'0' + (code % 10) as u8];
            assert_eq!(ReplyCode::from_digits(digits), ReplyCode::new(code));
            if let Some(parsed) = ReplyCode::new(code) {
                assert_eq!(parsed.digits(), digits);
                assert_eq!(parsed.to_string(), format!("{code:03}"));
            }
        }
        assert_eq!(ReplyCode::from_digits(*b"2a0"), None);
        assert_eq!(ReplyCode::from_digits(*b" 50"), None);
    }

    #[test]
    fn reply_class_follows_first_digit() {
        let class = |c| ReplyCode::new(c).map(ReplyCode::class);
        assert_eq!(class(250), Some(ReplyClass::PositiveCompletion));
        assert_eq!(class(354), Some(ReplyClass::PositiveIntermediate));
        assert_eq!(class(451), Some(ReplyClass::TransientNegative));
        assert_eq!(class(550), Some(ReplyClass::PermanentNegative));
        assert!(ReplyClass::PositiveIntermediate.is_positive());
        assert!(!ReplyClass::TransientNegative.is_positive());
    }

    #[test]
    fn enhanced_code_bounds_and_agreement() {
        assert!(EnhancedCode::new(2, 0, 0).is_some());
        assert!(EnhancedCode::new(4, 999, 999).is_some());
        assert!(EnhancedCode::new(1, 1, 1).is_none());
        assert!(EnhancedCode::new(5, 1, 1000).is_none());
        let e = EnhancedCode::new(5, 7, 26).expect("valid");
        assert_eq!(
            (e.class(), e.subject(), e.detail()),
            (EnhancedClass::PermanentFailure, 7, 26)
        );
        assert!(e.agrees_with(ReplyCode::MAILBOX_UNAVAILABLE));
        assert!(!e.agrees_with(ReplyCode::OK));
        assert_eq!(e.to_string(), "5.7.26");
    }
}
