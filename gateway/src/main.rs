//! `switchboard`: runs the server, or mints tokens.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gateway::auth::{Claims, Role, TokenSigner, unix_now};
use gateway::config::LogFormat;
use gateway::{Config, Server};
use tracing_subscriber::EnvFilter;

/// `switchboard --version`: the crate version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BUILD_GIT_COMMIT"),
    ")"
);

/// switchboard: real-time sessions for omnichannel contact centers.
///
/// The banner (addresses, demo tokens) goes to stdout, log lines to stderr.
/// RUST_LOG chooses which log lines are written, e.g. `RUST_LOG=debug` or
/// `RUST_LOG=info,gateway=debug` (default: info).
#[derive(Parser)]
#[command(name = "switchboard", version = VERSION, about)]
struct Cli {
    /// A TOML configuration file (see switchboard.example.toml); every key can
    /// also be set with SWITCHBOARD_<SECTION>_<KEY>.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as text or as one JSON object a line; overrides the
    /// config key log.format (SWITCHBOARD_LOG_FORMAT), whose default is text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Mint a token signed with the server's secret.
    Token {
        /// Who the bearer is.
        #[arg(long, value_enum)]
        role: Role,
        /// Customer id, agent id, or (admins) any name.
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds (default: auth.token_ttl_secs).
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// Load and validate the configuration, print it as TOML, and exit.
    ///
    /// Secrets that are set (auth.secret, store.scylla_password, each
    /// webhook endpoint's secret, cluster.cookie) are printed as "<redacted>".
    CheckConfig,
    /// Provision skill groups, agents and customers from a TOML file (JSON if
    /// it ends in .json) into the configured store (store.data_dir, as `serve`).
    ///
    /// The file has `[[group]]`, `[[agent]]` and `[[customer]]` entries (see
    /// the README). Everything is validated first; a problem is reported as
    /// `agent[3].role: …` and then nothing is written. Importing again is an
    /// upsert. Customers are usable at once, also by a running server;
    /// agents and groups take effect when the server next starts.
    Import {
        /// The file to import.
        file: PathBuf,
    },
}

/// What `serve` may be told on the command line; each overrides its
/// config key.
#[derive(clap::Args, Default)]
struct ServeArgs {
    /// This node's id, 0–255 (cluster.node_id): part of every id it mints.
    #[arg(long)]
    node_id: Option<u8>,
    /// Where other nodes connect, ip:port (cluster.listen); joins a cluster.
    #[arg(long)]
    cluster_listen: Option<String>,
    /// Nodes to join through, ip:port,ip:port (cluster.seeds).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// What this node does, of edge,core,workers (cluster.roles; all by default).
    #[arg(long, value_delimiter = ',', value_parser = parse_role)]
    roles: Option<Vec<cluster::Role>>,
}

fn parse_role(name: &str) -> Result<cluster::Role, String> {
    cluster::Role::parse(name)
        .ok_or_else(|| format!("`{name}` is not a role; roles are edge, core, workers"))
}

impl ServeArgs {
    fn apply(self, config: &mut Config) {
        if let Some(node_id) = self.node_id {
            config.cluster.node_id = node_id;
        }
        if let Some(listen) = self.cluster_listen {
            config.cluster.listen = listen;
        }
        if let Some(seeds) = self.seeds {
            config.cluster.seeds = seeds;
        }
        if let Some(roles) = self.roles {
            config.cluster.roles = roles;
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(
        cli.config.as_deref(),
        std::env::vars().filter(|(name, _)| name != "SWITCHBOARD_CONFIG"),
    )?;
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            args.apply(&mut config);
            serve(config)
        }
        Command::Token {
            role,
            sub,
            ttl_secs,
        } => {
            if sub.is_empty() {
                bail!("--sub must not be empty");
            }
            let secret_path = config.store.data_dir.join(&config.auth.secret_file);
            let signer =
                TokenSigner::from_secret_or_file(config.auth.secret.expose(), &secret_path)?;
            let ttl = ttl_secs.unwrap_or(config.auth.token_ttl_secs);
            let exp = unix_now() + ttl as i64;
            println!("{}", signer.mint(&Claims { sub, role, exp }));
            Ok(())
        }
        Command::Import { file } => import(&config, &file),
        Command::CheckConfig => {
            print!("{}", toml::to_string(&config).context("config serializes")?);
            Ok(())
        }
    }
}

fn import(config: &Config, file: &std::path::Path) -> Result<()> {
    let parsed = gateway::import::read_file(file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let summary = runtime.block_on(async {
        let store = config.store.open().await?;
        let summary = gateway::import::import(store.as_ref(), parsed, &config.voice.realm).await;
        store.close().await.context("failed to close the store")?;
        summary
    })?;
    println!(
        "imported {} group(s), {} agent(s), {} customer(s) into {} in {:.1} s",
        summary.n_groups,
        summary.n_agents,
        summary.n_customers,
        config.store.describe(),
        summary.elapsed.as_secs_f64()
    );
    println!(
        "customers are usable at once; agents and groups take effect when the server next starts"
    );
    Ok(())
}

fn serve(config: Config) -> Result<()> {
    init_logs(config.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let config = gateway::demo::with_phone(config);
    runtime.block_on(async move {
        let demo = config.demo.enabled;
        let realm = config.voice.realm.clone();
        let ttl = config.auth.token_ttl_secs;
        let server = Server::start(config).await?;
        if demo {
            let phone = match server.sip_addr {
                Some(sip) => {
                    let store = server.state.switchboard.store().clone();
                    gateway::demo::phone_banner(store.as_ref(), &realm, sip).await
                }
                None => Vec::new(),
            };
            println!(
                "{}",
                gateway::demo::banner(
                    server.addr,
                    server.admin_addr,
                    &server.state.signer,
                    ttl,
                    phone
                )
            );
        } else {
            println!("switchboard is running on http://{}", server.addr);
            println!("  metrics (admin)  http://{}/metrics", server.admin_addr);
            if let Some(sip) = server.sip_addr {
                println!("  SIP (phones)     sip:<agent id>@{sip}  UDP and TCP (docs/voice.md)");
            }
        }
        let cluster = server.state.cluster.clone();
        if let Some(cluster) = &cluster {
            let roles: Vec<&str> = server
                .state
                .config
                .cluster
                .roles
                .iter()
                .map(|role| role.as_str())
                .collect();
            println!(
                "  cluster          node {} on {}, roles {}, members {:?} (docs/cluster.md)",
                cluster.node_id(),
                cluster.listen_addr(),
                roles.join(","),
                cluster.view().node_ids()
            );
        }
        let refused = async {
            match &cluster {
                Some(cluster) => cluster.refused().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown_signal() => server.shutdown().await,
            reason = refused => {
                server.shutdown().await?;
                Err(anyhow::anyhow!("{reason}"))
            }
        }
    })
}

/// Log lines go to stderr, so that stdout holds only what the server prints
/// for its user (the banner) and can be piped apart. Colours only on a
/// terminal: a log file or collector gets no escape codes.
fn init_logs(format: LogFormat) {
    // rsipstack logs every SIP datagram, raw, at info: only its warnings by
    // default; `RUST_LOG=info,rsipstack=debug` shows the traffic.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{}", voice::sip::LOG_FILTER_DIRECTIVE)));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a ctrl-c handler, SIGTERM still stops the server.
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
