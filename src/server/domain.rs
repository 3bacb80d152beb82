//! Validated domain types. Raw input is turned into these at the edge (ingest, query parameters); past that
//! point nothing re-checks, because a `SignalName` or a `Timestamp` that exists is valid by construction.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use triomphe::HeaderSlice;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest accepted signal name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// How far ahead of the server's clock a sample may be stamped: beyond that it is a producer's clock bug.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
use crate::model::LAST_TIMESTAMP_MS;

/// A signal's name: 1 to 200 characters, none of them a control character or an invisible format
/// character (Unicode category Cf: bidirectional overrides, zero-width spaces and joiners), which
/// would let two different names look the same. Shared, not copied: a body names a few signals
/// thousands of times, and each point holds its name. Beside the text, one word a store may note
/// on the name (`store::ids`: the id it gave the name's series), so that a name kept between
/// requests, as line protocol's are, is looked up in the store once rather than at every point.
#[derive(Clone)]
pub struct SignalName(triomphe::Arc<HeaderSlice<AtomicU64, str>>);

impl SignalName {
    pub fn parse(raw: &str) -> Result<SignalName, String> {
        if raw.is_empty() {
            return Err("signal name must not be empty".into());
        }
        let chars = raw.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(format!(
                "signal name is {chars} characters long, the limit is {MAX_NAME_CHARS}"
            ));
        }
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(format!(
                "signal name {raw:?} contains the control character {:?}",
                c
            ));
        }
        // Every format character lies past ASCII: most names skip the table look-ups.
        let format = || {
            raw.chars()
                .find(|c| c.general_category() == GeneralCategory::Format)
        };
        if let Some(c) = (!raw.is_ascii()).then(format).flatten() {
            return Err(format!(
                "signal name {raw:?} contains the invisible format character U+{:04X}",
                u32::from(c)
            ));
        }
        let note = AtomicU64::new(0);
        Ok(SignalName(triomphe::Arc::from_header_and_str(note, raw)))
    }

    /// Parses `a,b,c`, the syntax of every `signals=` parameter (`model::split_signal_list`: a
    /// comma or backslash inside a name is escaped with a backslash).
    pub fn parse_list(list: &str) -> Result<Vec<SignalName>, String> {
        let names = crate::model::split_signal_list(list);
        SignalName::parse_all(names.iter().map(String::as_str))
    }

    /// Validates a list of names; the first invalid one is the error.
    pub fn parse_all<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<SignalName>, String> {
        names
            .into_iter()
            .map(|name| SignalName::parse(name).map_err(|e| format!("signals: {e}")))
            .collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0.slice
    }

    /// The store's note (see above): 0 until one is written.
    pub fn note(&self) -> &AtomicU64 {
        &self.0.header
    }

    pub fn into_string(self) -> String {
        self.as_str().to_owned()
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Names compare, order and hash as their text: the note is not part of what a name is.
impl PartialEq for SignalName {
    fn eq(&self, other: &SignalName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SignalName {}

impl PartialOrd for SignalName {
    fn partial_cmp(&self, other: &SignalName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SignalName {
    fn cmp(&self, other: &SignalName) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for SignalName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

// So that a map by name is looked up by text.
impl Borrow<str> for SignalName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignalName").field(&self.as_str()).finish()
    }
}

/// Milliseconds since the Unix epoch, between 1970 and the end of year 9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Result<Timestamp, String> {
        if (0..=LAST_TIMESTAMP_MS).contains(&ms) {
            Ok(Timestamp(ms))
        } else {
            Err(format!(
                "timestamp {ms} is out of range: epoch milliseconds must lie between 0 (1970) and {LAST_TIMESTAMP_MS} (year 9999)"
            ))
        }
    }

    /// Parses an RFC 3339 string (`2026-11-26T10:00:00.123Z`) or a string of epoch milliseconds.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let ms = text
                .parse::<i64>()
                .map_err(|_| format!("timestamp {text:?} overflows epoch milliseconds"))?;
            return Timestamp::from_millis(ms);
        }
        let parsed = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
            format!("timestamp {text:?} is neither RFC 3339 nor epoch milliseconds ({e})")
        })?;
        Timestamp::from_millis(parsed.timestamp_millis())
    }

    /// This timestamp, unless it lies more than `MAX_FUTURE_MS` ahead of `now`: the shared rule of
    /// every write path.
    pub fn not_ahead_of(self, now: Timestamp) -> Result<Timestamp, String> {
        if self.0 > now.0.saturating_add(MAX_FUTURE_MS) {
            return Err(format!(
                "timestamp {} is more than 5 minutes ahead of the server's clock ({})",
                self.0, now.0
            ));
        }
        Ok(self)
    }

    pub fn now() -> Timestamp {
        Timestamp(chrono::Utc::now().timestamp_millis())
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// The same instant shifted by `delta_ms`, clamped to the valid range.
    pub fn saturating_add(self, delta_ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(delta_ms).clamp(0, LAST_TIMESTAMP_MS))
    }
}

/// A finite `f64`: NaN and infinities have no place in a chart or an aggregate.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Value(f64);

impl Value {
    pub fn new(x: f64) -> Result<Value, String> {
        if x.is_finite() {
            Ok(Value(x))
        } else {
            Err(format!("value {x} is not a finite number"))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// One validated point, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPoint {
    pub signal: SignalName,
    pub timestamp: Timestamp,
    pub value: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(
            SignalName::parse("boiler.temp").unwrap().as_str(),
            "boiler.temp"
        );
        assert!(SignalName::parse("").unwrap_err().contains("empty"));
        assert!(SignalName::parse(&"x".repeat(200)).is_ok());
        assert!(SignalName::parse(&"x".repeat(201))
            .unwrap_err()
            .contains("201"));
        // The limit counts characters, not bytes.
        assert!(SignalName::parse(&"é".repeat(200)).is_ok());
        assert!(SignalName::parse("a\nb").unwrap_err().contains("control"));
        assert!(SignalName::parse("a\u{7f}b").is_err());
        assert!(SignalName::parse("température °C").is_ok());
        // Names that would look like another: a right-to-left override, a zero-width space, a BOM.
        for lying in ["temp\u{202e}C", "cpu\u{200b}", "\u{feff}cpu", "a\u{2066}b"] {
            let err = SignalName::parse(lying).unwrap_err();
            assert!(
                err.contains("invisible format character"),
                "{lying:?}: {err}"
            );
        }
    }

    #[test]
    fn rfc3339_timestamps() {
        let t = Timestamp::parse("2026-11-26T10:00:00.123Z").unwrap();
        assert_eq!(t.millis(), 1_795_687_200_123);
        let offset = Timestamp::parse("2026-11-26T11:00:00.123+01:00").unwrap();
        assert_eq!(offset, t);
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z").unwrap().millis(),
            0
        );
    }

    #[test]
    fn epoch_millisecond_timestamps() {
        assert_eq!(
            Timestamp::parse("1795687200123").unwrap().millis(),
            1_795_687_200_123
        );
        assert!(Timestamp::parse("-5").unwrap_err().contains("out of range"));
        assert!(Timestamp::parse("99999999999999999999")
            .unwrap_err()
            .contains("overflows"));
        assert!(Timestamp::from_millis(LAST_TIMESTAMP_MS + 1).is_err());
    }

    #[test]
    fn unparsable_timestamps() {
        for bad in [
            "",
            "yesterday",
            "2026-11-26",
            "2026-13-01T00:00:00Z",
            "12:00",
            "1.5e3",
        ] {
            let err = Timestamp::parse(bad).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad:?} gave {err}");
        }
    }

    #[test]
    fn values_must_be_finite() {
        assert_eq!(Value::new(71.5).unwrap().get(), 71.5);
        assert!(Value::new(f64::NAN).is_err());
        assert!(Value::new(f64::INFINITY).is_err());
        assert!(Value::new(f64::NEG_INFINITY).is_err());
    }
}
