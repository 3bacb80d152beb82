//! What a rule means (`model::RuleSpec`, shared with the dashboard): which signals it watches (a
//! name, or a pattern with `*`), when its condition holds, and its checks. `RuleSpec::parse` is the
//! only way in, from the API's JSON or the database's.

pub use crate::model::{Condition, RuleSpec};

/// Longest rule name, note and webhook URL, in characters.
const MAX_NAME: usize = 200;
const MAX_NOTE: usize = 2_000;
const MAX_URL: usize = 2_000;
/// Longest hold or silence a rule may ask for: a week.
const MAX_SECS: u64 = 7 * 24 * 3600;

impl Condition {
    /// Whether a point of value `v` meets the condition (never, for `NoData`: silence does).
    pub fn holds(&self, v: f64) -> bool {
        match *self {
            Condition::Above { threshold } => v > threshold,
            Condition::Below { threshold } => v < threshold,
            Condition::Outside { low, high } => v < low || v > high,
            Condition::NoData { .. } => false,
        }
    }
}

impl RuleSpec {
    /// A rule from JSON, checked: a named, bounded, finite rule, or what is wrong with it.
    pub fn parse(json: &str) -> Result<RuleSpec, String> {
        let spec: RuleSpec = serde_json::from_str(json).map_err(|e| format!("rule: {e}"))?;
        spec.check()?;
        Ok(spec)
    }

    /// Whether the rule is named, bounded and finite, or what is wrong with it.
    pub fn check(&self) -> Result<(), String> {
        let chars = |s: &str| s.chars().count();
        if self.name.trim().is_empty() || chars(&self.name) > MAX_NAME {
            return Err(format!("a rule needs a name of 1 to {MAX_NAME} characters"));
        }
        if self.signal.is_empty() || chars(&self.signal) > MAX_NAME {
            return Err(format!(
                "a rule needs a signal (or pattern) of 1 to {MAX_NAME} characters"
            ));
        }
        if self.note.as_deref().is_some_and(|n| chars(n) > MAX_NOTE) {
            return Err(format!("a note may be {MAX_NOTE} characters at most"));
        }
        if self.for_secs > MAX_SECS {
            return Err(format!("for_secs may be {MAX_SECS} at most (a week)"));
        }
        match self.condition {
            Condition::Above { threshold } | Condition::Below { threshold }
                if !threshold.is_finite() =>
            {
                return Err("the threshold must be a finite number".into());
            }
            Condition::Outside { low, high }
                if !(low.is_finite() && high.is_finite() && low < high) =>
            {
                return Err("a band needs finite low < high".into());
            }
            Condition::NoData { secs } if secs == 0 || secs > MAX_SECS => {
                return Err(format!("no_data needs secs from 1 to {MAX_SECS}"));
            }
            _ => {}
        }
        if let Some(url) = &self.webhook {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || chars(url) > MAX_URL || url.parse::<reqwest::Url>().is_err() {
                return Err(format!(
                    "the webhook must be an http(s) URL of at most {MAX_URL} characters"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::matches_pattern;

    #[test]
    fn patterns_match_with_stars_and_nothing_else_is_special() {
        assert!(matches_pattern("cpu", "cpu"));
        assert!(!matches_pattern("cpu", "cpu2"));
        assert!(matches_pattern("cpu.*", "cpu.total"));
        assert!(matches_pattern("*{host=a}", "load{host=a}"));
        assert!(matches_pattern("a*b*c", "a-b-b-c"));
        assert!(!matches_pattern("a*b*c", "a-c"));
        assert!(matches_pattern("*", ""));
        assert!(
            !matches_pattern("ab*ba", "aba"),
            "the parts may not overlap"
        );
        assert!(matches_pattern("x?[1]", "x?[1]"));
    }

    #[test]
    fn rules_are_checked_on_the_way_in() {
        let ok = r#"{"name":"hot","signal":"boiler.*","condition":{"kind":"above","threshold":90},"for_secs":30,"webhook":"http://127.0.0.1:9/hook"}"#;
        let rule = RuleSpec::parse(ok).unwrap();
        assert!(rule.watches("boiler.temp") && !rule.watches("room.temp"));
        assert!(rule.condition.holds(90.5) && !rule.condition.holds(90.0));
        for (bad, says) in [
            (
                r#"{"name":"","signal":"a","condition":{"kind":"above","threshold":1}}"#,
                "name",
            ),
            (
                r#"{"name":"x","signal":"a","condition":{"kind":"outside","low":5,"high":1}}"#,
                "band",
            ),
            (
                r#"{"name":"x","signal":"a","condition":{"kind":"no_data","secs":0}}"#,
                "no_data",
            ),
            (
                r#"{"name":"x","signal":"a","condition":{"kind":"above","threshold":1},"webhook":"file:///etc/passwd"}"#,
                "webhook",
            ),
            (
                r#"{"name":"x","signal":"a","condition":{"kind":"sideways"}}"#,
                "rule:",
            ),
            (
                r#"{"name":"x","signal":"a","condition":{"kind":"above","threshold":1},"colour":"red"}"#,
                "rule:",
            ),
        ] {
            let error = RuleSpec::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
