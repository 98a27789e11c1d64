//! The fleet at a glance: every box a hub knows, with its escrow, its header backups and its
//! last drill, judged — broken (a path its last drill found broken), stale (its newest proof
//! older than the threshold, or none), or healthy. `keyward operator fleet` prints it; the
//! dashboard shows the same query.

use keyward_hub::api::{EscrowVersion, FleetBox};
use keyward_hub::client::Hubs;
use keyward_service::SigningIdentity;
use serde::Serialize;

use crate::error::BoxResult;
use crate::runtime::block_on;

/// How a box stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Its last drill found a path broken.
    Broken,
    /// Its newest proof is older than the threshold, or it never reported a drill.
    Stale,
    /// Proven recently, nothing broken.
    Healthy,
}

impl Verdict {
    /// The word a listing leads with.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Broken => "BROKEN",
            Verdict::Stale => "stale",
            Verdict::Healthy => "ok",
        }
    }

    /// The verdict as one lower-case word (the page's class, the error's words).
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Broken => "broken",
            Verdict::Stale => "stale",
            Verdict::Healthy => "healthy",
        }
    }
}

/// A box and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct JudgedBox {
    /// How it stands.
    pub verdict: Verdict,
    /// Why, in a few words.
    pub why: String,
    /// Its newest proof's age in seconds, if it reported a drill.
    pub proof_age: Option<i64>,
    /// What the hub holds of it.
    #[serde(flatten)]
    pub facts: FleetBox,
}

/// What a listing that stopped before the hub's last box says of itself.
pub const TRUNCATED: &str =
    "the hub has more boxes than a listing reads; those past it are not judged";

/// The fleet, broken boxes first, then stale ones, then healthy ones (by name within each).
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// The boxes.
    pub boxes: Vec<JudgedBox>,
    /// Whether the hub had more boxes than a listing reads (`MAX_FLEET_PAGES` pages): the
    /// boxes past them are not judged, so the fleet is not called healthy.
    pub truncated: bool,
}

impl JudgedBox {
    /// Its active escrow version, if it has one.
    pub fn active(&self) -> Option<&EscrowVersion> {
        self.facts.versions.iter().rev().find(|v| v.state == "active")
    }

    /// Its escrow versions that wait for an operator's approval.
    pub fn pending(&self) -> impl Iterator<Item = &EscrowVersion> {
        self.facts.versions.iter().filter(|v| v.state == "pending")
    }

    /// The age at `now` of the oldest header backup the hub holds of it, if it holds any.
    pub fn oldest_header_age(&self, now: i64) -> Option<i64> {
        let oldest = self.facts.headers.iter().map(|h| h.pushed_at).min()?;
        Some(now.saturating_sub(oldest))
    }
}

impl Fleet {
    /// Whether every box is healthy.
    pub fn healthy(&self) -> bool {
        self.boxes.iter().all(|b| b.verdict == Verdict::Healthy)
    }
}

/// Judges one box at `now`: stale when its newest proof is older than `stale_after` seconds.
pub fn judge(facts: FleetBox, now: i64, stale_after: i64) -> JudgedBox {
    let newest = facts.drill.iter().map(|p| p.at).max();
    let proof_age = newest.map(|at| now.saturating_sub(at));
    let broken: Vec<&str> = facts
        .drill
        .iter()
        .filter(|p| p.path.state == "broken")
        .map(|p| p.path.name.as_str())
        .collect();
    let (verdict, why) = match (broken.as_slice(), proof_age) {
        ([], None) => (Verdict::Stale, "it never reported a drill".to_string()),
        ([], Some(age)) if age > stale_after => {
            (Verdict::Stale, format!("its last drill is {} old", age_text(age)))
        }
        ([], Some(age)) => {
            let unproven = facts.drill.iter().filter(|p| p.path.state == "not_proven").count();
            let also = match unproven {
                0 => String::new(),
                n => format!(" ({n} path(s) not proven)"),
            };
            (Verdict::Healthy, format!("nothing broken, last drill {} ago{also}", age_text(age)))
        }
        (broken, _) => (Verdict::Broken, format!("broken: {}", broken.join("; "))),
    };
    JudgedBox { verdict, why, proof_age, facts }
}

/// Asks the hubs for the fleet and judges each box.
pub fn query(
    hubs: &Hubs,
    operator: &SigningIdentity,
    now: i64,
    stale_after: i64,
) -> BoxResult<Fleet> {
    let answer = block_on(hubs.first_answer(async |hub| hub.fleet(operator).await))?;
    let mut boxes: Vec<JudgedBox> =
        answer.boxes.into_iter().map(|b| judge(b, now, stale_after)).collect();
    boxes.sort_by(|a, b| (a.verdict, &a.facts.box_name).cmp(&(b.verdict, &b.facts.box_name)));
    Ok(Fleet { boxes, truncated: answer.truncated })
}

/// An age in the largest whole unit: `45 s`, `12 min`, `5 h`, `3 d`.
pub fn age_text(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// Text that goes into the page: `<`, `>`, `&` and quotes escaped (everything shown came from
/// a hub).
fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The fleet as a read-only HTML page: broken boxes first, in red, then stale ones in amber,
/// then healthy ones; each with its escrow, header backups and drill, and the commands an
/// operator copies to act (the page itself changes nothing: no form, no script).
pub fn page(fleet: &Fleet, now: i64) -> String {
    let mut out = String::from(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>keyward fleet</title><style>",
        "body{font-family:sans-serif;margin:2em}section{border-left:8px solid #999;padding:.5em 1em;margin:1em 0}",
        "section.broken{border-color:#c00;background:#fee}section.stale{border-color:#d80;background:#fff4e0}",
        "section.healthy{border-color:#080}code{display:block;background:#eee;padding:.3em;margin:.2em 0}",
        "td{padding:0 1em 0 0}",
        "</style></head><body>\n<h1>keyward fleet</h1>\n"
    ));
    let counts = |v: Verdict| fleet.boxes.iter().filter(|b| b.verdict == v).count();
    out.push_str(&format!(
        "<p id=\"summary\">{} broken, {} stale, {} healthy{}</p>\n",
        counts(Verdict::Broken),
        counts(Verdict::Stale),
        counts(Verdict::Healthy),
        if fleet.truncated { format!(" ({TRUNCATED})") } else { String::new() }
    ));
    for judged in &fleet.boxes {
        let facts = &judged.facts;
        let name = html_text(&facts.box_name);
        let (class, label) = (judged.verdict.word(), judged.verdict.label());
        out.push_str(&format!(
            "<section class=\"{class}\" data-box=\"{name}\">\n<h2>{label}: {name}</h2>\n<p class=\"why\">{}</p>\n",
            html_text(&judged.why)
        ));
        out.push_str(&format!(
            "<p>Escrow: {}; header backups: {}</p>\n",
            judged
                .active()
                .map_or("no active version".into(), |v| format!("version {} active", v.version)),
            match judged.oldest_header_age(now) {
                Some(age) => format!("{}, the oldest {} old", facts.headers.len(), age_text(age)),
                None => "none".into(),
            }
        ));
        if !facts.drill.is_empty() {
            out.push_str("<table>\n");
            for path in &facts.drill {
                out.push_str(&format!(
                    "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{} ago</td></tr>\n",
                    html_text(&path.path.state),
                    html_text(&path.path.state),
                    html_text(&path.path.name),
                    html_text(&path.path.detail),
                    age_text(now.saturating_sub(path.at))
                ));
            }
            out.push_str("</table>\n");
        }
        for pending in judged.pending() {
            out.push_str(&format!(
                "<p>Version {} waits for approval; once the owner read you its SHA-256:</p><code>keyward operator approve-overwrite --box {name} --version {} --blob-sha256 {} --fingerprint {}</code>\n",
                pending.version,
                pending.version,
                html_text(pending.blob_sha256.as_deref().unwrap_or("HASH")),
                html_text(&pending.fingerprint)
            ));
        }
        out.push_str(&format!(
            "<p>To recover it on a fresh machine:</p><code>keyward operator approve-recovery --box {name} --out ticket.txt</code>\n</section>\n"
        ));
    }
    out.push_str("</body></html>\n");
    out
}
