//! `unlock --to-keyring`: K loaded into the Linux kernel keyring, with a timeout, for consumers
//! that take keys from there. A `logon` key cannot be read back by user space at all (only the
//! kernel uses it: dm-crypt, fscrypt's legacy keys, CIFS); a `user` key can be read by whoever
//! may search the keyring, for tools that need that. The key's payload is K's raw bytes.

use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use keyutils::keytypes::{Logon, User, logon};
use keyutils::{Key, Keyring, SpecialKeyring};

use crate::exit::{CliError, CliResult, usage};

/// Longest timeout allowed (a key kept longer should live in a file, not in memory).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Which keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// `@u`: the user's keyring, shared by all of the user's processes.
    User,
    /// `@s`: this login session's keyring.
    Session,
    /// `@us`: the user's default session keyring.
    UserSession,
}

impl FromStr for Ring {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "@u" => Ok(Ring::User),
            "@s" => Ok(Ring::Session),
            "@us" => Ok(Ring::UserSession),
            _ => Err(format!("`{text}` is not a keyring keyward loads into (@u, @s or @us)")),
        }
    }
}

impl Ring {
    fn special(self) -> SpecialKeyring {
        match self {
            Ring::User => SpecialKeyring::User,
            Ring::Session => SpecialKeyring::Session,
            Ring::UserSession => SpecialKeyring::UserSession,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ring::User => "@u",
            Ring::Session => "@s",
            Ring::UserSession => "@us",
        }
    }
}

/// The kernel key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// Cannot be read back by user space (the default): only the kernel uses it.
    Logon,
    /// Can be read back (`keyctl pipe`) by processes allowed to search the keyring.
    User,
}

impl KeyKind {
    /// The kernel's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Logon => "logon",
            KeyKind::User => "user",
        }
    }
}

/// A timeout such as `120s`, `2m`, `1h` or `90` (seconds): at least 1 s, at most 24 h.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}` is not a timeout (such as 120s, 2m, 1h)")),
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{text}` is not a timeout (such as 120s, 2m, 1h)"))?;
    let timeout = Duration::from_secs(seconds);
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(format!("a keyring timeout is 1 s to 24 h, not {text}"));
    }
    Ok(timeout)
}

/// What was loaded, for the report.
#[derive(Debug)]
pub struct Loaded {
    /// The keyring.
    pub ring: &'static str,
    /// The key's full description.
    pub description: String,
}

/// Loads `key` into `ring` as a `kind` key called `description`, expiring after `timeout`. The
/// key is made in this process's own keyring (`@p`, gone when the process ends) and given its
/// timeout there, and only then linked where others find it: a process killed in between
/// leaves nothing behind, never K without an expiry. A key whose timeout cannot be set is
/// invalidated at once.
pub fn load(
    key: &[u8],
    ring: Ring,
    kind: KeyKind,
    description: &str,
    timeout: Duration,
) -> CliResult<Loaded> {
    let failed = |what: &'static str, source: keyutils::Error| CliError::Keyring {
        ring: ring.name(),
        what,
        source,
    };
    let mut keyring = Keyring::attach_or_create(ring.special()).map_err(|e| failed("reach", e))?;
    let mut staging = Keyring::attach_or_create(SpecialKeyring::Process)
        .map_err(|e| failed("reach this process's keyring for", e))?;
    let mut added: Key = match kind {
        KeyKind::User => staging.add_key::<User, _, _>(description, key),
        KeyKind::Logon => {
            let (subtype, name) = description.split_once(':').filter(|(s, n)| !s.is_empty() && !n.is_empty()).ok_or_else(|| {
                usage(format!(
                    "a logon key's description is SERVICE:NAME (such as fscrypt:… or keyward:…), not `{description}`"
                ))
            })?;
            let description = logon::Description {
                subtype: subtype.to_string().into(),
                description: name.to_string().into(),
            };
            staging.add_key::<Logon, _, _>(description, key)
        }
    }
    .map_err(|e| failed("add the key to", e))?;
    if let Err(e) = added.set_timeout(timeout) {
        let _ = added.invalidate();
        return Err(failed("set the key's timeout in", e));
    }
    if let Err(e) = keyring.link_key(&added) {
        let _ = added.invalidate();
        return Err(failed("link the key into", e));
    }
    // Best effort: the process keyring, and this link with it, goes when the process ends.
    let _ = staging.unlink_key(&added);
    Ok(Loaded { ring: ring.name(), description: description.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_written_and_are_bounded() {
        assert_eq!(parse_timeout("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["0", "0s", "25h", "2d", "s", "-1s", "1.5m", ""] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
