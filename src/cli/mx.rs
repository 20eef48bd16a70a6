//! `mxprobe mx DOMAIN...`: how each domain's mail is routed, and which known provider's
//! servers receive it (`mxprobe::providers`).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::Format;
use mxprobe::address::parse_domain;
use mxprobe::config::RESOLV_CONF;
use mxprobe::dns::{
    LookupConfig, MailRoute, NameserverConfig, ResolverConfig, RouteError, parse_server,
};
use mxprobe::driver::{RouteResolution, resolve_routes};
use mxprobe::engine::special_purpose::special_purpose;
use mxprobe::providers;

#[derive(Debug, Args)]
pub struct MxArgs {
    /// Domains to look up (internationalised names are fine: bücher.example).
    #[arg(required = true, value_name = "DOMAIN")]
    domains: Vec<String>,

    /// A nameserver to ask instead of those in /etc/resolv.conf, as IP or IP:PORT
    /// (repeatable; tried in order). Useful to point mxprobe at a test server.
    #[arg(long = "dns-server", value_name = "IP[:PORT]", value_parser = parse_dns_server)]
    dns_servers: Vec<SocketAddr>,

    /// Seconds to wait for one DNS answer before asking the next server; doubles on each round
    /// over the servers [default: resolv.conf's timeout, or 5].
    #[arg(long = "dns-timeout", value_name = "SECS")]
    dns_timeout: Option<u64>,

    /// Output format [default: human on a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,
}

fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    parse_server(text).map_err(|e| e.to_string())
}

/// Routes every domain and prints the results.
pub fn run(args: MxArgs) -> Result<(), String> {
    let mut nameservers = if args.dns_servers.is_empty() {
        let text = std::fs::read_to_string(RESOLV_CONF)
            .map_err(|e| format!("cannot read {RESOLV_CONF} ({e}); pass --dns-server IP[:PORT]"))?;
        NameserverConfig::parse_resolv_conf(&text).map_err(|e| e.to_string())?
    } else {
        NameserverConfig::with_servers(args.dns_servers)
    };
    if let Some(secs) = args.dns_timeout {
        nameservers.timeout = Duration::from_secs(secs.max(1));
    }
    let config = ResolverConfig::new(LookupConfig::new(nameservers));
    let format = Format::resolve(args.format);
    if format == Format::Csv {
        return Err("mx writes --format human or jsonl".into());
    }

    // Domains that are not domains get their answer without a lookup.
    let checked: Vec<Result<String, String>> = args
        .domains
        .iter()
        .map(|d| parse_domain(d).map_err(|e| e.to_string()))
        .collect();
    let valid: Vec<String> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let mut resolved = resolve_routes(config, &valid, 256)
        .map_err(|e| format!("the event loop failed: {e}"))?
        .into_iter();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (given, check) in args.domains.iter().zip(checked) {
        let line = match check {
            Err(invalid) => match format {
                Format::Human => format!("{given}: not a valid domain: {invalid}\n"),
                Format::Jsonl | Format::Csv => format!(
                    "{}\n",
                    json!({"domain": given, "status": "invalid_domain", "error": invalid})
                ),
            },
            Ok(_) => {
                let Some(resolution) = resolved.next() else {
                    return Err("internal error: a domain was not resolved".into());
                };
                match format {
                    Format::Human => human(&resolution),
                    Format::Jsonl | Format::Csv => format!("{}\n", jsonl(&resolution)),
                }
            }
        };
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write the results: {e}"))?;
    }
    Ok(())
}

fn human(resolution: &RouteResolution) -> String {
    match &resolution.result {
        Ok(route) => {
            let mut text = if route.implicit {
                format!(
                    "{} (no MX records: the domain is its own mail host)\n",
                    route.domain
                )
            } else {
                format!("{}\n", route.domain)
            };
            let width = route.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
            let mut special = false;
            for host in &route.hosts {
                let addresses: Vec<String> = host
                    .addresses
                    .iter()
                    .map(|ip| match special_purpose(*ip) {
                        Some(range) => {
                            special = true;
                            format!("{ip} (special-purpose: {range})")
                        }
                        None => ip.to_string(),
                    })
                    .collect();
                let provider = providers::by_mx_host(&host.name)
                    .map(|provider| format!("  [{}]", provider.name))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "  {:>5}  {:width$}  {}{provider}\n",
                    host.preference,
                    host.name,
                    addresses.join(", ")
                ));
            }
            if special {
                text.push_str(
                    "  (`verify` does not connect to special-purpose addresses unless \
                     --allow-private-mx)\n",
                );
            }
            text
        }
        Err(error) => format!("{}: {error}\n", resolution.domain),
    }
}

fn jsonl(resolution: &RouteResolution) -> serde_json::Value {
    match &resolution.result {
        Ok(route) => json!({
            "domain": route.domain,
            "status": "ok",
            "implicit_mx": route.implicit,
            // The provider of the preferred host: where the domain's mail goes first.
            "provider": route
                .hosts
                .first()
                .and_then(|host| providers::by_mx_host(&host.name))
                .map(|provider| provider.id.as_str()),
            "hosts": route_hosts(route),
        }),
        Err(error) => json!({
            "domain": resolution.domain,
            "status": status(*error),
            "error": error.to_string(),
        }),
    }
}

fn route_hosts(route: &MailRoute) -> Vec<serde_json::Value> {
    route
        .hosts
        .iter()
        .map(|h| {
            json!({
                "name": h.name,
                "preference": h.preference,
                "provider": providers::by_mx_host(&h.name).map(|provider| provider.id.as_str()),
                "addresses": h.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "special_purpose": h
                    .addresses
                    .iter()
                    .filter_map(|ip| special_purpose(*ip).map(|range| json!({
                        "address": ip.to_string(),
                        "range": range.prefix,
                        "name": range.name,
                    })))
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The reason names of the output schema: `domain_not_found`, `null_mx`, `no_mail_server`,
/// `dns_failure`.
fn status(error: RouteError) -> &'static str {
    error.reason().as_str()
}
