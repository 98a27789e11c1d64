//! What every command needs: the keybox path (resolved once), the store over the real file
//! system, the output mode, and the one reader of secrets (so stdin is read at most once).

use std::path::PathBuf;

use keyward_core::Store;
use keyward_core::store::RealFs;

use crate::cli::Cli;
use crate::exit::{CliResult, usage};
use crate::output::Output;
use keyward_box::profile::ChosenProfile;
use keyward_box::secrets::SecretFiles;

/// Shared state of one command run.
#[derive(Debug)]
pub struct Context {
    /// The keybox file.
    pub keybox: PathBuf,
    /// Whether it is the user's default keybox (the shipped agent units serve that one).
    pub keybox_is_default: bool,
    /// How to print.
    pub out: Output,
    /// The machine's offset from UTC, read at start-up (while the process has one thread, which
    /// the `time` crate requires); Proxmox Backup key files carry local times.
    pub local_offset: time::UtcOffset,
    /// Every file and stdin read of this command goes through it: `-` given to two options is
    /// a usage error, never a second read of an empty stdin.
    pub reader: SecretFiles,
    /// The operator profile named (`--profile`, `KEYWARD_PROFILE`), if any.
    profile_name: Option<String>,
    /// The profile, read at its first use (most commands never need it).
    profile: std::cell::OnceCell<Option<ChosenProfile>>,
}

impl Context {
    /// Resolves the keybox path: `--keybox`/`$KEYWARD_KEYBOX`, else the XDG config folder.
    pub fn new(cli: &Cli, local_offset: time::UtcOffset) -> CliResult<Self> {
        let default = default_keybox_path();
        let keybox = match (&cli.keybox, default) {
            (Some(path), default) => {
                let is_default = default.is_ok_and(|d| same_path(&d, path));
                (path.clone(), is_default)
            }
            (None, default) => (default?, true),
        };
        let (keybox, keybox_is_default) = keybox;
        Ok(Context {
            keybox,
            keybox_is_default,
            out: Output { json: cli.json },
            local_offset,
            reader: SecretFiles::new(),
            profile_name: cli.profile.clone(),
            profile: std::cell::OnceCell::new(),
        })
    }

    /// The operator profile this command runs with: the one named, else the config file's
    /// default, else none (keyward_box::profile).
    pub fn profile(&self) -> CliResult<Option<&ChosenProfile>> {
        if let Some(chosen) = self.profile.get() {
            return Ok(chosen.as_ref());
        }
        let path = keyward_box::profile::default_path();
        let chosen = keyward_box::profile::choose(path.as_deref(), self.profile_name.as_deref())?;
        Ok(self.profile.get_or_init(|| chosen).as_ref())
    }

    /// Which keybox this is, for the agent's default socket.
    pub fn agent_keybox(&self) -> keyward_agent::socket::KeyboxIs<'_> {
        match self.keybox_is_default {
            true => keyward_agent::socket::KeyboxIs::TheDefault,
            false => keyward_agent::socket::KeyboxIs::Named(&self.keybox),
        }
    }

    /// The store for the keybox.
    pub fn store(&self) -> Store<'static> {
        Store::new(&RealFs, self.keybox.clone())
    }
}

/// Whether two paths name the same file: their folders resolved (links, `..`), the file itself
/// need not exist.
fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolved = |path: &std::path::Path| {
        let absolute = std::path::absolute(path).ok()?;
        let folder = std::fs::canonicalize(absolute.parent()?).ok()?;
        Some(folder.join(absolute.file_name()?))
    };
    matches!((resolved(a), resolved(b)), (Some(a), Some(b)) if a == b)
}

fn default_keybox_path() -> CliResult<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join(".config"),
            _ => {
                return Err(usage("no --keybox given and neither XDG_CONFIG_HOME nor HOME is set"));
            }
        },
    };
    Ok(config.join("keyward").join("keybox.json"))
}
