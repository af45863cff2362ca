//! The `douyin-lite` command: `serve` (default), `migrate`, `rebuild-cache`, `seed`, `check`.

use clap::{Parser, Subcommand};
use douyin_lite::{build, run, Config};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "douyin-lite",
    version,
    about = "Cache-first backend for the Douyin-lite API"
)]
struct Cli {
    /// TOML config file (see README for every field).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (server.bind).
    #[arg(long, global = true)]
    bind: Option<String>,
    /// Data directory: durable store, media, JWT secret (store.data_dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Redis URL (redis.url).
    #[arg(long, global = true)]
    redis_url: Option<String>,
    /// Seed demo users and videos when the install is empty (server.demo).
    #[arg(long, global = true)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Create the CQL keyspace and apply the schema files of cql/ not yet applied
    /// (store.backend = "scylla"; safe to run from several instances at once).
    Migrate,
    /// Reload every user, video and the feed from the durable store into Redis.
    RebuildCache,
    /// Create the demo users and videos; with --bench, load the benchmark data set instead.
    Seed {
        /// Load the benchmark data set (10k users, 100k videos, 1M likes, ...) into an empty
        /// store and write the files the bench/ scripts read (user tokens, video ids, friends).
        #[arg(long)]
        bench: bool,
        /// Where --bench writes its files.
        #[arg(long, default_value = "bench/data")]
        out: PathBuf,
        /// Scale the --bench data set (1.0 = full size; 0.01 for a quick try).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Check that every counter agrees with the records it counts, in the durable store and
    /// in Redis; prints a JSON summary and exits non-zero on any disagreement.
    Check,
}

fn main() {
    let cli = Cli::parse();
    let mut cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Some(b) = cli.bind {
        cfg.server.bind = b;
    }
    if let Some(d) = cli.data_dir {
        cfg.store.data_dir = d;
    }
    if let Some(r) = cli.redis_url {
        cfg.redis.url = r;
        cfg.redis.url_file = None;
    }
    if cli.demo {
        cfg.server.demo = true;
    }
    douyin_lite::telemetry::init(&cfg.log.level);
    let command = cli.command.unwrap_or(Command::Serve);
    let result = ntex::rt::System::build()
        .name("douyin-lite")
        .build(ntex::rt::DefaultRuntime)
        .block_on(async move { execute(cfg, command).await });
    if let Err(e) = result {
        tracing::error!("{e}");
        douyin_lite::telemetry::flush();
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    douyin_lite::telemetry::flush();
}

async fn execute(mut cfg: Config, command: Command) -> Result<(), String> {
    if !matches!(command, Command::Serve) {
        // A batch job reads each thing once: a near-cache would only cost, and its
        // invalidation subscription (CLIENT TRACKING BCAST) made Redis match every key that
        // rebuild-cache wrote against the tracked prefixes and send this process an
        // invalidation for it (rebuild-cache 4 to 20% faster without it; bench/NOTES.md).
        cfg.near.enabled = false;
    }
    match command {
        Command::Serve => {
            let listener = std::net::TcpListener::bind(&cfg.server.bind)
                .map_err(|e| format!("cannot listen on {}: {e}", cfg.server.bind))?;
            let demo = cfg.server.demo;
            let app = build(cfg).await?;
            if demo {
                match douyin_lite::ops::demo::seed_if_empty(&app.state).await {
                    Ok(Some((u, v))) => {
                        tracing::info!(users = u, videos = v, "seeded demo content")
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "demo seeding failed; serving anyway"),
                }
            }
            tracing::info!(addr = %listener.local_addr().map_err(|e| e.to_string())?, public_url = %app.state.urls.base, "serving");
            run(app, listener, douyin_lite::app::shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Migrate => {
            if cfg.store.backend != "scylla" {
                return Err(format!(
                    "migrate is for store.backend = \"scylla\"; this config uses {:?}, \
                     which needs no migration",
                    cfg.store.backend
                ));
            }
            let done = douyin_lite::store::cql::migrate(&cfg.store.cql).await?;
            if done.is_empty() {
                println!(
                    "keyspace {} is at schema version {}: nothing to apply",
                    cfg.store.cql.keyspace,
                    douyin_lite::store::cql::SCHEMA_VERSION
                );
            } else {
                println!(
                    "keyspace {}: applied {}",
                    cfg.store.cql.keyspace,
                    done.join(", ")
                );
            }
            Ok(())
        }
        Command::RebuildCache => {
            let app = build(cfg).await?;
            let done = app
                .state
                .cache
                .rebuild_all()
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "rebuilt redis from the durable store: {} users, {} videos, {} comments, {} conversations",
                done.users, done.videos, done.comments, done.conversations
            );
            Ok(())
        }
        Command::Seed {
            bench: true,
            out,
            scale,
        } => {
            let app = build(cfg).await?;
            douyin_lite::ops::bench::seed_bench_cli(&app.state, &out, scale)
                .await
                .map_err(|e| e.to_string())
        }
        Command::Check => {
            let app = build(cfg).await?;
            let report = douyin_lite::ops::check::check(&app.state)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", report.to_json());
            if report.mismatches > 0 {
                return Err(format!(
                    "{} counters disagree with their records",
                    report.mismatches
                ));
            }
            Ok(())
        }
        Command::Seed { bench: false, .. } => {
            let app = build(cfg).await?;
            let (u, v) = douyin_lite::ops::demo::seed_demo(&app.state)
                .await
                .map_err(|e| e.to_string())?;
            app.state.store.flush().await.map_err(|e| e.to_string())?;
            println!("seeded {u} users and {v} videos");
            Ok(())
        }
    }
}
