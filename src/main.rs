//! The `scimd` command line: `serve` (the default), `migrate`, `admin …`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use scimd::config::{Config, parse_duration};
use scimd::server::{self, BoxError};
use scimd::store::{DeleteMode, DeletionThreshold, PolicyChange};
use scimd::{admin, telemetry};

/// mimalloc instead of glibc's malloc: rendering a SCIM resource allocates
/// many small strings and maps, and glibc's allocator took a tenth of the
/// server's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "scimd", version, about = "A SCIM 2.0 user-provisioning server")]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (what a bare `scimd` does).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage projects, tenants and access keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Read change events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Read the provisioning log.
    #[command(subcommand)]
    Requests(RequestsCommand),
}

#[derive(Debug, Subcommand)]
enum RequestsCommand {
    /// Print a tenant's last provisioning log records as JSON lines, oldest first.
    Tail {
        #[arg(long)]
        project: String,
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// Only these statuses: a code (404) or a class (4xx).
        #[arg(long)]
        status: Option<String>,
        /// How many of the last records to print first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: u32,
        /// Keep printing new records until interrupted.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print a tenant's change events as JSON lines, oldest first.
    Tail {
        #[arg(long)]
        project: String,
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// Start after this cursor (an event's `cursor` or a `nextCursor`).
        #[arg(long)]
        after: Option<String>,
        /// Keep printing new events until interrupted.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    #[command(subcommand)]
    Project(ProjectCommand),
    #[command(subcommand)]
    Tenant(TenantCommand),
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Create a project and print its id.
    Create {
        #[arg(long)]
        name: String,
        /// Choose the id (1-64 of [A-Za-z0-9_-]) instead of generating one.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant in a project and print its id.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
    },
    /// Print a tenant's deprovisioning policy as JSON.
    Show {
        #[arg(long)]
        project: String,
        /// Tenant id or name.
        tenant: String,
    },
    /// Change a tenant's deprovisioning policy; prints it.
    Set {
        #[arg(long)]
        project: String,
        /// Tenant id or name.
        tenant: String,
        /// What DELETE does: hard (gone) or soft (a tombstone a later create revives).
        #[arg(long, value_parser = DeleteMode::parse)]
        delete_mode: Option<DeleteMode>,
        /// At most N deletes and deactivations per WINDOW (50/1h), or off.
        #[arg(long, value_parser = parse_threshold)]
        deletion_threshold: Option<Threshold>,
        /// Refuse every write of the tenant (503) while true.
        #[arg(long)]
        paused: Option<bool>,
    },
    /// Let a tenant's held deletions through and count afresh.
    Release {
        #[arg(long)]
        project: String,
        /// Tenant id or name.
        tenant: String,
    },
}

/// `--deletion-threshold`: N/WINDOW, or off.
type Threshold = Option<DeletionThreshold>;

fn parse_threshold(text: &str) -> Result<Threshold, String> {
    match text {
        "off" => Ok(None),
        _ => DeletionThreshold::parse(text).map(Some),
    }
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create an access key; prints the bearer token once.
    Create {
        #[arg(long)]
        project: String,
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "tenant-admin")]
        role: String,
        /// Lifetime, e.g. 90d, 12h, 30m.
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List access keys (never their secrets).
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke an access key by id.
    Revoke { id: String },
}

fn main() -> ExitCode {
    // A missing .env file is normal; a malformed one is worth saying.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("scimd: ignoring .env: {e}");
    }
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scimd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let config = cli.config;
    let admin_cmd = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => return server::serve(config).await,
        Command::Migrate => {
            let store = server::open_store(&config).await?;
            println!("migrations applied ({})", store.backend());
            store.close().await;
            return Ok(());
        }
        Command::Admin(cmd) => cmd,
        Command::Requests(RequestsCommand::Tail {
            project,
            tenant,
            status,
            lines,
            follow,
        }) => {
            let store = server::open_store(&config).await?;
            let result = admin::tail_requests(
                &store,
                &project,
                &tenant,
                status.as_deref(),
                lines,
                follow,
                &mut std::io::stdout().lock(),
            )
            .await;
            store.close().await;
            return result;
        }
        Command::Events(EventsCommand::Tail {
            project,
            tenant,
            after,
            follow,
        }) => {
            let store = server::open_store(&config).await?;
            let base = server::local_url(&config);
            let result = admin::tail_events(
                &store,
                &project,
                &tenant,
                after.as_deref(),
                follow,
                &base,
                &mut std::io::stdout().lock(),
            )
            .await;
            store.close().await;
            return result;
        }
    };
    let store = server::open_store(&config).await?;
    let result = run_admin(&store, admin_cmd).await;
    store.close().await;
    result
}

async fn run_admin(store: &scimd::store::Store, cmd: AdminCommand) -> Result<(), BoxError> {
    match cmd {
        AdminCommand::Project(ProjectCommand::Create { name, id }) => {
            let p = admin::create_project(store, id.as_deref(), &name).await?;
            println!("{}", p.id);
        }
        AdminCommand::Tenant(TenantCommand::Create { project, name }) => {
            let t = admin::create_tenant(store, &project, &name).await?;
            println!("{}", t.id);
        }
        AdminCommand::Tenant(TenantCommand::Show { project, tenant }) => {
            let t = admin::tenant_state(store, &project, &tenant).await?;
            println!("{}", t.to_json());
        }
        AdminCommand::Tenant(TenantCommand::Set {
            project,
            tenant,
            delete_mode,
            deletion_threshold,
            paused,
        }) => {
            let change = PolicyChange {
                delete_mode,
                deletion_threshold,
                paused,
            };
            let t = admin::set_tenant_policy(store, &project, &tenant, &change).await?;
            println!("{}", t.to_json());
        }
        AdminCommand::Tenant(TenantCommand::Release { project, tenant }) => {
            let t = admin::release_deletions(store, &project, &tenant).await?;
            println!("{}", t.to_json());
        }
        AdminCommand::Key(KeyCommand::Create {
            project,
            tenant,
            role,
            expires_in,
            name,
        }) => {
            let k = admin::create_key(store, &project, &tenant, &role, expires_in, name.as_deref())
                .await?;
            eprintln!(
                "created key {} (role {}, tenant {} '{}', expires {}); the token is shown only this once:",
                k.key_id,
                k.role,
                k.tenant.id,
                k.tenant.name,
                k.expires_at.map_or("never".to_owned(), |t| t.to_rfc3339()),
            );
            println!("{}", k.token);
        }
        AdminCommand::Key(KeyCommand::List { project }) => {
            let keys = admin::list_keys(store, project.as_deref()).await?;
            println!(
                "{:<21} {:<28} {:<36} {:<14} {:<8} NAME",
                "ID", "PROJECT", "TENANT", "ROLE", "STATE"
            );
            let now = chrono::Utc::now();
            for k in keys {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|t| t <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<21} {:<28} {:<36} {:<14} {:<8} {}",
                    k.id,
                    k.project_id,
                    k.tenant_id,
                    k.role,
                    state,
                    k.name.unwrap_or_default()
                );
            }
        }
        AdminCommand::Key(KeyCommand::Revoke { id }) => {
            if !admin::revoke_key(store, &id).await? {
                return Err(format!("no access key with id '{id}'").into());
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}
