//! The client's address, for the limits counted per address (sign-in attempts, invalid
//! credentials). Behind a reverse proxy the TCP peer is the proxy, so every client would share
//! one budget; `X-Forwarded-For` names the real client, but anyone can send that header. It is
//! therefore read only when the peer is a trusted proxy (`THINKBANK_TRUSTED_PROXIES`), from the
//! right: each trusted hop appended the address it saw, so the rightmost address that is not
//! a trusted proxy is the client (the entries left of it are the client's own claims).

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use axum::http::HeaderMap;

/// An address block such as `10.0.0.0/8`, `fd00::/8` or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or CIDR block"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}' has an invalid prefix length (0-{max})"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The trusted reverse proxies: a comma-separated list of addresses and blocks (empty: none,
/// so an empty `THINKBANK_TRUSTED_PROXIES` is the same as an unset one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(address))
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`[::1]:80`, `1.2.3.4:5`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` hop that is not one. An entry that is not an address ends the walk at
/// the last trusted hop (a proxy that forwards garbage is counted as the client).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.contains(ip);
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                "x-forwarded-for",
                v.parse().unwrap_or_else(|_| unreachable!()),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| unreachable!())
    }

    fn proxies(list: &str) -> TrustedProxies {
        list.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        let one: Cidr = "fd00::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("fd00::1")) && !one.contains(ip("fd00::2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies_and_from_the_right() {
        let trusted = proxies(" 10.0.0.0/8 ,");
        // An untrusted peer's header is its own claim.
        let spoofed = headers(&["1.2.3.4"]);
        assert_eq!(
            client_ip(ip("203.0.113.5"), &spoofed, &trusted),
            ip("203.0.113.5")
        );
        // Through one proxy: the address it appended.
        let one = headers(&["198.51.100.7"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &one, &trusted),
            ip("198.51.100.7")
        );
        // A client prepending a fake address does not escape its bucket.
        let prepended = headers(&["1.2.3.4, 198.51.100.7"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &prepended, &trusted),
            ip("198.51.100.7")
        );
        // Two proxies, split across header lines, with ports.
        let chained = headers(&["9.9.9.9, 198.51.100.7:5555", "10.0.0.3"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &chained, &trusted),
            ip("198.51.100.7")
        );
        // Garbage ends the walk at the last trusted hop.
        let garbage = headers(&["198.51.100.7, not-an-address"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &garbage, &trusted),
            ip("10.0.0.2")
        );
        // No trusted proxies configured: the peer, always.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &one, &proxies("")),
            ip("10.0.0.2")
        );
        assert!("10.0.0.0/8,bogus".parse::<TrustedProxies>().is_err());
    }
}
