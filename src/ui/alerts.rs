//! Alerting on the dashboard: firing rules at the top of the page, each chart's rules drawn over it
//! (thresholds as lines, firing spans shaded) with its annotations (a line, or a shaded span, the
//! text on hover), and a form beside each chart to create, edit, silence and delete its rules,
//! pre-filled from the chart. What is shown is `Board::alerts`, read every few seconds.

use crate::model::{AlertOverview, AlertRule, Condition, RuleSpec};
use crate::ui::board::Board;
use crate::ui::chart::clock_time;
use crate::ui::plot::Frame;
use leptos::prelude::*;

/// How often the dashboard reads the rules and the annotations in view (ms).
pub const REFRESH_MS: u32 = 2_000;

/// Reads the rules and the annotations in view into the board.
#[cfg(feature = "hydrate")]
pub async fn refresh(board: Board) {
    let (from, to) = board
        .view
        .with_untracked(|v| v.bounds(crate::ui::browser::now()));
    match crate::api::read_alerts(from, to).await {
        Ok(overview) => board.alerts.set(overview),
        Err(e) => leptos::logging::warn!("reading the alert rules failed: {e}"),
    }
}

/// Asks for a note and adds it as an annotation at `time` on `signals`' charts.
#[cfg(feature = "hydrate")]
pub fn annotate_at(board: Board, time: i64, signals: Vec<String>) {
    let asked = window().prompt_with_message(&format!("Annotation at {}:", clock_time(time)));
    let Some(text) = asked.ok().flatten().filter(|t| !t.trim().is_empty()) else {
        return;
    };
    leptos::task::spawn_local(async move {
        let annotation = crate::model::Annotation {
            id: 0,
            time,
            end: None,
            text,
            tags: Vec::new(),
            signals,
        };
        match crate::api::annotate(annotation).await {
            Ok(_) => refresh(board).await,
            Err(e) => leptos::logging::warn!("adding the annotation failed: {e}"),
        }
    });
}

/// The firing rules, at the top of the page.
#[component]
pub fn FiringBanner(board: Board) -> impl IntoView {
    let firing = move || {
        board.alerts.with(|o| {
            o.rules
                .iter()
                .flat_map(|rule| {
                    rule.states
                        .iter()
                        .filter(|s| s.state == "firing")
                        .map(move |s| (rule.id, rule.spec.name.clone(), s.clone()))
                })
                .collect::<Vec<_>>()
        })
    };
    view! {
        <Show when=move || !firing().is_empty()>
            <ul class="firing-banner" role="alert">
                {move || {
                    firing()
                        .into_iter()
                        .map(|(id, name, state)| {
                            let value = state.value.map(|v| format!(" = {v}")).unwrap_or_default();
                            let since = clock_time(state.since_ms);
                            view! {
                                <li data-rule=id data-signal=state.signal.clone()>
                                    <b>{name}</b>
                                    {format!(": {}{value} since {since}", state.signal)}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
        </Show>
    }
}

/// What a chart of `names` draws over its picture, placed by `frame`: its rules' thresholds, their
/// firing spans, and its annotations.
pub fn overlays(board: Board, names: &[String], frame: Frame) -> Vec<AnyView> {
    let (from, to) = frame.window;
    let height = frame.bottom - frame.top;
    let span = |start: i64, end: i64| {
        let left = frame.x(start);
        (left, (frame.x(end) - left).max(2.0))
    };
    board.alerts.with(|overview: &AlertOverview| {
        let mut drawn = Vec::new();
        for rule in overview.rules.iter().filter(|r| names.iter().any(|n| r.spec.watches(n))) {
            let title = format!("{}: {}", rule.spec.name, rule.spec.condition.describe());
            for level in levels(&rule.spec.condition) {
                let Some(y) = frame.y(level) else { continue };
                let (left, width) = span(from, to);
                drawn.push(view! {
                    <div class="threshold" data-rule=rule.id title=title.clone()
                        style:top=format!("{y}px") style:left=format!("{left}px") style:width=format!("{width}px")></div>
                }.into_any());
            }
            let firing = rule.states.iter().filter(|s| s.state == "firing" && names.contains(&s.signal));
            for state in firing {
                let (left, width) = span(state.since_ms, to);
                drawn.push(view! {
                    <div class="firing-span" data-rule=rule.id title=format!("{title}, firing since {}", clock_time(state.since_ms))
                        style:top=format!("{}px", frame.top) style:height=format!("{height}px")
                        style:left=format!("{left}px") style:width=format!("{width}px")></div>
                }.into_any());
            }
        }
        let shown = overview.annotations.iter().filter(|a| {
            (a.signals.is_empty() || a.signals.iter().any(|s| names.contains(s)))
                && a.time <= to
                && a.end.unwrap_or(a.time) >= from
        });
        for annotation in shown {
            let (left, width) = span(annotation.time, annotation.end.unwrap_or(annotation.time));
            drawn.push(view! {
                <div class="annotation" data-annotation=annotation.id class:span=annotation.end.is_some()
                    title=format!("{} — {}", clock_time(annotation.time), annotation.text)
                    style:top=format!("{}px", frame.top) style:height=format!("{height}px")
                    style:left=format!("{left}px") style:width=format!("{width}px")></div>
            }.into_any());
        }
        drawn
    })
}

/// The thresholds of the rules watching any of `names`: what their chart draws as lines.
pub fn levels_of(board: Board, names: &[String]) -> Vec<f64> {
    board.alerts.with(|o| {
        o.rules
            .iter()
            .filter(|r| names.iter().any(|n| r.spec.watches(n)))
            .flat_map(|r| levels(&r.spec.condition))
            .collect()
    })
}

/// The values a condition draws as lines.
fn levels(condition: &Condition) -> Vec<f64> {
    match *condition {
        Condition::Above { threshold } | Condition::Below { threshold } => vec![threshold],
        Condition::Outside { low, high } => vec![low, high],
        Condition::NoData { .. } => Vec::new(),
    }
}

/// The rules of one signal's chart, and a form to add or edit one: opened from the chart's header,
/// pre-filled with the signal and its last value.
#[component]
pub fn RuleForm(signal: String, board: Board) -> impl IntoView {
    let open = RwSignal::new(false);
    // The rule being edited (`None`: a new one), and the form's fields.
    let editing = RwSignal::new(None::<i64>);
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new("above".to_owned());
    // The threshold; for a band its low end (`high` the other), for a silence its seconds.
    let threshold = RwSignal::new(String::new());
    let high = RwSignal::new(String::new());
    let hold = RwSignal::new("0".to_owned());
    let webhook = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let last_value = {
        let signal = signal.clone();
        move || {
            board.series.with_untracked(|all| {
                all.iter()
                    .find(|h| h.name == signal)
                    .and_then(|h| h.last.get_untracked())
                    .map(|(_, v)| v)
            })
        }
    };
    let fill = {
        let signal = signal.clone();
        move |rule: Option<&AlertRule>| {
            problem.set(None);
            editing.set(rule.map(|r| r.id));
            match rule {
                Some(rule) => {
                    name.set(rule.spec.name.clone());
                    let (k, t, h) = match rule.spec.condition {
                        Condition::Above { threshold } => ("above", threshold, None),
                        Condition::Below { threshold } => ("below", threshold, None),
                        Condition::Outside { low, high } => ("outside", low, Some(high)),
                        Condition::NoData { secs } => ("no_data", secs as f64, None),
                    };
                    kind.set(k.into());
                    threshold.set(t.to_string());
                    high.set(h.map(|h| h.to_string()).unwrap_or_default());
                    hold.set(rule.spec.for_secs.to_string());
                    webhook.set(rule.spec.webhook.clone().unwrap_or_default());
                }
                None => {
                    name.set(format!("{signal} high"));
                    kind.set("above".into());
                    threshold.set(last_value().map(|v| v.to_string()).unwrap_or_default());
                    high.set(String::new());
                    hold.set("0".into());
                    webhook.set(String::new());
                }
            }
        }
    };
    let rules = {
        let signal = signal.clone();
        move || {
            board.alerts.with(|o| {
                o.rules
                    .iter()
                    .filter(|r| r.spec.watches(&signal))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        }
    };
    let spec = {
        let signal = signal.clone();
        move || -> Result<RuleSpec, String> {
            let number = |text: RwSignal<String>, what: &str| {
                let text = text.get_untracked();
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{what} must be a number"))
            };
            let for_secs: u64 = hold
                .get_untracked()
                .trim()
                .parse()
                .map_err(|_| "hold for: whole seconds".to_owned())?;
            let condition = match kind.get_untracked().as_str() {
                "below" => Condition::Below {
                    threshold: number(threshold, "the threshold")?,
                },
                "outside" => Condition::Outside {
                    low: number(threshold, "low")?,
                    high: number(high, "high")?,
                },
                "no_data" => Condition::NoData {
                    secs: threshold
                        .get_untracked()
                        .trim()
                        .parse()
                        .map_err(|_| "silent for: whole seconds".to_owned())?,
                },
                _ => Condition::Above {
                    threshold: number(threshold, "the threshold")?,
                },
            };
            let webhook = Some(webhook.get_untracked().trim().to_owned()).filter(|w| !w.is_empty());
            Ok(RuleSpec {
                name: name.get_untracked(),
                signal: signal.clone(),
                condition,
                for_secs,
                note: None,
                webhook,
                slack: false,
            })
        }
    };
    let act = move |action: Action| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let done = match action {
                Action::Save(id, spec) => crate::api::save_rule(id, spec).await.map(|_| ()),
                Action::Silence(id, until) => crate::api::silence_rule(id, until).await,
                Action::Delete(id) => crate::api::delete_rule(id).await,
            };
            match done {
                Ok(()) => {
                    problem.set(None);
                    editing.set(None);
                    refresh(board).await;
                }
                Err(e) => problem.set(Some(e.to_string())),
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = action;
    };
    let submit = {
        let spec = spec.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            match spec() {
                Ok(spec) => act(Action::Save(editing.get_untracked(), spec)),
                Err(e) => problem.set(Some(e)),
            }
        }
    };
    let toggle = {
        let fill = fill.clone();
        move |_| {
            if !open.get_untracked() {
                fill(None);
            }
            open.update(|o| *o = !*o);
        }
    };
    view! {
        <button type="button" class="rule-toggle" on:click=toggle title="Alert rules of this signal">
            {
                let rules = rules.clone();
                move || format!("Alerts ({})", rules().len())
            }
        </button>
        <Show when=move || open.get()>
            <div class="rules">
                <ul>
                    {
                        let rules = rules.clone();
                        let fill = fill.clone();
                        move || {
                            let fill = fill.clone();
                            rules()
                                .into_iter()
                                .map(|rule| {
                                    let id = rule.id;
                                    let silenced = rule.silenced_until_ms.is_some();
                                    let edit = {
                                        let fill = fill.clone();
                                        let rule = rule.clone();
                                        move |_| fill(Some(&rule))
                                    };
                                    view! {
                                        <li data-rule=id>
                                            <span>{format!("{}: {}", rule.spec.name, rule.spec.condition.describe())}</span>
                                            <button type="button" on:click=edit>"Edit"</button>
                                            <button type="button" on:click=move |_| {
                                                let until = (!silenced).then(|| board.now.get_untracked() + 3_600_000);
                                                act(Action::Silence(id, until))
                                            }>{if silenced { "Unsilence" } else { "Silence 1 h" }}</button>
                                            <button type="button" on:click=move |_| act(Action::Delete(id))>"Delete"</button>
                                        </li>
                                    }
                                })
                                .collect_view()
                        }
                    }
                </ul>
                <form class="rule-form" on:submit=submit.clone()>
                    <input aria-label="Rule name" prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
                    <select aria-label="Condition" prop:value=kind on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="above">"above"</option>
                        <option value="below">"below"</option>
                        <option value="outside">"outside"</option>
                        <option value="no_data">"no data for"</option>
                    </select>
                    <input
                        aria-label="Threshold"
                        inputmode="decimal"
                        placeholder=move || match kind.get().as_str() {
                            "outside" => "low",
                            "no_data" => "seconds",
                            _ => "threshold",
                        }
                        prop:value=threshold
                        on:input=move |ev| threshold.set(event_target_value(&ev))
                    />
                    <Show when=move || kind.get() == "outside">
                        <input aria-label="High" inputmode="decimal" placeholder="high" prop:value=high on:input=move |ev| high.set(event_target_value(&ev))/>
                    </Show>
                    <label>"for " <input aria-label="Hold for seconds" inputmode="numeric" size="4" prop:value=hold on:input=move |ev| hold.set(event_target_value(&ev))/> " s"</label>
                    <input aria-label="Webhook" type="url" placeholder="webhook URL (optional)" prop:value=webhook on:input=move |ev| webhook.set(event_target_value(&ev))/>
                    <button type="submit">{move || if editing.get().is_some() { "Save rule" } else { "Create rule" }}</button>
                </form>
                <p class="problem">{move || problem.get()}</p>
            </div>
        </Show>
    }
}

/// What a button of the rule form asks the server. (The server renders the form; only the browser
/// acts on it.)
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Action {
    Save(Option<i64>, RuleSpec),
    Silence(i64, Option<i64>),
    Delete(i64),
}
