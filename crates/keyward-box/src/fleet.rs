//! The fleet at a glance: every box a hub knows, with its escrow, its header backups and its
//! last drill, judged — broken (a path its last drill found broken), stale (its newest proof
//! older than the threshold, or none), or healthy. `keyward operator fleet` prints it; the
//! dashboard shows the same query.

use keyward_hub::api::FleetBox;
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

/// The fleet, broken boxes first, then stale ones, then healthy ones (by name within each).
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// The boxes.
    pub boxes: Vec<JudgedBox>,
    /// Whether the hub had more boxes than one answer holds.
    pub truncated: bool,
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
