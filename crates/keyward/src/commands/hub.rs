//! `keyward hub …`: create a hub's data folder, serve it, verify its audit chain.

use std::path::{Path, PathBuf};

use keyward_box::config::{self, HubConfig};
use keyward_core::store::{RealFs, create_private_folder};
use keyward_hub::hub::Hub;
use keyward_hub::store::Store;
use keyward_hub::{audit, server};
use keyward_service::limits::RateLimits;
use serde_json::json;

use crate::cli::{AuditCommand, DatabaseArgs, HubCommand};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::parse_operators;
use crate::output::progress;
use crate::serving::{
    create_certificate, init_logging, load_tls, private_umask, serve_options, server_runtime,
};

/// The environment variable a database URL may come from (never the command line: it can hold
/// a password, and argv is visible to every user of the machine).
pub const DATABASE_URL_VARIABLE: &str = "KEYWARD_DATABASE_URL";

fn paths(data: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (data.join("hub.json"), data.join("cert.pem"), data.join("key.pem"))
}

/// The database URL: from `--database-url-file`, else the environment, else SQLite in the data
/// folder (`mode` is `rwc` to serve, `ro` to verify).
fn database_url(
    ctx: &Context,
    args: &DatabaseArgs,
    data: &Path,
    mode: &str,
) -> CliResult<zeroize::Zeroizing<String>> {
    if let Some(path) = &args.database_url_file {
        let bytes = ctx.reader.bytes(path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| usage(format!("{} does not hold a database URL", path.display())))?;
        return Ok(zeroize::Zeroizing::new(text.trim().to_string()));
    }
    if let Ok(url) = std::env::var(DATABASE_URL_VARIABLE)
        && !url.trim().is_empty()
    {
        return Ok(zeroize::Zeroizing::new(url.trim().to_string()));
    }
    Ok(zeroize::Zeroizing::new(format!("sqlite://{}?mode={mode}", data.join("hub.db").display())))
}

/// Runs `hub …`.
pub fn run(ctx: &Context, command: &HubCommand) -> CliResult {
    match command {
        HubCommand::Init { data, operators } => init(ctx, data, operators),
        HubCommand::Serve {
            data,
            listen,
            database,
            serve: args,
            rate_per_box,
            max_pending_versions,
            metrics_per_box,
            fleet_page,
        } => {
            let limits = RateLimits { per_source: args.rate_per_source, per_box: *rate_per_box };
            let url = database_url(ctx, database, data, "rwc")?;
            let options = serve_options(args, keyward_hub::server::MAX_BODY_BYTES);
            let hub = HubOptions {
                max_pending: *max_pending_versions,
                metrics_per_box: *metrics_per_box,
                fleet_page: *fleet_page,
            };
            serve(data, *listen, &url, limits, options, hub)
        }
        HubCommand::Audit { command: AuditCommand::Verify { data, database } } => {
            let url = database_url(ctx, database, data, "ro")?;
            audit_verify(ctx, &url)
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
    let config =
        HubConfig { operators: operators.to_vec(), certificate_fingerprint: fingerprint.clone() };
    config::write(&config_path, &config)?;
    progress(&format!(
        "Hub data folder {} ready; its certificate's fingerprint (clients pin it with --hub-fingerprint, or --hub-cert {}):",
        data.display(),
        cert_path.display()
    ));
    // The fingerprint alone on stdout, so `FP=$(keyward hub init …)` hands it on.
    ctx.out.line(&fingerprint)?;
    ctx.out.json(
        &json!({ "data": data, "certificate_fingerprint": fingerprint, "certificate": cert_path }),
    )
}

fn load(data: &Path) -> CliResult<(HubConfig, PathBuf, PathBuf)> {
    let (config_path, cert_path, key_path) = paths(data);
    Ok((config::read(&config_path)?, cert_path, key_path))
}

/// What `hub serve` chooses of the hub's behaviour.
struct HubOptions {
    max_pending: usize,
    metrics_per_box: bool,
    fleet_page: usize,
}

fn serve(
    data: &Path,
    listen: std::net::SocketAddr,
    url: &str,
    limits: RateLimits,
    options: keyward_service::shell::ServeOptions,
    choices: HubOptions,
) -> CliResult {
    private_umask();
    let (config, cert_path, key_path) = load(data)?;
    let operators = parse_operators(&config.operators)?;
    let (tls, audience) = load_tls(&cert_path, &key_path)?;
    init_logging();
    server_runtime()?.block_on(async move {
        let store = Store::connect(url)
            .await
            .map_err(|e| CliError::Unavailable(format!("the hub database: {e}")))?;
        tracing::info!(%listen, fingerprint = %audience, "keyward hub serving");
        let hub = Hub::new(store, operators, audience)
            .with_max_pending(choices.max_pending)
            .with_metrics_per_box(choices.metrics_per_box)
            .with_fleet_page(choices.fleet_page);
        server::serve(listen, tls, hub, limits, options)
            .await
            .map_err(|e| CliError::Unavailable(format!("cannot serve on {listen}: {e}")))
    })
}

fn audit_verify(ctx: &Context, url: &str) -> CliResult {
    // Read-only: verifying must never create or change a database.
    let records = server_runtime()?.block_on(async move {
        let store = Store::open_existing(url)
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
