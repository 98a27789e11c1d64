//! `keyward hub …`: create a hub's data folder, serve it, verify its audit chain.

use std::path::{Path, PathBuf};

use keyward_core::store::{RealFs, create_private_folder};
use keyward_hub::hub::Hub;
use keyward_hub::limits::RateLimits;
use keyward_hub::store::Store;
use keyward_hub::{audit, server};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::{AuditCommand, HubCommand};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::parse_operators;
use crate::serving::{create_certificate, init_logging, load_tls, server_runtime, write_config};

/// The hub's configuration file in its data folder (not secret).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HubConfig {
    format: String,
    version: u32,
    operators: Vec<String>,
    certificate_fingerprint: String,
}

fn paths(data: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (data.join("hub.json"), data.join("cert.pem"), data.join("key.pem"))
}

fn default_database(data: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data.join("hub.db").display())
}

/// Runs `hub …`.
pub fn run(ctx: &Context, command: &HubCommand) -> CliResult {
    match command {
        HubCommand::Init { data, operators } => init(ctx, data, operators),
        HubCommand::Serve { data, listen, database, rate_per_source, rate_per_box } => {
            let limits = RateLimits { per_source: *rate_per_source, per_box: *rate_per_box };
            serve(data, *listen, database.as_deref(), limits)
        }
        HubCommand::Audit { command: AuditCommand::Verify { data, database } } => {
            audit_verify(ctx, data, database.as_deref())
        }
    }
}

fn init(ctx: &Context, data: &Path, operators: &[String]) -> CliResult {
    parse_operators(operators)?;
    let (config_path, cert_path, key_path) = paths(data);
    if config_path.exists() {
        return Err(keyward_core::Error::OutputExists(config_path).into());
    }
    create_private_folder(&RealFs, data)?;
    let fingerprint = create_certificate(&cert_path, &key_path)?;
    let config = HubConfig {
        format: "keyward-hub".into(),
        version: 1,
        operators: operators.to_vec(),
        certificate_fingerprint: fingerprint.clone(),
    };
    write_config(&config_path, &config)?;
    ctx.out.line(format!("Hub data folder {} ready", data.display()))?;
    ctx.out
        .line(format!("certificate fingerprint (give clients --hub-fingerprint): {fingerprint}"))?;
    ctx.out.json(
        &json!({ "data": data, "certificate_fingerprint": fingerprint, "certificate": cert_path }),
    )
}

fn load(data: &Path) -> CliResult<(HubConfig, PathBuf, PathBuf)> {
    let (config_path, cert_path, key_path) = paths(data);
    let bytes = std::fs::read(&config_path).map_err(|e| {
        keyward_core::Error::io("cannot read (run `keyward hub init` first)", &config_path, e)
    })?;
    let config: HubConfig = serde_json::from_slice(&bytes)
        .map_err(|e| usage(format!("{}: {e}", config_path.display())))?;
    Ok((config, cert_path, key_path))
}

fn serve(
    data: &Path,
    listen: std::net::SocketAddr,
    database: Option<&str>,
    limits: RateLimits,
) -> CliResult {
    let (config, cert_path, key_path) = load(data)?;
    let operators = parse_operators(&config.operators)?;
    let tls = load_tls(&cert_path, &key_path)?;
    let url = database.map_or_else(|| default_database(data), str::to_string);
    init_logging();
    server_runtime()?.block_on(async move {
        let store = Store::connect(&url).await.map_err(|e| CliError::Unavailable(format!("the hub database: {e}")))?;
        tracing::info!(%listen, fingerprint = %config.certificate_fingerprint, "keyward hub serving");
        server::serve(listen, tls, Hub::new(store, operators), limits).await.map_err(|e| CliError::Unavailable(format!("cannot serve on {listen}: {e}")))
    })
}

fn audit_verify(ctx: &Context, data: &Path, database: Option<&str>) -> CliResult {
    // Read-only: verifying must never create or change a database.
    let url = database.map_or_else(
        || format!("sqlite://{}?mode=ro", data.join("hub.db").display()),
        str::to_string,
    );
    let records = server_runtime()?.block_on(async move {
        let store = Store::open_existing(&url)
            .await
            .map_err(|e| CliError::Unavailable(format!("the hub database: {e}")))?;
        store.audit_log().await.map_err(|e| CliError::Unavailable(format!("the hub database: {e}")))
    })?;
    match audit::verify_chain(&records) {
        Ok(()) => {
            ctx.out.line(format!("audit log ok: {} records, hash chain intact", records.len()))?;
            ctx.out.json(&json!({ "ok": true, "records": records.len() }))
        }
        Err(broken) => {
            ctx.out.json(&json!({ "ok": false, "records": records.len(), "broken_at": broken.seq, "problem": broken.what }))?;
            Err(CliError::AuditBroken(broken))
        }
    }
}
