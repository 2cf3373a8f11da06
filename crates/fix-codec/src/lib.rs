//! FIX 4.2 tag=value codec.
//!
//! - [`frame::check`] finds one whole message at the front of a receive buffer without copying
//!   it: BeginString, BodyLength and CheckSum are checked, and the maximum message size is
//!   enforced from the BodyLength before anything is buffered for the body.
//! - [`Parser::parse`] splits a framed message into fields: an array of (tag, value range)
//!   reused from message to message, plus a tag-indexed table, so no field allocates.
//! - [`Writer`] builds a message and computes BodyLength and CheckSum.
//! - [`Dictionary`] loads a data dictionary in QuickFIX's XML format (`fix-dictionaries/FIX42.xml`)
//!   and [`Dictionary::validate`] checks a parsed message against it, answering each fault with
//!   the SessionRejectReason(373) code it deserves.
//!
//! Nothing here does I/O or reads a clock; every function is total on arbitrary input.

pub mod decimal;
pub mod dict;
pub mod frame;
pub mod message;
pub mod time;
pub mod writer;

pub use dict::{Dictionary, DictionaryError, FieldType, ValidationOptions, Verdict};
pub use frame::{check as check_frame, Frame, Garble};
pub use message::{FieldRef, Message, ParseError, Parser};
pub use writer::Writer;

/// The field delimiter.
pub const SOH: u8 = 0x01;

/// SessionRejectReason(373) codes. FIX 4.2 defines 0..=11; the later ones (from FIX 4.3) name
/// faults that a 4.2 acceptor must still detect; they are reported in Text for a 4.2 peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SessionRejectReason {
    InvalidTagNumber = 0,
    RequiredTagMissing = 1,
    TagNotDefinedForMessageType = 2,
    UndefinedTag = 3,
    TagSpecifiedWithoutValue = 4,
    ValueIncorrect = 5,
    IncorrectDataFormat = 6,
    DecryptionProblem = 7,
    SignatureProblem = 8,
    CompIdProblem = 9,
    SendingTimeAccuracyProblem = 10,
    InvalidMsgType = 11,
    TagAppearsMoreThanOnce = 13,
    TagSpecifiedOutOfRequiredOrder = 14,
    IncorrectNumInGroupCount = 16,
}

impl SessionRejectReason {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether FIX 4.2 defines this code for SessionRejectReason(373).
    pub fn defined_in_fix42(self) -> bool {
        self.code() <= 11
    }

    /// Human-readable text for Text(58).
    pub fn text(self) -> &'static str {
        match self {
            Self::InvalidTagNumber => "Invalid tag number",
            Self::RequiredTagMissing => "Required tag missing",
            Self::TagNotDefinedForMessageType => "Tag not defined for this message type",
            Self::UndefinedTag => "Undefined tag",
            Self::TagSpecifiedWithoutValue => "Tag specified without a value",
            Self::ValueIncorrect => "Value is incorrect (out of range) for this tag",
            Self::IncorrectDataFormat => "Incorrect data format for value",
            Self::DecryptionProblem => "Decryption problem",
            Self::SignatureProblem => "Signature problem",
            Self::CompIdProblem => "CompID problem",
            Self::SendingTimeAccuracyProblem => "SendingTime accuracy problem",
            Self::InvalidMsgType => "Invalid MsgType",
            Self::TagAppearsMoreThanOnce => "Tag appears more than once",
            Self::TagSpecifiedOutOfRequiredOrder => "Tag specified out of required order",
            Self::IncorrectNumInGroupCount => "Incorrect NumInGroup count for repeating group",
        }
    }
}

/// A validation failure: the reason and the tag it concerns (RefTagID(371)), if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: SessionRejectReason,
    pub tag: Option<u32>,
}

/// Length fields followed by a data field whose value may contain SOH: (length tag, data tag).
/// These are every LENGTH/DATA pair of FIX 4.2.
pub const DATA_PAIRS: [(u32, u32); 13] = [
    (90, 91),
    (93, 89),
    (95, 96),
    (212, 213),
    (348, 349),
    (350, 351),
    (352, 353),
    (354, 355),
    (356, 357),
    (358, 359),
    (360, 361),
    (362, 363),
    (364, 365),
];

/// Parses an unsigned decimal integer of at most 18 digits (no sign, no padding rules).
#[inline]
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// Writes `n` in decimal into `out`; returns the number of bytes.
#[inline]
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    let mut tmp = [0_u8; 20];
    out.extend_from_slice(u64_digits(n, &mut tmp));
}

/// The decimal digits of `n`, written at the end of `buf` (for callers without a `Vec`).
#[inline]
pub fn u64_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The FIX checksum: the sum of the bytes modulo 256.
#[inline]
pub fn checksum(bytes: &[u8]) -> u8 {
    // Summed in u32 lanes (vectorised by the compiler); a message is far below 2^24 bytes.
    let mut sum = 0_u32;
    for chunk in bytes.chunks(1 << 16) {
        sum = sum.wrapping_add(chunk.iter().map(|&b| u32::from(b)).sum::<u32>());
    }
    (sum & 0xff) as u8
}
