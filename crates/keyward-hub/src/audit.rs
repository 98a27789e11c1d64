//! The hub's audit log: append-only and hash-chained. Each record's hash covers the previous
//! record's hash and all of its own fields, so editing, removing or reordering any record breaks
//! the chain at that record, and `verify_chain` names it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, from 1, no gaps.
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// What happened (`enroll`, `push`, `approve`, `ticket-used`, `refused`, …).
    pub event: String,
    /// The box concerned, if any.
    #[serde(rename = "box")]
    pub box_name: Option<String>,
    /// Non-secret detail (never a blob, code, key or token).
    pub detail: String,
    /// The previous record's hash (hex).
    pub prev_hash: String,
    /// This record's hash (hex).
    pub hash: String,
}

/// The hash of a record with these fields.
pub fn record_hash(
    prev_hash: &str,
    seq: u64,
    at: i64,
    event: &str,
    box_name: Option<&str>,
    detail: &str,
) -> String {
    // A JSON array is an unambiguous encoding of the fields (no separator can be forged).
    let fields =
        serde_json::json!(["keyward-audit-v1", prev_hash, seq, at, event, box_name, detail]);
    keyward_core::encoding::to_hex(&Sha256::digest(fields.to_string().as_bytes()))
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq}: {what}")]
pub struct AuditBreak {
    /// The first record that does not fit.
    pub seq: u64,
    /// What does not fit.
    pub what: &'static str,
}

/// Checks a whole log, in order.
pub fn verify_chain(records: &[AuditRecord]) -> Result<(), AuditBreak> {
    let mut prev = GENESIS.to_string();
    for (i, record) in records.iter().enumerate() {
        let expected_seq = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        if record.seq != expected_seq {
            return Err(AuditBreak {
                seq: record.seq,
                what: "out of sequence (a record was removed or moved)",
            });
        }
        if record.prev_hash != prev {
            return Err(AuditBreak {
                seq: record.seq,
                what: "does not follow the previous record",
            });
        }
        let hash = record_hash(
            &record.prev_hash,
            record.seq,
            record.at,
            &record.event,
            record.box_name.as_deref(),
            &record.detail,
        );
        if record.hash != hash {
            return Err(AuditBreak {
                seq: record.seq,
                what: "was edited (its hash does not match)",
            });
        }
        prev = record.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
            let detail = format!("event {seq}");
            let hash = record_hash(
                &prev,
                seq,
                100 + i64::try_from(seq).unwrap_or(0),
                "push",
                Some("b"),
                &detail,
            );
            out.push(AuditRecord {
                seq,
                at: 100 + i64::try_from(seq).unwrap_or(0),
                event: "push".into(),
                box_name: Some("b".into()),
                detail,
                prev_hash: prev,
                hash,
            });
        }
        out
    }

    #[test]
    fn edits_removals_and_swaps_are_named() {
        let good = chain(5);
        assert!(verify_chain(&good).is_ok());
        let mut edited = good.clone();
        edited[2].detail = "changed".into();
        assert_eq!(verify_chain(&edited).map_err(|b| b.seq), Err(3));
        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(verify_chain(&removed).map_err(|b| b.seq), Err(3));
        let mut swapped = good.clone();
        swapped.swap(1, 2);
        assert_eq!(verify_chain(&swapped).map_err(|b| b.seq), Err(3));
        let mut truncated_head = good.clone();
        truncated_head.remove(0);
        assert_eq!(verify_chain(&truncated_head).map_err(|b| b.seq), Err(2));
    }
}
