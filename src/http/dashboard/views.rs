//! The dashboard's HTML (maud templates, escaped by default) and the body of its data
//! endpoint. The tables are rendered here only: the page embeds them, and the data
//! endpoint sends the same fragments for the page's script to swap in.

use super::assets::PREFIX;
use crate::service::dashboard::{
    space_type, CampaignIndex, Dashboard, BEST_ROWS, CHART_ROUNDS, LEADERS_PER_ROUND, PENDING_ROWS,
    RUN_ROWS,
};
use crate::store::training::HISTORY_LIMIT;
use crate::store::{CandidateRow, ROUND_FIGURES_LIMIT};
use maud::{html, Markup, DOCTYPE};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How often the dashboard asks for fresh figures.
pub const REFRESH_MS: u64 = 3000;

/// A whole page around `body`.
pub fn page(title: &str, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · flowlab" }
                // An icon of its own, so the browser does not ask for a missing /favicon.ico.
                link rel="icon" type="image/svg+xml" href={ (PREFIX) "favicon.svg" };
                link rel="stylesheet" href={ (PREFIX) "uPlot.min.css" };
                link rel="stylesheet" href={ (PREFIX) "dashboard.css" };
            }
            body {
                header.top { (header) }
                (body)
            }
        }
    }
}

/// The index: every campaign of the page with its counts.
pub fn index(index: &CampaignIndex) -> Markup {
    let header = html! { h1 { "flowlab campaigns" } span.crumbs { (index.total) " in all" } };
    let body = html! {
        main {
            @if index.campaigns.is_empty() && index.total == 0 {
                p.empty {
                    "No campaigns yet. Create one with " code { "POST /campaigns" }
                    ", then ask for a batch with " code { "POST /rounds" } "."
                }
            } @else if index.campaigns.is_empty() {
                p.empty { "No campaigns on this page. " a href="/" { "First page" } }
            } @else {
                div.panel.table-wrap {
                    table #campaigns .cards {
                        thead { tr {
                            th { "Campaign" } th { "Space" }
                            th.num { "Candidates" } th.num { "Labelled" } th.num { "Failed" }
                            th.num { "Pending" } th.num { "Best" } th { "Model" } th { "Last activity" }
                        } }
                        tbody {
                            @for s in &index.campaigns {
                                tr data-campaign-id=(s.campaign.id) {
                                    td.title { a href={ "/campaigns/" (s.campaign.id) "/dashboard" } { (s.campaign.spec.name) } }
                                    td data-label="Space" { (space_type(&s.campaign.spec.space)) }
                                    td.num.candidates data-label="Candidates" { (s.stats.candidates) }
                                    td.num.labelled data-label="Labelled" { (s.stats.labelled) }
                                    td.num.failed data-label="Failed" { (s.stats.failed) }
                                    td.num.pending data-label="Pending" { (s.stats.pending) }
                                    td.num.best data-label="Best" { (reward(s.best.as_ref().and_then(|b| b.mean_reward))) }
                                    td data-label="Model" { span class={ "status-" (s.model_status) } { (s.model_status) } " v" (s.model_version) }
                                    td data-label="Last activity" { (timestamp(s.last_activity.as_deref())) }
                                }
                            }
                        }
                    }
                }
            }
            @if index.pages > 1 {
                nav.pager {
                    @if index.page > 1 { a href={ "/?page=" (index.page - 1) } { "← newer" } }
                    span.muted { "page " (index.page) " of " (index.pages) }
                    @if index.page < index.pages { a href={ "/?page=" (index.page + 1) } { "older →" } }
                }
            }
        }
    };
    page("Campaigns", header, body)
}

/// The dashboard of one campaign: tables rendered now, charts drawn by the script.
pub fn dashboard(d: &Dashboard) -> Markup {
    let campaign = &d.overview.campaign;
    let id = campaign.id;
    let header = html! {
        span.crumbs { a href="/" { "All campaigns" } " /" }
        h1 { (campaign.spec.name) }
        span.muted { (space_type(&campaign.spec.space)) " space · "
            (if campaign.spec.reward.maximize { "maximising" } else { "minimising" }) " reward" }
        span #live .live { "live updates every " (REFRESH_MS / 1000) " s" }
    };
    let chart = |chart_id: &str| html! { div.panel { div.chart id=(chart_id) data-points="0" { p.empty { "Loading…" } } } };
    let body = html! {
        main #dashboard data-source={ "/campaigns/" (id) "/dashboard/data" } data-interval-ms=(REFRESH_MS) {
            div #tiles { (tiles(d)) }
            h2 { "Progress" }
            div.grid { (chart("chart-progress")) (chart("chart-failed")) (chart("chart-diversity")) }
            p.note { "Per round, over the candidates of that round and the rounds before it (the newest "
                (CHART_ROUNDS) " rounds). Top-" (LEADERS_PER_ROUND) " figures use fewer candidates while fewer are labelled; diversity is the mean pairwise distance in the space's own measure." }
            h2 { "Model" }
            div.grid {
                (chart("chart-prospective"))
                (chart("chart-proxy"))
                (chart("chart-runs"))
                div.panel { h3.note { "Training runs (newest " (RUN_ROWS) ")" } div #runs .table-wrap { (runs(d)) } }
            }
            p.note { "Predictions are the proxy's, stored when each round proposed its candidates, for the labelled ones of the newest "
                (ROUND_FIGURES_LIMIT) " rounds; training runs are the newest " (HISTORY_LIMIT) ", as " code { "GET /campaigns/" (id) "/model" } " lists them." }
            h2 { "Where candidates came from" }
            div.grid { (chart("chart-sources")) }
            h2 { "Best candidates" }
            div.panel {
                p.note { "The best " (BEST_ROWS) " by mean reward. All of them: "
                    a href={ "/campaigns/" (id) "/candidates?format=csv&order=reward" } download { "CSV export" } }
                div #best .table-wrap { (best(d)) }
            }
            h2 { "Pending rounds" }
            div.panel { div #pending .table-wrap { (pending(d)) } }
        }
        script src={ (PREFIX) "uPlot.iife.min.js" } defer {}
        script src={ (PREFIX) "dashboard.js" } defer {}
    };
    page(&campaign.spec.name, header, body)
}

fn tiles(d: &Dashboard) -> Markup {
    let stats = &d.overview.stats;
    let model = &d.overview.model;
    let best = d.overview.best.as_ref().and_then(|(c, _)| c.mean_reward);
    let tile = |label: &str, class: &str, value: Markup| {
        html! {
            div.tile { div.label { (label) } div class={ "value " (class) } { (value) } }
        }
    };
    html! {
        div.tiles {
            (tile("Candidates", "candidates", html! { (stats.candidates) }))
            (tile("Labelled", "labelled", html! { (stats.labelled) }))
            (tile("Failed", "failed", html! { (stats.failed) }))
            (tile("Pending", "pending", html! { (stats.pending) }))
            (tile("Rounds", "rounds", html! { (stats.rounds) }))
            (tile("Best mean reward", "best", html! {
                span #best-value data-value=(best.map(|b| b.to_string()).unwrap_or_default()) { (reward(best)) }
            }))
            (tile("Model", "model", html! {
                span class={ "status-" (model.status) } { (model.status) } " v" (model.version)
            }))
            (tile("Trained on", "trained", html! { (model.trained_on_labels) " labels" }))
        }
        @if let Some(error) = &model.error { p.error { "Training failed: " (error) } }
    }
}

fn runs(d: &Dashboard) -> Markup {
    if d.runs.is_empty() {
        return html! { p.empty { "No training yet: post labels and the model trains in the background." } };
    }
    html! {
        table.cards {
            thead { tr { th.num { "Run" } th { "Status" } th.num { "Steps" } th.num { "Loss" }
                th.num { "Duration" } th.num { "Labels" } th.num { "Version" } th { "Started" } } }
            tbody { @for r in d.runs.iter().take(RUN_ROWS) {
                tr {
                    td.num.title { span.card-only { "Run " } (r.id) }
                    td data-label="Status" { span class={ "status-" (r.status) } { (r.status) }
                        @if let Some(e) = &r.error { br; span.note { (e) } } }
                    td.num data-label="Steps" { (r.steps) }
                    td.num data-label="Loss" { (reward(r.loss)) }
                    td.num data-label="Duration" { (duration(r.duration_seconds)) }
                    td.num data-label="Labels" { (r.labels) }
                    td.num data-label="Version" { (r.version.map(|v| v.to_string()).unwrap_or_else(|| "–".into())) }
                    td data-label="Started" { (timestamp(Some(&r.started_at))) }
                }
            } }
        }
    }
}

fn best(d: &Dashboard) -> Markup {
    if d.best.is_empty() {
        return html! { p.empty { "No rewards yet: post labels to see the best candidates." } };
    }
    html! {
        table {
            thead { tr { th.num { "#" } th { "Value" } th.num { "Mean reward" } th.num { "Observations" } th.num { "Round" } } }
            tbody { @for (rank, c) in d.best.iter().enumerate() { (best_row(rank + 1, c)) } }
        }
    }
}

fn best_row(rank: usize, c: &CandidateRow) -> Markup {
    html! {
        tr {
            td.num { (rank) }
            td.value title=(c.value) { (shortened(&c.value, 120)) }
            td.num { (reward(c.mean_reward)) }
            td.num { (c.n_success + c.n_failed)
                @if c.n_failed > 0 { span.note { " (" (c.n_failed) " failed)" } } }
            td.num { (c.round_number.map(|n| n.to_string()).unwrap_or_else(|| "imported".into())) }
        }
    }
}

fn pending(d: &Dashboard) -> Markup {
    if d.pending.is_empty() {
        return html! { p.empty { "Nothing pending: every proposed candidate has a label (or was abandoned)." } };
    }
    html! {
        table {
            thead { tr { th.num { "Round" } th.num { "Pending candidates" } th { "Created" } th.num { "Age" } } }
            tbody { @for p in &d.pending {
                tr { td.num { (p.number) } td.num { (p.pending) } td { (timestamp(Some(&p.created_at))) } td.num { (duration(p.age_seconds)) } }
            } }
        }
        @if d.pending.len() as i64 >= PENDING_ROWS { p.note { "The oldest " (PENDING_ROWS) " rounds with pending candidates." } }
    }
}

/// The page a missing campaign or a failure shows.
pub fn problem(title: &str, message: &str) -> Markup {
    let header = html! { span.crumbs { a href="/" { "All campaigns" } } h1 { (title) } };
    page(
        title,
        header,
        html! { main { p #problem { (message) } p { a href="/" { "Back to all campaigns" } } } },
    )
}

/// The sign-in form; `error` says why the last try was refused.
pub fn sign_in(next: &str, error: Option<&str>) -> Markup {
    let header = html! { h1 { "flowlab" } };
    let body = html! {
        main {
            form.signin.panel method="post" action="/signin" {
                h2 { "Sign in" }
                p.note { "This server needs its API token (" code { "FLOWLAB_API_TOKEN" } ") to show the dashboard." }
                @if let Some(error) = error { p.error #signin-error { (error) } }
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                input type="hidden" name="next" value=(next);
                button type="submit" { "Sign in" }
            }
        }
    };
    page("Sign in", header, body)
}

/// The body of `GET /campaigns/{id}/dashboard/data`: the charts' series and the tables.
#[derive(Debug, Serialize)]
pub struct DashboardData {
    pub campaign_id: i64,
    /// The best mean reward, as `GET /campaigns/{id}` reports it.
    pub best: Option<f64>,
    pub series: Series,
    /// The model's training runs, oldest first.
    pub runs: RunSeries,
    /// The proxy's predictions against the measurements, by ascending prediction.
    pub proxy: ProxySeries,
    /// Fragments of HTML by the id of the element they replace.
    pub html: BTreeMap<&'static str, String>,
}

/// Per-round figures, one entry per round, oldest round first.
#[derive(Debug, Serialize)]
pub struct Series {
    pub round: Vec<i64>,
    pub best_so_far: Vec<Option<f64>>,
    pub top_mean: Vec<Option<f64>>,
    pub top_diversity: Vec<Option<f64>>,
    pub failed_fraction: Vec<Option<f64>>,
    pub spearman: Vec<Option<f64>>,
    pub coverage_1sigma: Vec<Option<f64>>,
    /// Candidates proposed per round, by source.
    pub sources: BTreeMap<String, Vec<i64>>,
}

/// One entry per training run, oldest first.
#[derive(Debug, Serialize)]
pub struct RunSeries {
    pub id: Vec<i64>,
    /// Null for a run that has not succeeded.
    pub loss: Vec<Option<f64>>,
}

/// One entry per labelled candidate with a stored prediction.
#[derive(Debug, Serialize)]
pub struct ProxySeries {
    pub predicted: Vec<f64>,
    pub measured: Vec<f64>,
}

impl DashboardData {
    pub fn new(d: &Dashboard) -> Self {
        let rounds = &d.rounds;
        let pick = |f: fn(&crate::service::dashboard::RoundPoint) -> Option<f64>| {
            rounds.iter().map(f).collect::<Vec<_>>()
        };
        let names: BTreeSet<&String> = rounds.iter().flat_map(|r| r.sources.keys()).collect();
        let sources = names
            .into_iter()
            .map(|name| {
                let counts = rounds
                    .iter()
                    .map(|r| r.sources.get(name).copied().unwrap_or(0))
                    .collect();
                (name.clone(), counts)
            })
            .collect();
        let html = BTreeMap::from([
            ("tiles", tiles(d).into_string()),
            ("runs", runs(d).into_string()),
            ("best", best(d).into_string()),
            ("pending", pending(d).into_string()),
        ]);
        Self {
            campaign_id: d.overview.campaign.id,
            best: d.overview.best.as_ref().and_then(|(c, _)| c.mean_reward),
            series: Series {
                round: rounds.iter().map(|r| r.number).collect(),
                best_so_far: pick(|r| r.best_so_far),
                top_mean: pick(|r| r.top_mean),
                top_diversity: pick(|r| r.top_diversity),
                failed_fraction: pick(|r| r.failed_fraction),
                spearman: pick(|r| r.prospective.spearman),
                coverage_1sigma: pick(|r| r.prospective.coverage_1sigma),
                sources,
            },
            runs: RunSeries {
                id: d.runs.iter().rev().map(|r| r.id).collect(),
                loss: d.runs.iter().rev().map(|r| r.loss).collect(),
            },
            proxy: ProxySeries {
                predicted: d.proxy.iter().map(|p| p.predicted).collect(),
                measured: d.proxy.iter().map(|p| p.measured).collect(),
            },
            html,
        }
    }
}

/// A reward or loss for reading: four decimals, or scientific notation far from 1.
fn reward(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// A duration in the largest unit that keeps it short.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86400.0)
    }
}

/// An RFC 3339 UTC timestamp to the minute.
fn timestamp(at: Option<&str>) -> String {
    match at {
        Some(at) => match at.get(..16) {
            Some(minute) => format!("{} UTC", minute.replacen('T', " ", 1)),
            None => at.to_string(),
        },
        None => "–".into(),
    }
}

fn shortened(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max_chars).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(reward(Some(1.23456)), "1.2346");
        assert_eq!(reward(Some(0.0)), "0.0000");
        assert_eq!(reward(Some(1e-6)), "1.000e-6");
        assert_eq!(reward(None), "–");
        assert_eq!(duration(2.25), "2.2 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(
            timestamp(Some("2026-01-02T03:04:05.678Z")),
            "2026-01-02 03:04 UTC"
        );
        assert_eq!(shortened("abcdef", 3), "abc…");
    }
}
