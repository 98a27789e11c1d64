//! `keyward peer …`: create a peer's data folder and serve it.

use std::path::{Path, PathBuf};

use keyward_box::config::{self, PeerConfig};
use keyward_core::store::{RealFs, create_private_folder};
use keyward_peer::card::PeerCard;
use keyward_peer::peer::{Peer, PeerSetup};
use keyward_peer::seal::SealSecret;
use keyward_peer::store::Quota;
use keyward_peer::{server, store::Store};
use keyward_service::SigningIdentity;
use keyward_service::limits::RateLimits;
use serde_json::json;

use crate::cli::{PeerCommand, ServeArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::{parse_operators, write_identity};
use crate::output::{Overwrite, write_secret};
use crate::serving::{
    create_certificate, init_logging, load_tls, private_umask, serve_options, server_runtime,
};

/// The files of a peer's data folder.
struct PeerFiles {
    config: PathBuf,
    identity: PathBuf,
    seal_key: PathBuf,
    cert: PathBuf,
    tls_key: PathBuf,
    card: PathBuf,
    database: PathBuf,
}

impl PeerFiles {
    fn in_folder(data: &Path) -> Self {
        PeerFiles {
            config: data.join("peer.json"),
            identity: data.join("identity.key"),
            seal_key: data.join("seal.key"),
            cert: data.join("cert.pem"),
            tls_key: data.join("key.pem"),
            card: data.join("peer-card.json"),
            database: data.join("peer.db"),
        }
    }
}

/// Runs `peer …`.
pub fn run(ctx: &Context, command: &PeerCommand) -> CliResult {
    match command {
        PeerCommand::Init { data, url, operators } => init(ctx, data, url, operators),
        PeerCommand::Serve { data, listen, serve: args } => serve(ctx, data, *listen, args),
    }
}

fn init(ctx: &Context, data: &Path, url: &str, operators: &[String]) -> CliResult {
    parse_operators(operators)?;
    if !url.starts_with("https://") {
        return Err(usage("--url is the https:// address owners reach this peer at"));
    }
    let files = PeerFiles::in_folder(data);
    if files.config.exists() {
        return Err(keyward_core::Error::OutputExists(files.config).into());
    }
    create_private_folder(&RealFs, data)?;
    let identity = SigningIdentity::generate()?;
    let seal_secret = SealSecret::generate()?;
    write_identity(&files.identity, &identity)?;
    write_secret(&files.seal_key, &seal_secret.to_file_bytes(), Overwrite::Never)?;
    let fingerprint = create_certificate(&files.cert, &files.tls_key)?;
    let card = PeerCard::new(url, identity.public(), seal_secret.public(), fingerprint);
    write_secret(&files.card, &card.to_file_bytes(), Overwrite::Never)?;
    let quota = Quota::default();
    let config = PeerConfig {
        operators: operators.to_vec(),
        quota_sets: quota.sets,
        quota_bytes: quota.bytes,
    };
    config::write(&files.config, &config)?;
    ctx.out.line(format!("Peer data folder {} ready", data.display()))?;
    ctx.out.line(format!(
        "card (give it to owners for `enroll peers --peer`): {}",
        files.card.display()
    ))?;
    ctx.out.json(&json!({
        "data": data,
        "card": files.card,
        "identity": card.identity.to_string(),
        "certificate_fingerprint": card.certificate,
    }))
}

fn serve(ctx: &Context, data: &Path, listen: std::net::SocketAddr, args: &ServeArgs) -> CliResult {
    private_umask();
    let files = PeerFiles::in_folder(data);
    let config: PeerConfig = config::read(&files.config)?;
    let operators = parse_operators(&config.operators)?;
    let seal_secret = SealSecret::from_file_bytes(&ctx.reader.bytes(&files.seal_key)?)
        .map_err(|e| usage(format!("{}: {e}", files.seal_key.display())))?;
    let (tls, audience) = load_tls(&files.cert, &files.tls_key)?;
    let limits = RateLimits { per_source: args.rate_per_source, per_box: 0 };
    let options = serve_options(args, keyward_peer::server::MAX_BODY_BYTES);
    let quota = Quota { sets: config.quota_sets, bytes: config.quota_bytes };
    init_logging();
    server_runtime()?.block_on(async move {
        let store = Store::open(&files.database)
            .await
            .map_err(|e| CliError::Unavailable(format!("the peer database: {e}")))?;
        tracing::info!(%listen, "keyward peer serving");
        let peer = Peer::new(PeerSetup { store, seal_secret, operators, audience, quota });
        server::serve(listen, tls, peer, limits, options)
            .await
            .map_err(|e| CliError::Unavailable(format!("cannot serve on {listen}: {e}")))
    })
}
