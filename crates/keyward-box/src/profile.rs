//! The operator's configuration, `$XDG_CONFIG_HOME/keyward/config.toml`
//! (`~/.config/keyward/config.toml`): named profiles, each the hubs of a fleet with their
//! certificate pins, the operator's key file and the peers' cards, so operator commands stop
//! repeating `--hub --hub-fingerprint --key`. A profile is chosen by `--profile NAME`, else
//! `KEYWARD_PROFILE`, else the file's `default_profile`; options on the command line override
//! what it says. The file holds no secret (the operator key is named by its path), carries
//! `format` and `version` like every keyward file, and is refused whole, with the reason, when
//! anything in it is unknown (docs/formats/config.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keyward_service::addresses::HubAddress;
use serde::Deserialize;

use crate::error::{BoxError, BoxResult};

/// The `format` field.
pub const FORMAT: &str = "keyward-config";
/// The one version this build reads.
pub const VERSION: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// `keyward-config`.
    pub format: String,
    /// 1.
    pub version: u32,
    /// The profile used when none is named.
    #[serde(default)]
    pub default_profile: Option<String>,
    /// The profiles, by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One fleet as an operator reaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The fleet's hubs, in the order to try them, each with its certificate's SHA-256.
    #[serde(default)]
    pub hubs: Vec<HubAddress>,
    /// The operator's secret key file (relative paths are from the config file's folder).
    #[serde(default)]
    pub operator_key: Option<PathBuf>,
    /// The peers' card files (relative paths are from the config file's folder).
    #[serde(default)]
    pub peers: Vec<PathBuf>,
}

/// The profile a command runs with, and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenProfile {
    /// Its name.
    pub name: String,
    /// The config file.
    pub file: PathBuf,
    /// What it says, its paths made absolute.
    pub profile: Profile,
}

/// Where the config file is: `$XDG_CONFIG_HOME/keyward/config.toml`, else under `$HOME/.config`;
/// `None` when neither is set.
pub fn default_path() -> Option<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(config.join("keyward").join("config.toml"))
}

/// Parses a config file's text (`path` names it in errors and anchors relative paths).
pub fn parse(text: &str, path: &Path) -> BoxResult<OperatorConfig> {
    let problem = |problem: String| BoxError::Config { path: path.to_path_buf(), problem };
    // The format and version first, so a newer file is refused by its version rather than by
    // a field this build does not know.
    #[derive(Deserialize)]
    struct Header {
        format: Option<String>,
        version: Option<u32>,
    }
    let header: Header =
        toml::from_str(text).map_err(|e| problem(format!("not TOML ({})", e.message())))?;
    match (header.format.as_deref(), header.version) {
        (Some(FORMAT), Some(VERSION)) => {}
        (Some(FORMAT), Some(v)) => {
            return Err(problem(format!(
                "version {v} of `{FORMAT}`, and this keyward reads version {VERSION}; upgrade keyward"
            )));
        }
        (Some(other), _) => {
            return Err(problem(format!("a `{other}` file, not the `{FORMAT}` file expected")));
        }
        _ => {
            return Err(problem(format!(
                "no `format = \"{FORMAT}\"` and `version = {VERSION}` at its top (docs/formats/config.md)"
            )));
        }
    }
    let mut config: OperatorConfig =
        toml::from_str(text).map_err(|e| problem(e.message().to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for profile in config.profiles.values_mut() {
        if let Some(key) = &mut profile.operator_key {
            *key = base.join(&*key);
        }
        for card in &mut profile.peers {
            *card = base.join(&*card);
        }
    }
    if let Some(name) = &config.default_profile
        && !config.profiles.contains_key(name)
    {
        return Err(problem(format!("default_profile `{name}` is not one of its profiles")));
    }
    Ok(config)
}

/// The profile named (`--profile`, else `KEYWARD_PROFILE`: `named`), else the file's default
/// one, from the config file at `path`. No name and no default: no profile. A name the file
/// does not have, or a file that cannot be read for it, is an error naming both.
pub fn choose(path: Option<&Path>, named: Option<&str>) -> BoxResult<Option<ChosenProfile>> {
    let Some(path) = path else {
        return match named {
            Some(name) => Err(BoxError::Invalid(format!(
                "profile `{name}` is named, and no config file can be found (neither XDG_CONFIG_HOME nor HOME is set)"
            ))),
            None => Ok(None),
        };
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && named.is_none() => return Ok(None),
        Err(e) => {
            return Err(keyward_core::Error::io(
                "cannot read the config file a profile is named from",
                path,
                e,
            )
            .into());
        }
    };
    let mut config = parse(&text, path)?;
    let Some(name) = named.map(str::to_string).or(config.default_profile.clone()) else {
        return Ok(None);
    };
    let Some(profile) = config.profiles.remove(&name) else {
        let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
        return Err(BoxError::Config {
            path: path.to_path_buf(),
            problem: format!(
                "no profile `{name}` (it has: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        });
    };
    Ok(Some(ChosenProfile { name, file: path.to_path_buf(), profile }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &str = r#"
format = "keyward-config"
version = 1
default_profile = "fleet"

[profiles.fleet]
operator_key = "op.key"
peers = ["cards/peer1.json", "/srv/peer2.json"]
hubs = [
  { url = "https://10.0.0.1:8443", fingerprint = "aa:bb" },
  { url = "https://10.0.0.2:8443", fingerprint = "cc:dd" },
]

[profiles.lab]
hubs = [{ url = "https://127.0.0.1:8443", fingerprint = "ee:ff" }]
"#;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn a_profile_is_chosen_by_name_else_by_default_and_its_paths_are_anchored() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(&dir, FLEET);
        let fleet = choose(Some(&path), None).expect("reads").expect("the default");
        assert_eq!(fleet.name, "fleet");
        assert_eq!(fleet.profile.hubs.len(), 2);
        assert_eq!(fleet.profile.hubs[1].url, "https://10.0.0.2:8443");
        assert_eq!(fleet.profile.operator_key, Some(dir.path().join("op.key")));
        assert_eq!(fleet.profile.peers[1], PathBuf::from("/srv/peer2.json"));
        let lab = choose(Some(&path), Some("lab")).expect("reads").expect("named");
        assert_eq!(lab.profile.operator_key, None);
        let e = choose(Some(&path), Some("prod")).expect_err("no such profile");
        assert!(e.to_string().contains("no profile `prod` (it has: fleet, lab)"), "{e}");
    }

    #[test]
    fn no_file_is_no_profile_unless_one_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("config.toml");
        assert_eq!(choose(Some(&missing), None).expect("fine"), None);
        assert!(choose(Some(&missing), Some("fleet")).is_err());
        assert!(choose(None, Some("fleet")).is_err());
    }

    #[test]
    fn another_version_an_unknown_field_or_a_dangling_default_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let newer =
            write(&dir, "format = \"keyward-config\"\nversion = 2\n[profiles.x]\nfuture = 1\n");
        let e = choose(Some(&newer), None).expect_err("version 2");
        assert!(e.to_string().contains("version 2") && e.to_string().contains("upgrade"), "{e}");
        let unknown =
            write(&dir, "format = \"keyward-config\"\nversion = 1\n[profiles.x]\nhub = \"h\"\n");
        let e = choose(Some(&unknown), Some("x")).expect_err("unknown field");
        assert!(e.to_string().contains("hub"), "{e}");
        let bare = write(&dir, "[profiles.x]\n");
        assert!(
            choose(Some(&bare), Some("x")).expect_err("no header").to_string().contains("format")
        );
        let dangling =
            write(&dir, "format = \"keyward-config\"\nversion = 1\ndefault_profile = \"y\"\n");
        assert!(choose(Some(&dangling), None).is_err());
        let not_toml = write(&dir, "this is = = not toml");
        assert!(choose(Some(&not_toml), None).expect_err("not toml").to_string().contains("TOML"));
    }
}
