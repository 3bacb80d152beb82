//! The Influx line protocol, as Telegraf and the InfluxDB client libraries send it:
//!
//! ```text
//! measurement[,tag=value…] field=value[,field=value…] [timestamp]
//! ```
//!
//! Each field becomes a signal named `measurement.field`, or `measurement.field{k1=v1,k2=v2}` with the tags
//! sorted by key, so the same series always gets the same name. Floats, integers (`1i`, `1u`) and booleans
//! are stored as numbers. String fields carry nothing a chart can draw: they are skipped and counted
//! (Telegraf's `system` input writes one beside its numbers in every batch). One bad line refuses the
//! whole body, naming the line.

use crate::config::Limits;
use crate::model::{HOUR, MINUTE};
use crate::server::domain::{DataPoint, SignalName, Timestamp, Value};
use foldhash::HashMap;
use std::borrow::Cow;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

/// The unit of the timestamps in a body (`?precision=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// Accepts the v2 spellings (`ns`, `us`, `ms`, `s`) and the v1 ones (`n`, `u`, `ms`, `s`, `m`, `h`).
    pub fn parse(text: &str) -> Result<Precision, String> {
        Ok(match text {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µ" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            other => {
                return Err(format!(
                    "precision: unknown unit {other:?}, expected ns, us, ms or s"
                ))
            }
        })
    }

    fn to_millis(self, t: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(t.div_euclid(1_000_000)),
            Precision::Microseconds => Some(t.div_euclid(1_000)),
            Precision::Milliseconds => Some(t),
            Precision::Seconds => t.checked_mul(1_000),
            Precision::Minutes => t.checked_mul(MINUTE),
            Precision::Hours => t.checked_mul(HOUR),
        }
    }
}

/// A body's points, and how many string fields it skipped.
#[derive(Debug, Default)]
pub struct Parsed {
    pub points: Vec<DataPoint>,
    pub skipped_strings: usize,
}

/// Parses a whole body of at most `limits.max_samples` lines of at most `limits.max_signals` fields.
/// Lines without a timestamp get `now`; names and future timestamps follow the rules of `domain`, as
/// JSON does. Names are looked up in `known` first, and those built here are added to it.
pub fn parse(
    body: &str,
    precision: Precision,
    now: Timestamp,
    limits: &Limits,
    known: &NameCache,
) -> Result<Parsed, String> {
    let (max_lines, max_fields) = (limits.max_samples, limits.max_signals);
    let mut parsed = Parsed::default();
    let mut lines = 0;
    let mut names = Names {
        known: known.read(),
        built: HashMap::default(),
        key: String::new(),
    };
    for (index, line) in body.lines().enumerate() {
        if index == max_lines {
            return Err(format!(
                "more than {max_lines} lines, the limit per request is {max_lines}"
            ));
        }
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        lines += 1;
        parse_line(line, precision, now, max_fields, &mut names, &mut parsed)
            .map_err(|e| format!("line {}: {e}", index + 1))?;
    }
    if lines == 0 {
        return Err("body holds no lines of line protocol".into());
    }
    let Names {
        known: held, built, ..
    } = names;
    drop(held);
    known.remember(built, limits.max_total_signals);
    Ok(parsed)
}

/// Signal names built from line protocol, kept between requests by the text of their series and
/// their field's key: a fleet names the same series in every scrape, and building and checking a
/// name was most of what a line cost. At most as many as the database may hold signals
/// (`max-total-signals`); past that it starts over, so it stays bounded whatever clients send.
#[derive(Default)]
pub struct NameCache(RwLock<HashMap<Box<str>, SignalName>>);

impl NameCache {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Box<str>, SignalName>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, built: HashMap<(&str, &str), SignalName>, most: usize) {
        if built.is_empty() {
            return;
        }
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if known.len() + built.len() > most {
            known.clear();
        }
        let mut key = String::new();
        for ((series, field), signal) in built.into_iter().take(most) {
            cache_key(&mut key, series, field);
            known.insert(key.as_str().into(), signal);
        }
    }
}

/// The key of a series' field in a `NameCache`: the two texts joined by a line break, which neither
/// can hold.
fn cache_key(key: &mut String, series: &str, field: &str) {
    key.clear();
    key.push_str(series);
    key.push('\n');
    key.push_str(field);
}

/// Where a body's lines find their signal names: those known from earlier requests, and those
/// built for this one, by the text of their series (measurement and tags) and field key.
struct Names<'a, 'c> {
    known: RwLockReadGuard<'c, HashMap<Box<str>, SignalName>>,
    built: HashMap<(&'a str, &'a str), SignalName>,
    /// Room to join a lookup's key in.
    key: String,
}

fn parse_line<'a>(
    line: &'a str,
    precision: Precision,
    now: Timestamp,
    max_fields: usize,
    names: &mut Names<'a, '_>,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let (series, rest) = split_unescaped(line, b' ', false);
    let Some(rest) = rest else {
        return Err("expected fields after the measurement".into());
    };
    let (fields, timestamp) = split_unescaped(rest.trim_start_matches(' '), b' ', true);

    let timestamp = match timestamp.map(str::trim).filter(|t| !t.is_empty()) {
        None => now,
        Some(text) => {
            let raw =
                parse_int(text).ok_or_else(|| format!("timestamp {text:?} is not an integer"))?;
            let ms = precision
                .to_millis(raw)
                .ok_or_else(|| format!("timestamp {text} overflows"))?;
            Timestamp::from_millis(ms)?.not_ahead_of(now)?
        }
    };

    let mut fields = split_all(fields, b',', true);
    let mut prefix = None;
    let mut count = 0;
    while let Some(field) = fields.next() {
        count += 1;
        if count > max_fields {
            return Err(format!(
                "{} fields, the limit per line is {max_fields}",
                count + fields.count()
            ));
        }
        let (key, raw) = key_value(field, "field")?;
        let value = field_value(raw).map_err(|e| format!("field {:?}: {e}", unescape(key)))?;
        let Some(value) = value else {
            parsed.skipped_strings += 1;
            continue;
        };
        cache_key(&mut names.key, series, key);
        let known = names.known.get(names.key.as_str());
        let signal = match known.or_else(|| names.built.get(&(series, key))) {
            Some(signal) => signal.clone(),
            None => {
                let (measurement, tags) = match &prefix {
                    Some(prefix) => prefix,
                    None => prefix.insert(series_parts(series)?),
                };
                let field_name = unescape(key);
                let mut name =
                    String::with_capacity(measurement.len() + field_name.len() + tags.len() + 1);
                name.push_str(measurement);
                name.push('.');
                name.push_str(&field_name);
                name.push_str(tags);
                let signal = SignalName::parse(&name)?;
                names.built.insert((series, key), signal.clone());
                signal
            }
        };
        parsed.points.push(DataPoint {
            signal,
            timestamp,
            value,
        });
    }
    Ok(())
}

/// The measurement of a series, and its tags as they end a signal name: `{k1=v1,k2=v2}`, sorted by
/// key, or nothing. Built straight into two strings: a fleet's request names a new series on
/// nearly every line.
fn series_parts(series: &str) -> Result<(String, String), String> {
    let mut parts = split_all(series, b',', false);
    let measurement = unescape(parts.next().unwrap_or_default()).into_owned();
    if measurement.is_empty() {
        return Err("the measurement name is empty".into());
    }
    let mut tags = parts
        .map(|tag| key_value(tag, "tag").map(|(k, v)| (unescape(k), unescape(v))))
        .collect::<Result<Vec<_>, _>>()?;
    tags.sort();
    let mut text = String::with_capacity(series.len() + 2);
    for (k, (key, value)) in tags.iter().enumerate() {
        text.push(if k == 0 { '{' } else { ',' });
        text.push_str(key);
        text.push('=');
        text.push_str(value);
    }
    if !tags.is_empty() {
        text.push('}');
    }
    Ok((measurement, text))
}

fn key_value<'a>(pair: &'a str, what: &str) -> Result<(&'a str, &'a str), String> {
    match split_unescaped(pair, b'=', false) {
        (key, Some(value)) if !key.is_empty() && !value.is_empty() => Ok((key, value)),
        _ => Err(format!("{what} {pair:?} is not key=value")),
    }
}

/// A field's value as a number, or `None` for a string.
fn field_value(raw: &str) -> Result<Option<Value>, String> {
    if let Some(quoted) = raw.strip_prefix('"') {
        return match quoted.strip_suffix('"') {
            Some(_) => Ok(None),
            None => Err("a string field is not closed by a double quote".into()),
        };
    }
    let number = match raw {
        "t" | "T" | "true" | "True" | "TRUE" => 1.0,
        "f" | "F" | "false" | "False" | "FALSE" => 0.0,
        _ => {
            if let Some(int) = raw.strip_suffix('i') {
                int.parse::<i64>()
                    .map_err(|_| format!("{raw:?} is not an integer"))? as f64
            } else if let Some(uint) = raw.strip_suffix('u') {
                uint.parse::<u64>()
                    .map_err(|_| format!("{raw:?} is not an unsigned integer"))?
                    as f64
            } else {
                // Rust's float syntax is wider than Influx's (it takes "inf" and "NaN"); the finiteness
                // check below refuses those.
                raw.parse::<f64>()
                    .map_err(|_| format!("{raw:?} is not a number"))?
            }
        }
    };
    Value::new(number).map(Some)
}

/// An integer, as `str::parse::<i64>` reads it, but eight digits at a time (SWAR, as simdjson does):
/// `parse` waits on a multiplication per digit, and a nanosecond timestamp has nineteen.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        digits => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        // Empty, or long enough to need leading zeros to fit: rare, left to the standard library.
        return text.parse().ok();
    }
    let mut n: u64 = 0;
    let mut chunks = digits.chunks_exact(8);
    for chunk in &mut chunks {
        let eight = u64::from_le_bytes(chunk.try_into().expect("chunks of eight"));
        n = n.checked_mul(100_000_000)? + eight_digits(eight)?;
    }
    for &digit in chunks.remainder() {
        let digit = digit.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    if negative {
        0i64.checked_sub_unsigned(n)
    } else {
        i64::try_from(n).ok()
    }
}

/// Eight ASCII digits (first digit in the lowest byte) as their value, or `None` if any is not a digit.
fn eight_digits(bytes: u64) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Each byte is 0x30..=0x39: its high nibble is 3, and adding 6 does not carry into it.
    let high = bytes & 0xF0F0_F0F0_F0F0_F0F0;
    let carried = (bytes.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4;
    if high | carried != 0x3333_3333_3333_3333 {
        return None;
    }
    // Pairs, then fours, then all eight: three multiplications instead of eight.
    let d = bytes - ZEROS;
    let pairs = d.wrapping_mul(10).wrapping_add(d >> 8);
    let low = (pairs & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let high = ((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    Some(low.wrapping_add(high) >> 32)
}

/// Splits at the first `delim` that is not backslash-escaped (nor, with `quotes`, inside a "string").
fn split_unescaped(s: &str, delim: u8, quotes: bool) -> (&str, Option<&str>) {
    let bytes = s.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < bytes.len() {
        // A tight search for the next byte that matters: in most parts, the delimiter itself.
        let found = bytes[i..]
            .iter()
            .position(|&b| b == delim || b == b'\\' || (quotes && b == b'"'));
        let Some(found) = found else { break };
        i += found;
        match bytes[i] {
            b'\\' => i += 1,
            b'"' if quotes => in_quotes = !in_quotes,
            _ if !in_quotes => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    (s, None)
}

/// Every part between unescaped `delim`s, as `split_unescaped` finds them.
fn split_all(s: &str, delim: u8, quotes: bool) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let (head, tail) = split_unescaped(rest?, delim, quotes);
        rest = tail;
        Some(head)
    })
}

/// Removes the backslash of `\,`, `\=`, `\ ` and `\\`; any other backslash is kept, as Influx does.
/// Borrows when there is nothing to remove, the common case.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if matches!(next, ',' | '=' | ' ' | '\\') {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_687_200_000;

    fn parse_ns(body: &str) -> Result<Vec<(String, i64, f64)>, String> {
        let now = Timestamp::from_millis(NOW).unwrap();
        parse(
            body,
            Precision::Nanoseconds,
            now,
            &Limits::default(),
            &NameCache::default(),
        )
        .map(|parsed| {
            parsed
                .points
                .into_iter()
                .map(|p| (p.signal.into_string(), p.timestamp.millis(), p.value.get()))
                .collect()
        })
    }

    #[test]
    fn names_are_kept_between_requests_and_bounded() {
        let now = Timestamp::from_millis(NOW).unwrap();
        let limits = Limits {
            max_total_signals: 4,
            ..Limits::default()
        };
        let cache = NameCache::default();
        let names = |body: &str| {
            let parsed = parse(body, Precision::Seconds, now, &limits, &cache).unwrap();
            parsed
                .points
                .into_iter()
                .map(|p| p.signal)
                .collect::<Vec<_>>()
        };
        let body = "m,b=2,a=1 x=1,y=2 1\nm,a=1,b=2 x=3 1";
        let first = names(body);
        let again = names(body);
        let text: Vec<&str> = again.iter().map(|n| n.as_str()).collect();
        assert_eq!(text, ["m.x{a=1,b=2}", "m.y{a=1,b=2}", "m.x{a=1,b=2}"]);
        // The second request's names are the first's, not built again.
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
        }
        assert_eq!(cache.read().len(), 3);
        // Past `max-total-signals` names it starts over.
        names("n a=1,b=2 1");
        assert_eq!(cache.read().len(), 2);
    }

    #[test]
    fn fields_become_signals_with_sorted_tags() {
        let points = parse_ns(
            "cpu,host=a,dc=eu usage=0.5,idle=99i,up=true 1795687200123000000\n\
             mem free=1u\n",
        )
        .unwrap();
        assert_eq!(
            points,
            [
                ("cpu.usage{dc=eu,host=a}".into(), NOW + 123, 0.5),
                ("cpu.idle{dc=eu,host=a}".into(), NOW + 123, 99.0),
                ("cpu.up{dc=eu,host=a}".into(), NOW + 123, 1.0),
                ("mem.free".into(), NOW, 1.0),
            ]
        );
    }

    #[test]
    fn escapes_comments_and_blank_lines() {
        let points =
            parse_ns("# a comment\n\n my\\ room,place=a\\,b temp\\=x=-1.5e1 1795687200000000000\n")
                .unwrap();
        assert_eq!(points, [("my room.temp=x{place=a,b}".into(), NOW, -15.0)]);
    }

    #[test]
    fn precisions() {
        let now = Timestamp::from_millis(NOW).unwrap();
        let at = |precision: &str, t: &str| {
            let p = Precision::parse(precision).unwrap();
            parse(
                &format!("m v=1 {t}"),
                p,
                now,
                &Limits::default(),
                &NameCache::default(),
            )
            .unwrap()
            .points[0]
                .timestamp
                .millis()
        };
        assert_eq!(at("ns", "1795687200000000000"), NOW);
        assert_eq!(at("us", "1795687200000000"), NOW);
        assert_eq!(at("ms", "1795687200000"), NOW);
        assert_eq!(at("s", "1795687200"), NOW);
        assert_eq!(at("h", "498802"), 498_802 * 3_600_000);
        assert!(Precision::parse("fortnights").is_err());
    }

    #[test]
    fn bad_lines_name_their_line_number() {
        for (body, needle) in [
            (
                "m v=1\nm v=\"text",
                "line 2: field \"v\": a string field is not closed",
            ),
            ("m", "line 1: expected fields"),
            ("m v", "line 1: field \"v\" is not key=value"),
            ("m v=abc", "line 1: field \"v\": \"abc\" is not a number"),
            ("m v=1.5i", "not an integer"),
            ("m v=NaN", "not a finite number"),
            ("m v=inf", "not a finite number"),
            ("m v=1 soon", "not an integer"),
            ("m v=1 99999999999999999999", "not an integer"),
            ("m v=1 9999999999999999999", "not an integer"),
            ("m v=1 -5000000", "out of range"),
            (",t=1 v=1", "measurement name is empty"),
            ("m,t v=1", "tag \"t\" is not key=value"),
            ("m v=1 1795687600000000000", "5 minutes ahead"),
            ("", "no lines"),
            ("# only a comment", "no lines"),
        ] {
            let error = parse_ns(body).unwrap_err();
            assert!(error.contains(needle), "{body:?}: {error}");
        }
    }

    #[test]
    fn limits_on_fields_per_line_and_lines_per_body() {
        let now = Timestamp::from_millis(NOW).unwrap();
        let limits = Limits {
            max_samples: 2,
            max_signals: 2,
            ..Limits::default()
        };
        let parse = |body| {
            parse(
                body,
                Precision::Seconds,
                now,
                &limits,
                &NameCache::default(),
            )
        };
        let error = parse("m a=1,b=2,c=3").unwrap_err();
        assert!(
            error.contains("3 fields, the limit per line is 2"),
            "{error}"
        );
        assert!(parse("m a=1\nm a=2\n").is_ok());
        let error = parse("m a=1\nm a=2\n# three").unwrap_err();
        assert_eq!(error, "more than 2 lines, the limit per request is 2");
    }

    #[test]
    fn string_fields_are_skipped_and_counted_even_holding_commas_and_spaces() {
        let now = Timestamp::from_millis(NOW).unwrap();
        let body = "system uptime_format=\"1 day, 2:03\",load1=0.5,n_users=2i\nsystem note=\"x\"";
        let parsed = parse(
            body,
            Precision::Nanoseconds,
            now,
            &Limits::default(),
            &NameCache::default(),
        )
        .unwrap();
        let names: Vec<&str> = parsed.points.iter().map(|p| p.signal.as_str()).collect();
        assert_eq!(names, ["system.load1", "system.n_users"]);
        assert_eq!(parsed.skipped_strings, 2);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn lineish() -> impl Strategy<Value = String> {
            let pieces = prop_oneof![
                Just("m"),
                Just(","),
                Just("="),
                Just(" "),
                Just("\\"),
                Just("\""),
                Just("\n"),
                Just("#"),
                Just("v"),
                Just("1i"),
                Just("1u"),
                Just("-1.5e3"),
                Just("t"),
                Just("FALSE"),
                Just("9223372036854775807"),
                Just("-9223372036854775808"),
                Just("1795687200000000000"),
                Just("é"),
                Just("\t"),
            ];
            prop::collection::vec(pieces, 0..40).prop_map(|p| p.concat())
        }

        proptest! {
            #[test]
            fn never_panics(body in lineish(), precision in prop_oneof![Just("ns"), Just("s"), Just("h")]) {
                let now = Timestamp::from_millis(NOW).unwrap();
                let precision = Precision::parse(precision).unwrap();
                if let Ok(parsed) = parse(&body, precision, now, &Limits::default(), &NameCache::default()) {
                    for p in parsed.points {
                        prop_assert!(p.value.get().is_finite());
                    }
                }
            }

            #[test]
            fn integers_read_as_the_standard_library_reads_them(
                text in "[+-]?[0-9]{0,21}[a ]?[0-9]{0,3}",
                n in any::<i64>(),
            ) {
                prop_assert_eq!(parse_int(&text), text.parse::<i64>().ok(), "{:?}", text);
                prop_assert_eq!(parse_int(&n.to_string()), Some(n));
            }

            #[test]
            fn arbitrary_text_never_panics(body in ".{0,200}") {
                let now = Timestamp::from_millis(NOW).unwrap();
                let _ = parse(&body, Precision::Milliseconds, now, &Limits::default(), &NameCache::default());
            }
        }
    }
}
