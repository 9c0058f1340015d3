//! `sixpence-azure-sim`: serves a simulated Azure tenant on loopback for local development.
//!
//! ```text
//! sixpence-azure-sim [--port 8089] [--seed 42] [--today 2026-11-23] [--large-resources 2700] [--no-quota]
//! ```

use std::net::SocketAddr;

use anyhow::{Context, bail};
use sixpence_azure_sim::{LargeMode, SimConfig, SimTenant};

fn usage() -> &'static str {
    "usage: sixpence-azure-sim [--port N] [--seed N] [--today YYYY-MM-DD] [--tenants N] \
     [--subscriptions N] [--resources N] [--page-size N] [--large-resources N] [--no-quota]"
}

fn parse_args() -> anyhow::Result<SimConfig> {
    let mut config = SimConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 8089)),
        ..SimConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--port" => config
                .bind
                .set_port(value("--port")?.parse().context("--port")?),
            "--seed" => config.seed = value("--seed")?.parse().context("--seed")?,
            "--today" => {
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                config.today =
                    Some(time::Date::parse(&value("--today")?, &fmt).context("--today")?);
            }
            "--tenants" => config.tenants = value("--tenants")?.parse().context("--tenants")?,
            "--subscriptions" => {
                config.subscriptions_per_tenant = value("--subscriptions")?
                    .parse()
                    .context("--subscriptions")?
            }
            "--resources" => {
                config.resources_per_subscription =
                    value("--resources")?.parse().context("--resources")?
            }
            "--page-size" => {
                config.cost_page_size = value("--page-size")?.parse().context("--page-size")?
            }
            "--large-resources" => {
                config.large = Some(LargeMode {
                    resources: value("--large-resources")?
                        .parse()
                        .context("--large-resources")?,
                    ..LargeMode::million_rows()
                })
            }
            "--no-quota" => config.quota = None,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{}", usage()),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = parse_args()?;
    let seed = config.seed;
    let sim = SimTenant::start(config).await?;
    let base = sim.base_url();
    let (from, to) = sim.data_range();
    println!("Simulated Azure tenant (seed {seed}), cost data {from} .. {to}");
    println!("  ARM endpoint:     {base}");
    println!("  login authority:  {base}   (token: POST {base}/{{tenant}}/oauth2/v2.0/token)");
    println!("  ground truth:     GET {base}/_sim/ground-truth");
    println!(
        "  faults:           POST {base}/_sim/faults   e.g. {{\"kind\":\"throttle\",\"requests\":3}}"
    );
    println!("  request counts:   GET {base}/_sim/requests");
    for i in 0..sim.tenant_count() {
        let c = sim.credentials(i);
        println!("Tenant {} ({})", c.tenant_id, c.domain);
        println!("  AZURE_TENANT_ID={}", c.tenant_id);
        println!("  AZURE_CLIENT_ID={}", c.client_id);
        println!(
            "  AZURE_CLIENT_SECRET={}   (demo value, not a real secret)",
            c.client_secret
        );
        println!("  subscriptions: {}", c.subscriptions.join(", "));
    }
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
