//! The configuration files: what a box keeps beside its keybox (its hub enrollment, its
//! identity), and the hub's and a peer's in their data folders. None is secret except the
//! identity (a signing key, with a format of its own in keyward-service).
//!
//! Every file carries `format` and `version` (docs/formats/config.md); both are
//! checked when it is read, and a file of another version is refused by name rather than
//! misread. Writing is atomic and never over an existing file.

use std::path::{Path, PathBuf};

use keyward_core::store::{RealFs, write_secret_file};
use keyward_service::addresses::HubAddress;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{BoxError, BoxResult};

/// A configuration file's type: its format name, the one version this build reads and writes,
/// and what to say when it is missing (the command that makes it).
pub trait ConfigFile: Serialize + DeserializeOwned {
    /// The `format` field.
    const FORMAT: &'static str;
    /// The `version` field.
    const VERSION: u32;
    /// The error's action when the file cannot be read, naming the command that writes it.
    const MISSING: &'static str;

    /// Makes the fields of an older version of the file (`None`: one written before files
    /// carried their version) this version's; `false` for a version it cannot read.
    fn upgrade(_version: Option<u64>, _fields: &mut Map<String, Value>) -> bool {
        false
    }
}

/// What a box remembers about its hubs, beside its keybox: `<keybox>.hub.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The box's name at the hubs.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The hubs, each with its pinned certificate hash, in the order they are tried: several
    /// hubs of one fleet share one database, so any of them serves the box.
    pub hubs: Vec<HubAddress>,
}

impl ConfigFile for Enrollment {
    const FORMAT: &'static str = "keyward-hub-enrollment";
    const VERSION: u32 = 2;
    const MISSING: &'static str = "cannot read (enroll with `keyward escrow enroll` first)";

    /// Version 1 (and the unversioned file before it) named one hub: `hub` and
    /// `hub_fingerprint`.
    fn upgrade(version: Option<u64>, fields: &mut Map<String, Value>) -> bool {
        if version.is_some_and(|v| v != 1) {
            return false;
        }
        let (Some(url), Some(fingerprint)) =
            (fields.remove("hub"), fields.remove("hub_fingerprint"))
        else {
            return false;
        };
        fields
            .insert("hubs".into(), serde_json::json!([{ "url": url, "fingerprint": fingerprint }]));
        true
    }
}

impl Enrollment {
    /// The hub listed first (an enrollment lists at least one).
    pub fn first_hub(&self) -> &str {
        self.hubs.first().map_or("", |hub| hub.url.as_str())
    }
}

/// The hub's configuration, `hub.json` in its data folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Operators' public keys (`ed25519:…`): who may enroll boxes and approve restores.
    pub operators: Vec<String>,
    /// The SHA-256 of the hub's certificate, as clients pin it.
    pub certificate_fingerprint: String,
}

impl ConfigFile for HubConfig {
    const FORMAT: &'static str = "keyward-hub";
    const VERSION: u32 = 1;
    const MISSING: &'static str = "cannot read (run `keyward hub init` first)";
}

/// A peer's configuration, `peer.json` in its data folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Operators whose enrollment tokens and release tickets it accepts.
    pub operators: Vec<String>,
    /// Most share sets one owner may keep here.
    #[serde(default = "default_quota_sets")]
    pub quota_sets: u32,
    /// Most bytes of sealed shares one owner may keep here.
    #[serde(default = "default_quota_bytes")]
    pub quota_bytes: u64,
}

fn default_quota_sets() -> u32 {
    keyward_peer::store::Quota::default().sets
}

fn default_quota_bytes() -> u64 {
    keyward_peer::store::Quota::default().bytes
}

impl ConfigFile for PeerConfig {
    const FORMAT: &'static str = "keyward-peer";
    const VERSION: u32 = 1;
    const MISSING: &'static str = "cannot read (run `keyward peer init` first)";
}

/// The LUKS2 volumes a keybox's key opens through keyward's keyslot, as `keyward luks`
/// commands last saw them: `<keybox>.volumes.json`. `keyward status` (and whatever checks the
/// box's ways in) goes through them; the volumes' headers stay the truth about each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volumes {
    /// The volumes, in the order they were first enrolled.
    pub volumes: Vec<VolumeRecord>,
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRecord {
    /// Its LUKS2 UUID.
    pub uuid: String,
    /// The block device or image file it was last seen at.
    pub device: PathBuf,
}

impl ConfigFile for Volumes {
    const FORMAT: &'static str = "keyward-luks-volumes";
    const VERSION: u32 = 1;
    const MISSING: &'static str = "cannot read";
}

impl Volumes {
    /// The volumes recorded beside `keybox` (none when there is no file).
    pub fn beside(keybox: &Path) -> BoxResult<Self> {
        read_or_default(&BoxFiles::beside(keybox).volumes)
    }

    /// Records volume `uuid` at `device` beside `keybox` (replacing what it said of it).
    pub fn remember(keybox: &Path, uuid: &str, device: &Path) -> BoxResult {
        let mut volumes = Self::beside(keybox)?;
        let record = VolumeRecord { uuid: uuid.to_ascii_lowercase(), device: device.to_path_buf() };
        match volumes.volumes.iter_mut().find(|v| v.uuid == record.uuid) {
            Some(known) if *known == record => return Ok(()),
            Some(known) => *known = record,
            None => volumes.volumes.push(record),
        }
        replace(&BoxFiles::beside(keybox).volumes, &volumes)
    }

    /// Forgets volume `uuid` beside `keybox`.
    pub fn forget(keybox: &Path, uuid: &str) -> BoxResult {
        let mut volumes = Self::beside(keybox)?;
        let before = volumes.volumes.len();
        volumes.volumes.retain(|v| !v.uuid.eq_ignore_ascii_case(uuid));
        if volumes.volumes.len() == before {
            return Ok(());
        }
        replace(&BoxFiles::beside(keybox).volumes, &volumes)
    }
}

/// What the box pushed to its hubs, beside its keybox: `<keybox>.pushed.json`, the newest
/// [`Pushed::KEPT`] versions with their blob's SHA-256, so a drill can tell that the hub serves
/// the very blob the box pushed as that version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pushed {
    /// Newest last.
    pub versions: Vec<PushedVersion>,
}

/// One pushed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushedVersion {
    /// The version the hub gave it.
    pub version: u64,
    /// SHA-256 of the blob's bytes (hex).
    pub blob_sha256: String,
}

impl ConfigFile for Pushed {
    const FORMAT: &'static str = "keyward-escrow-pushed";
    const VERSION: u32 = 1;
    const MISSING: &'static str = "cannot read";
}

impl Pushed {
    /// How many versions are kept.
    pub const KEPT: usize = 16;

    /// What the box beside `keybox` pushed (nothing when there is no file).
    pub fn beside(keybox: &Path) -> BoxResult<Self> {
        read_or_default(&BoxFiles::beside(keybox).pushed)
    }

    /// Notes that `version` is the blob with SHA-256 `blob_sha256`.
    pub fn note(keybox: &Path, version: u64, blob_sha256: &str) -> BoxResult {
        let mut pushed = Self::beside(keybox)?;
        pushed.versions.retain(|v| v.version != version);
        pushed.versions.push(PushedVersion { version, blob_sha256: blob_sha256.into() });
        let extra = pushed.versions.len().saturating_sub(Self::KEPT);
        pushed.versions.drain(..extra);
        replace(&BoxFiles::beside(keybox).pushed, &pushed)
    }

    /// The SHA-256 noted for `version`, if it is noted.
    pub fn sha256_of(&self, version: u64) -> Option<&str> {
        self.versions.iter().find(|v| v.version == version).map(|v| v.blob_sha256.as_str())
    }
}

/// The files a box keeps beside its keybox `K`: `K.hub.json` (its hub enrollment), the secret
/// `K.box-key` (its signing identity, which hub enrollments and peers slots share) and
/// `K.volumes.json` (its LUKS2 volumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxFiles {
    /// The hub enrollment ([`Enrollment`]).
    pub enrollment: PathBuf,
    /// The box's identity.
    pub identity: PathBuf,
    /// The LUKS2 volumes ([`Volumes`]).
    pub volumes: PathBuf,
    /// What it pushed ([`Pushed`]).
    pub pushed: PathBuf,
    /// What its last drill found ([`crate::drill`]).
    pub drill: PathBuf,
}

impl BoxFiles {
    /// The files beside `keybox`.
    pub fn beside(keybox: &Path) -> Self {
        BoxFiles {
            enrollment: beside_keybox(keybox, "", ".hub.json"),
            identity: beside_keybox(keybox, "", ".box-key"),
            volumes: beside_keybox(keybox, "", ".volumes.json"),
            pushed: beside_keybox(keybox, "", ".pushed.json"),
            drill: beside_keybox(keybox, "", ".drill.json"),
        }
    }
}

pub use keyward_core::store::beside_keybox;

/// Reads a configuration file, checking its format and version.
pub fn read<T: ConfigFile>(path: &Path) -> BoxResult<T> {
    let bytes = std::fs::read(path).map_err(|e| keyward_core::Error::io(T::MISSING, path, e))?;
    parse(&bytes, path)
}

/// Reads a configuration file that a box keeps only once there is something in it: its
/// default (empty) when there is no file.
pub fn read_or_default<T: ConfigFile + Default>(path: &Path) -> BoxResult<T> {
    match path.exists() {
        true => read(path),
        false => Ok(T::default()),
    }
}

/// Parses a configuration file's bytes (`path` names it in errors).
pub fn parse<T: ConfigFile>(bytes: &[u8], path: &Path) -> BoxResult<T> {
    let problem = |problem: String| BoxError::Config { path: path.to_path_buf(), problem };
    let mut fields = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(problem(format!("not a {} file (not a JSON object)", T::FORMAT))),
        Err(e) => return Err(problem(format!("not a {} file ({e})", T::FORMAT))),
    };
    let format = fields.remove("format");
    let version = fields.remove("version");
    let (format, version) =
        (format.as_ref().and_then(Value::as_str), version.as_ref().and_then(Value::as_u64));
    match (format, version) {
        (Some(f), Some(v)) if f == T::FORMAT && v == u64::from(T::VERSION) => {}
        (Some(f), _) if f != T::FORMAT => {
            return Err(problem(format!("a `{f}` file, not the `{}` file expected", T::FORMAT)));
        }
        // A file of an older version, or (hub enrollments only) from before files carried one.
        (Some(_), v) | (None, v @ None) if T::upgrade(v, &mut fields) => {}
        (_, Some(v)) => {
            return Err(problem(format!(
                "version {v} of `{}`, and this keyward reads version {}; upgrade keyward",
                T::FORMAT,
                T::VERSION
            )));
        }
        _ => return Err(problem(format!("no `format` and `version` of `{}`", T::FORMAT))),
    }
    serde_json::from_value(Value::Object(fields)).map_err(|e| problem(e.to_string()))
}

/// Writes a configuration file (mode 0600, atomically, never over an existing file).
pub fn write<T: ConfigFile>(path: &Path, config: &T) -> BoxResult {
    write_secret_file(&RealFs, path, &to_bytes(config)?, false)?;
    Ok(())
}

/// Writes a configuration file in place of the one there (mode 0600, atomically).
pub fn replace<T: ConfigFile>(path: &Path, config: &T) -> BoxResult {
    write_secret_file(&RealFs, path, &to_bytes(config)?, true)?;
    Ok(())
}

/// A configuration file's bytes: `format` and `version` first, then the fields.
pub fn to_bytes<T: ConfigFile>(config: &T) -> BoxResult<Vec<u8>> {
    let internal = |e: serde_json::Error| {
        BoxError::Core(keyward_core::Error::Internal(if e.is_io() {
            "cannot write a configuration file"
        } else {
            "a configuration that is not JSON"
        }))
    };
    let mut fields = Map::new();
    fields.insert("format".into(), T::FORMAT.into());
    fields.insert("version".into(), T::VERSION.into());
    match serde_json::to_value(config).map_err(internal)? {
        Value::Object(body) => fields.extend(body),
        _ => {
            return Err(BoxError::Core(keyward_core::Error::Internal(
                "a configuration that is not an object",
            )));
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(fields)).map_err(internal)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrollment() -> Enrollment {
        Enrollment {
            box_name: "pve1".into(),
            hubs: vec![HubAddress { url: "https://127.0.0.1:1".into(), fingerprint: "ab".into() }],
        }
    }

    #[test]
    fn a_config_reads_back_as_written_with_its_format_and_version_first() {
        let bytes = to_bytes(&enrollment()).expect("bytes");
        let text = String::from_utf8(bytes.clone()).expect("text");
        assert!(
            text.starts_with("{\n  \"format\": \"keyward-hub-enrollment\",\n  \"version\": 2,"),
            "{text}"
        );
        assert_eq!(parse::<Enrollment>(&bytes, Path::new("e")).expect("reads"), enrollment());
    }

    #[test]
    fn another_version_or_format_is_refused_by_name_and_an_unversioned_enrollment_is_version_1() {
        let at = Path::new("f.json");
        let other = br#"{"format":"keyward-hub-enrollment","version":3,"box":"b","hubs":[]}"#;
        let e = parse::<Enrollment>(other, at).expect_err("version 3");
        assert!(e.to_string().contains("version 3") && e.to_string().contains("upgrade"), "{e}");
        let v1 = br#"{"format":"keyward-hub-enrollment","version":1,"box":"b","hub":"h","hub_fingerprint":"f"}"#;
        let v1 = parse::<Enrollment>(v1, at).expect("version 1 reads");
        assert_eq!(v1.hubs, vec![HubAddress { url: "h".into(), fingerprint: "f".into() }]);
        let peer = br#"{"format":"keyward-peer","version":1,"operators":[]}"#;
        let e = parse::<HubConfig>(peer, at).expect_err("a peer's config");
        assert!(e.to_string().contains("keyward-peer"), "{e}");
        let no_version =
            br#"{"format":"keyward-hub","operators":[],"certificate_fingerprint":"x"}"#;
        assert!(parse::<HubConfig>(no_version, at).is_err());
        let unversioned = br#"{"box":"b","hub":"h","hub_fingerprint":"f"}"#;
        let legacy = parse::<Enrollment>(unversioned, at).expect("legacy");
        assert_eq!((legacy.box_name.as_str(), legacy.first_hub()), ("b", "h"));
        let unversioned_hub = br#"{"operators":[],"certificate_fingerprint":"x"}"#;
        assert!(parse::<HubConfig>(unversioned_hub, at).is_err());
        let extra = br#"{"format":"keyward-peer","version":1,"operators":[],"surprise":1}"#;
        assert!(parse::<PeerConfig>(extra, at).is_err());
    }
}
