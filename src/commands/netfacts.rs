//! `sockit ipcalc` and `sockit resolve`: network facts, printed.

use std::net::IpAddr;
use std::process::ExitCode;

use serde_json::{Value, json};

use sockit::nc::Family;
use sockit_proto::subnet::{self, Ipv4Net, Ipv6Net, Net};

use crate::UsageError;
use crate::cli::{IpcalcArgs, ResolveArgs};
use crate::exit;
use crate::output::json_line;

pub fn ipcalc(args: &IpcalcArgs) -> anyhow::Result<ExitCode> {
    let net = Net::parse(&args.address, args.mask.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let contained = match (args.contains, net) {
        (None, _) => None,
        (Some(IpAddr::V4(a)), Net::V4(n)) => Some((IpAddr::V4(a), n.contains(a))),
        (Some(IpAddr::V6(a)), Net::V6(n)) => Some((IpAddr::V6(a), n.contains(a))),
        (Some(other), _) => return Err(UsageError(subnet::SubnetError::FamilyMismatch(other).to_string()).into()),
    };
    let subnets = subnet_rows(net, args.split)?;
    if args.json {
        let mut value = match net {
            Net::V4(n) => v4_json(&n),
            Net::V6(n) => v6_json(&n),
        };
        if let Some(object) = value.as_object_mut() {
            if let Some(rows) = subnets {
                // JSON is one document held in memory, so its list is bounded;
                // text output streams any number of rows.
                let list: Vec<String> = rows.take(MAX_LISTED + 1).map(|(cidr, _)| cidr).collect();
                if list.len() > MAX_LISTED {
                    return Err(UsageError(format!("more than {MAX_LISTED} subnets: too many for --json")).into());
                }
                object.insert("subnets".into(), Value::from(list));
            }
            if let Some((addr, inside)) = contained {
                object.insert(
                    "contains".into(),
                    json!({"address": addr.to_string(), "inside": inside}),
                );
            }
        }
        json_line(&crate::output::named("network", value))?;
    } else {
        match net {
            Net::V4(n) => print_v4(&n, !args.no_binary)?,
            Net::V6(n) => print_v6(&n)?,
        }
        if let Some(rows) = subnets {
            crate::outln!("Subnets /{}:", args.split.unwrap_or(0))?;
            for (cidr, detail) in rows {
                crate::outln!("  {cidr:<20} {detail}")?;
            }
        }
        if let Some((addr, inside)) = contained {
            crate::outln!("{:<11}{addr} {}", "Contains:", if inside { "yes" } else { "no" })?;
        }
    }
    Ok(match contained {
        Some((_, false)) => ExitCode::from(exit::FAILED),
        _ => ExitCode::SUCCESS,
    })
}

type Rows = Box<dyn Iterator<Item = (String, String)>>;

/// The `--split` subnets, lazily: (CIDR, host range and broadcast).
fn subnet_rows(net: Net, split: Option<u32>) -> anyhow::Result<Option<Rows>> {
    let Some(prefix) = split else {
        return Ok(None);
    };
    let rows: Rows = match net {
        Net::V4(n) => Box::new(n.split(prefix).map_err(|e| UsageError(e.to_string()))?.map(|s| {
            let (first, last) = s.hosts();
            let broadcast = s.broadcast().map(|b| format!("  broadcast {b}")).unwrap_or_default();
            (s.to_string(), format!("hosts {first} - {last}{broadcast}"))
        })),
        Net::V6(n) => Box::new(
            n.split(prefix)
                .map_err(|e| UsageError(e.to_string()))?
                .take(MAX_LISTED)
                .map(|s| (s.to_string(), format!("{} - {}", s.network(), s.last()))),
        ),
    };
    Ok(Some(rows))
}

/// Most subnets listed in JSON, and in IPv6 text output (a /32 split
/// into /64s is 2^32 prefixes; nobody reads that many).
const MAX_LISTED: usize = 1 << 20;

fn print_v4(n: &Ipv4Net, binary: bool) -> std::io::Result<()> {
    let row = |label: &str, value: String, bits: Option<std::net::Ipv4Addr>| match bits.filter(|_| binary) {
        Some(b) => crate::outln!("{label:<11}{value:<21}{}", subnet::binary_v4(b, n.prefix())),
        None => crate::outln!("{label:<11}{value}"),
    };
    row("Address:", n.addr().to_string(), Some(n.addr()))?;
    row("Netmask:", format!("{} = {}", n.mask(), n.prefix()), Some(n.mask()))?;
    row("Wildcard:", n.wildcard().to_string(), Some(n.wildcard()))?;
    row("Network:", format!("{}/{}", n.network(), n.prefix()), Some(n.network()))?;
    match n.broadcast() {
        Some(b) => row("Broadcast:", b.to_string(), Some(b))?,
        None => row("Broadcast:", "none (/31 and /32 have none)".into(), None)?,
    }
    let (first, last) = n.hosts();
    row("HostMin:", first.to_string(), Some(first))?;
    row("HostMax:", last.to_string(), Some(last))?;
    row("Hosts/Net:", n.host_count().to_string(), None)?;
    row("Class:", class_text(n), None)?;
    row("Type:", n.kind().describe().to_string(), None)
}

fn class_text(n: &Ipv4Net) -> String {
    let class = n.class();
    let bits = match class {
        subnet::Class::A => "0",
        subnet::Class::B => "10",
        subnet::Class::C => "110",
        subnet::Class::D => "1110",
        subnet::Class::E => "1111",
    };
    format!(
        "{class} (leading bits {bits}, classful prefix /{})",
        class.default_prefix()
    )
}

fn v4_json(n: &Ipv4Net) -> Value {
    let (first, last) = n.hosts();
    json!({
        "address": n.addr().to_string(),
        "prefix": n.prefix(),
        "netmask": n.mask().to_string(),
        "wildcard": n.wildcard().to_string(),
        "network": n.network().to_string(),
        "broadcast": n.broadcast().map(|b| b.to_string()),
        "host_min": first.to_string(),
        "host_max": last.to_string(),
        "hosts": n.host_count(),
        "class": n.class(),
        "kind": n.kind(),
        "binary": {
            "address": subnet::binary_v4(n.addr(), n.prefix()),
            "netmask": subnet::binary_v4(n.mask(), n.prefix()),
        },
    })
}

fn print_v6(n: &Ipv6Net) -> std::io::Result<()> {
    crate::outln!("{:<12}{}", "Address:", n.addr())?;
    crate::outln!("{:<12}{}", "Expanded:", subnet::expanded_v6(n.addr()))?;
    crate::outln!("{:<12}/{}", "Prefix:", n.prefix())?;
    crate::outln!("{:<12}{}/{}", "Network:", n.network(), n.prefix())?;
    crate::outln!("{:<12}{} - {}", "Range:", n.network(), n.last())?;
    crate::outln!("{:<12}2^{}", "Addresses:", n.size_bits())?;
    crate::outln!("{:<12}{}", "Type:", n.kind().describe())
}

fn v6_json(n: &Ipv6Net) -> Value {
    json!({
        "address": n.addr().to_string(),
        "expanded": subnet::expanded_v6(n.addr()),
        "prefix": n.prefix(),
        "network": n.network().to_string(),
        "first": n.network().to_string(),
        "last": n.last().to_string(),
        "addresses_log2": n.size_bits(),
        "kind": n.kind(),
    })
}

pub async fn resolve(args: &ResolveArgs) -> anyhow::Result<ExitCode> {
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    let all = sockit::nc::resolve::addresses(&args.name).await?;
    let addrs: Vec<IpAddr> = all
        .into_iter()
        .filter(|ip| family.admits(&std::net::SocketAddr::new(*ip, 0)))
        .collect();
    if args.json {
        json_line(&json!({
            "event": "addresses",
            "name": args.name,
            "ipv4": addrs.iter().filter(|a| a.is_ipv4()).map(ToString::to_string).collect::<Vec<_>>(),
            "ipv6": addrs.iter().filter(|a| a.is_ipv6()).map(ToString::to_string).collect::<Vec<_>>(),
        }))?;
    } else {
        for a in &addrs {
            crate::outln!("{a}")?;
        }
    }
    if addrs.is_empty() {
        eprintln!("sockit: '{}' has no address of that family", args.name);
        return Ok(ExitCode::from(exit::FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
