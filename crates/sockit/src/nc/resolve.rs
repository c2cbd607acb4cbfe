//! Names to addresses through the system resolver (`getaddrinfo`: hosts
//! file, DNS, whatever nsswitch says), as the seeds' `gethostbyname` did.

use std::net::{IpAddr, SocketAddr};

use super::Family;
use crate::Error;

/// Every address of `name` (or `name` itself when it is an address
/// literal), in the resolver's order, without duplicates.
pub async fn addresses(name: &str) -> Result<Vec<IpAddr>, Error> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let found = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|source| Error::Resolve {
            name: name.to_string(),
            source,
        })?;
    let mut out: Vec<IpAddr> = Vec::new();
    for addr in found {
        if !out.contains(&addr.ip()) {
            out.push(addr.ip());
        }
    }
    Ok(out)
}

/// Socket addresses to try for `host:port`, filtered by family. With
/// `numeric_only` (`-n`) a name is refused instead of looked up.
pub async fn socket_addrs(host: &str, port: u16, family: Family, numeric_only: bool) -> Result<Vec<SocketAddr>, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ips = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if numeric_only => {
            return Err(Error::Usage(format!(
                "'{host}' is not a numeric address (-n turns off name lookups)"
            )));
        }
        Err(_) => addresses(host).await?,
    };
    let addrs: Vec<SocketAddr> = ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .filter(|a| family.admits(a))
        .collect();
    if addrs.is_empty() {
        let family = match family {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
            Family::Any => "usable",
        };
        return Err(Error::NoAddress {
            name: host.to_string(),
            family,
        });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_localhost() {
        assert_eq!(
            addresses("127.0.0.1").await.unwrap(),
            ["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        let local = addresses("localhost").await.unwrap();
        assert!(local.iter().all(|ip| ip.is_loopback()), "{local:?}");
        let v6 = socket_addrs("[::1]", 80, Family::V6, true).await.unwrap();
        assert_eq!(v6, ["[::1]:80".parse::<SocketAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn family_and_numeric_rules() {
        assert!(matches!(
            socket_addrs("127.0.0.1", 1, Family::V6, false).await,
            Err(Error::NoAddress { .. })
        ));
        assert!(matches!(
            socket_addrs("localhost", 1, Family::Any, true).await,
            Err(Error::Usage(_))
        ));
    }
}
