//! Evaluating rules on the committed stream: for each rule and each signal it watches, ok →
//! pending (the condition holds) → firing (it held for `for_secs`, by the points' own times) →
//! resolved (a point where it no longer holds; for no-data rules, any point). Pure bookkeeping in
//! memory, fed points in commit order and ticked by the clock for silences; what it decides is a
//! `Change` the caller stores, which makes it idempotent across restarts and servers.

use super::rule::{Condition, RuleSpec};
use crate::server::store::Episode;
use foldhash::HashMap;

/// A rule as evaluated: its id and definition.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: i64,
    pub spec: RuleSpec,
}

/// Where one rule stands on one signal (absent: ok).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Status {
    /// The condition holds since `since`, not yet for long enough.
    Pending { since: i64, value: f64 },
    Firing {
        since: i64,
        fired: i64,
        value: Option<f64>,
    },
}

/// What the evaluator decided: an episode starts or ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Fire(Episode),
    Resolve {
        rule_id: i64,
        signal: String,
        /// When the episode's condition began to hold.
        since: i64,
        at: i64,
        value: Option<f64>,
    },
}

#[derive(Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    /// Everything known of each signal seen: one lookup per point, no allocation.
    signals: HashMap<String, Watched>,
}

/// What the evaluator keeps of one signal.
#[derive(Default)]
struct Watched {
    /// The newest point's time. A point older than it changes no state (a late point would
    /// otherwise reopen what newer points closed), and no-data rules measure from it.
    newest: i64,
    /// The indexes of the rules watching it, found once (`None`: not yet looked for).
    rules: Option<Vec<usize>>,
    /// Its non-ok states, by rule id.
    status: Vec<(i64, Status)>,
}

impl Watched {
    fn status(&self, rule: i64) -> Option<Status> {
        self.status
            .iter()
            .find(|(id, _)| *id == rule)
            .map(|(_, s)| *s)
    }

    fn set(&mut self, rule: i64, status: Option<Status>) {
        self.status.retain(|(id, _)| *id != rule);
        if let Some(status) = status {
            self.status.push((rule, status));
        }
    }
}

impl Evaluator {
    /// An evaluator of `rules`, resuming the firing `episodes`, knowing when each of `signals`
    /// last reported.
    pub fn new(rules: Vec<Rule>, episodes: Vec<Episode>, signals: Vec<(String, i64)>) -> Evaluator {
        let mut evaluator = Evaluator::default();
        evaluator.replace_rules(rules, episodes, signals);
        evaluator
    }

    /// New rules (after one was created, edited or deleted), the episodes still firing, and when
    /// each stored signal last reported: without rules the evaluator is handed no points, so a
    /// signal's newest point is learnt again here, or a no-data rule would measure a silence from
    /// a point long superseded.
    pub fn replace_rules(
        &mut self,
        rules: Vec<Rule>,
        episodes: Vec<Episode>,
        signals: Vec<(String, i64)>,
    ) {
        self.rules = rules;
        for (name, newest) in signals {
            let watched = self.signals.entry(name).or_default();
            watched.newest = watched.newest.max(newest);
        }
        // Pending states of rules that still exist carry over; an edit ended the rule's episodes.
        let ids: Vec<i64> = self.rules.iter().map(|r| r.id).collect();
        for watched in self.signals.values_mut() {
            watched.rules = None;
            watched
                .status
                .retain(|(rule, s)| ids.contains(rule) && matches!(s, Status::Pending { .. }));
        }
        for episode in episodes {
            let status = Status::Firing {
                since: episode.since_ms,
                fired: episode.fired_ms,
                value: episode.value,
            };
            let watched = self.signals.entry(episode.signal).or_default();
            watched.set(episode.rule_id, Some(status));
        }
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Every rule's non-ok states: (rule id, signal, status).
    pub fn states(&self) -> impl Iterator<Item = (i64, &str, Status)> {
        self.signals.iter().flat_map(|(signal, watched)| {
            watched
                .status
                .iter()
                .map(move |(rule, status)| (*rule, signal.as_str(), *status))
        })
    }

    /// A committed point of `signal`.
    pub fn observe(&mut self, signal: &str, t: i64, v: f64, changes: &mut Vec<Change>) {
        let watched = match self.signals.get_mut(signal) {
            Some(watched) => watched,
            None => self.signals.entry(signal.to_owned()).or_insert(Watched {
                newest: i64::MIN,
                ..Watched::default()
            }),
        };
        if t < watched.newest {
            return;
        }
        watched.newest = t;
        let rules = &self.rules;
        // Taken out while the states change, and put back: no copy.
        let watching = watched
            .rules
            .take()
            .unwrap_or_else(|| watching(rules, signal));
        for &i in watching.iter() {
            let rule = &rules[i];
            let now_holds = rule.spec.condition.holds(v);
            let hold_ms = rule.spec.for_secs as i64 * 1_000;
            let next = match (watched.status(rule.id), now_holds) {
                (None, true) => Some(Status::Pending { since: t, value: v }),
                (Some(Status::Pending { since, .. }), true) => {
                    Some(Status::Pending { since, value: v })
                }
                (Some(Status::Firing { since, fired, .. }), true) => Some(Status::Firing {
                    since,
                    fired,
                    value: Some(v),
                }),
                (Some(Status::Firing { since, .. }), false) => {
                    changes.push(Change::Resolve {
                        rule_id: rule.id,
                        signal: signal.to_owned(),
                        since,
                        at: t,
                        value: Some(v),
                    });
                    None
                }
                (_, false) => None,
            };
            let next = match next {
                Some(Status::Pending { since, value }) if t - since >= hold_ms => {
                    let episode = Episode {
                        rule_id: rule.id,
                        signal: signal.to_owned(),
                        since_ms: since,
                        fired_ms: t,
                        value: Some(value),
                    };
                    changes.push(Change::Fire(episode));
                    Some(Status::Firing {
                        since,
                        fired: t,
                        value: Some(value),
                    })
                }
                other => other,
            };
            watched.set(rule.id, next);
        }
        watched.rules = Some(watching);
    }

    /// The clock says `now`: no-data rules fire for the signals they watch that have been silent
    /// for their time. It holds the lock the writer's commits wait for: it goes through each
    /// signal's rules as found once, matching no pattern again.
    pub fn tick(&mut self, now: i64, changes: &mut Vec<Change>) {
        let no_data = |rule: &Rule| matches!(rule.spec.condition, Condition::NoData { .. });
        if !self.rules.iter().any(no_data) {
            return;
        }
        let rules = &self.rules;
        for (signal, watched) in &mut self.signals {
            let watching = watched
                .rules
                .take()
                .unwrap_or_else(|| watching(rules, signal));
            for &i in &watching {
                let rule = &rules[i];
                let Condition::NoData { secs } = rule.spec.condition else {
                    continue;
                };
                if now - watched.newest < secs as i64 * 1_000 || watched.status(rule.id).is_some() {
                    continue;
                }
                let since = watched.newest;
                let firing = Status::Firing {
                    since,
                    fired: now,
                    value: None,
                };
                watched.set(rule.id, Some(firing));
                changes.push(Change::Fire(Episode {
                    rule_id: rule.id,
                    signal: signal.clone(),
                    since_ms: since,
                    fired_ms: now,
                    value: None,
                }));
            }
            watched.rules = Some(watching);
        }
    }
}

/// The indexes of the rules that watch `signal`.
fn watching(rules: &[Rule], signal: &str) -> Vec<usize> {
    (0..rules.len())
        .filter(|&i| rules[i].spec.watches(signal))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, json: &str) -> Rule {
        Rule {
            id,
            spec: RuleSpec::parse(json).unwrap(),
        }
    }

    fn hot() -> Rule {
        rule(
            1,
            r#"{"name":"hot","signal":"boiler.*","condition":{"kind":"above","threshold":90},"for_secs":10}"#,
        )
    }

    fn feed(e: &mut Evaluator, signal: &str, points: &[(i64, f64)]) -> Vec<Change> {
        let mut changes = Vec::new();
        for &(t, v) in points {
            e.observe(signal, t, v, &mut changes);
        }
        changes
    }

    #[test]
    fn a_condition_held_long_enough_fires_once_and_resolves_once() {
        let mut e = Evaluator::new(vec![hot()], vec![], vec![]);
        // Above for 5 s, back down: never fires.
        assert!(feed(
            &mut e,
            "boiler.a",
            &[(0, 95.0), (5_000, 96.0), (6_000, 80.0)]
        )
        .is_empty());
        // Above from 10 s; at 20 s it has held for 10 s and fires, once.
        let changes = feed(
            &mut e,
            "boiler.a",
            &[
                (10_000, 91.0),
                (15_000, 92.0),
                (20_000, 93.0),
                (25_000, 94.0),
            ],
        );
        let fired: Vec<_> = changes
            .iter()
            .filter(|c| matches!(c, Change::Fire(_)))
            .collect();
        assert_eq!(fired.len(), 1);
        let Change::Fire(episode) = fired[0] else {
            unreachable!()
        };
        assert_eq!(
            (episode.since_ms, episode.fired_ms, episode.value),
            (10_000, 20_000, Some(93.0))
        );
        // A late point from before changes nothing; a point back below resolves.
        assert!(feed(&mut e, "boiler.a", &[(1_000, 20.0)]).is_empty());
        let resolved = feed(&mut e, "boiler.a", &[(30_000, 50.0)]);
        assert!(matches!(
            &resolved[..],
            [Change::Resolve { at: 30_000, .. }]
        ));
        // Other signals are not watched.
        assert!(feed(&mut e, "room.temp", &[(40_000, 99.0), (60_000, 99.0)]).is_empty());
    }

    #[test]
    fn a_restart_resumes_firing_episodes_without_firing_again() {
        let episode = Episode {
            rule_id: 1,
            signal: "boiler.a".into(),
            since_ms: 0,
            fired_ms: 10_000,
            value: Some(95.0),
        };
        let mut e = Evaluator::new(vec![hot()], vec![episode], vec![]);
        assert!(feed(&mut e, "boiler.a", &[(20_000, 97.0), (40_000, 98.0)]).is_empty());
        assert_eq!(feed(&mut e, "boiler.a", &[(50_000, 10.0)]).len(), 1);
    }

    #[test]
    fn silence_fires_a_no_data_rule_and_a_point_resolves_it() {
        let quiet = rule(
            2,
            r#"{"name":"quiet","signal":"pump","condition":{"kind":"no_data","secs":60}}"#,
        );
        let mut e = Evaluator::new(vec![quiet], vec![], vec![("pump".into(), 1_000)]);
        let mut changes = Vec::new();
        e.tick(60_000, &mut changes);
        assert!(changes.is_empty());
        e.tick(61_000, &mut changes);
        e.tick(62_000, &mut changes);
        assert!(matches!(
            &changes[..],
            [Change::Fire(Episode {
                since_ms: 1_000,
                fired_ms: 61_000,
                ..
            })]
        ));
        let resolved = feed(&mut e, "pump", &[(63_000, 1.0)]);
        assert!(matches!(&resolved[..], [Change::Resolve { .. }]));
    }
}
