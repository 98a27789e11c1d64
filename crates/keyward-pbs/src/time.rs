//! The `created` and `modified` fields: RFC 3339 text. proxmox-backup-client writes the machine's
//! local time with a numeric offset (`+00:00`, never `Z`) and reads any RFC 3339 time. A time read
//! from a file is kept as its exact text, so a file written back carries it byte for byte.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::PbsError;

/// A timestamp as a PBS key file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbsTime(String);

impl PbsTime {
    /// Reads a time in the form proxmox-backup-client accepts: RFC 3339 to the second, with `T`
    /// between date and time and `Z` or `±HH:MM` (20 or 25 characters). Anything else could not
    /// be written back into a file the client reads.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, PbsError> {
        let bytes = text.as_bytes();
        let shaped = match bytes.len() {
            20 => bytes[19] == b'Z',
            25 => matches!(bytes[19], b'+' | b'-') && bytes[22] == b':',
            _ => false,
        } && bytes[10] == b'T';
        let invalid = |why: String| PbsError::BadField {
            field,
            problem: format!("is not a time like 2024-06-05T15:06:40+00:00 ({why})"),
        };
        if !shaped {
            return Err(invalid("wrong shape".into()));
        }
        OffsetDateTime::parse(text, &Rfc3339).map_err(|e| invalid(e.to_string()))?;
        Ok(PbsTime(text.to_string()))
    }

    /// Now, in the given offset from UTC (the machine's local offset, as PBS writes it).
    pub fn now(offset: UtcOffset) -> Self {
        let now = OffsetDateTime::now_utc().to_offset(offset);
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let layout = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
        );
        PbsTime(now.format(&layout).unwrap_or_default())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PbsTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clients_form_is_accepted() {
        for good in
            ["2024-06-05T15:06:40+00:00", "2024-06-05T15:06:40Z", "2024-06-05T17:06:40-02:00"]
        {
            assert!(PbsTime::parse("created", good).is_ok(), "{good}");
        }
        for bad in
            ["2024-06-05 15:06:40+00:00", "2024-06-05T15:06:40.5+00:00", "2024-06-05T15:06:40", ""]
        {
            assert!(PbsTime::parse("created", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn now_is_written_with_a_numeric_offset() {
        let utc = PbsTime::now(UtcOffset::UTC);
        assert!(utc.as_str().ends_with("+00:00"), "{utc}");
        assert!(PbsTime::parse("created", utc.as_str()).is_ok());
        let east = PbsTime::now(UtcOffset::from_hms(2, 0, 0).expect("offset"));
        assert!(east.as_str().ends_with("+02:00"), "{east}");
    }
}
