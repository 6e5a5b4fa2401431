//! `switchboard`: runs the server, or mints tokens.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gateway::auth::{Claims, Role, TokenSigner, unix_now};
use gateway::{Config, Server};
use tracing_subscriber::EnvFilter;

/// switchboard: real-time sessions for omnichannel contact centers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file (see switchboard.example.toml); every key can
    /// also be set with SWITCHBOARD_<SECTION>_<KEY>.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Mint a token signed with the server's secret.
    Token {
        /// customer, agent, supervisor or admin.
        #[arg(long)]
        role: String,
        /// Customer id, agent id, or (admins) any name.
        #[arg(long)]
        sub: String,
        /// Lifetime in seconds (default: auth.token_ttl_secs).
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// Load and validate the configuration, print it as TOML, and exit.
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::load(
        cli.config.as_deref(),
        std::env::vars().filter(|(name, _)| name != "SWITCHBOARD_CONFIG"),
    )?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Token {
            role,
            sub,
            ttl_secs,
        } => {
            let Some(role) = Role::parse(&role) else {
                bail!("--role must be customer, agent, supervisor or admin, not `{role}`");
            };
            if sub.is_empty() {
                bail!("--sub must not be empty");
            }
            let secret_path = config.store.data_dir.join(&config.auth.secret_file);
            let signer = TokenSigner::from_secret_or_file(&config.auth.secret, &secret_path)?;
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
        let summary = gateway::import::import(store.as_ref(), parsed).await;
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
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async move {
        let demo = config.demo.enabled;
        let ttl = config.auth.token_ttl_secs;
        let server = Server::start(config).await?;
        if demo {
            println!(
                "{}",
                gateway::demo::banner(server.addr, server.admin_addr, &server.state.signer, ttl)
            );
        } else {
            println!("switchboard is running on http://{}", server.addr);
            println!("  metrics (admin)  http://{}/metrics", server.admin_addr);
        }
        shutdown_signal().await;
        server.shutdown().await
    })
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
