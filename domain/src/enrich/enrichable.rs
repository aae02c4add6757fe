//! Which indicators are worth asking a provider about (SPEC §3). Private, loopback,
//! link-local, CGNAT, multicast, unspecified and broadcast addresses, and names under internal
//! suffixes, mean nothing to an internet-facing threat feed and would leak internal topology to
//! it; they are stored and linked but never sent. Documentation ranges count as public so tests
//! and demos can use them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::alert::IndicatorType;
use crate::indicator::Indicator;

/// Suffixes of names that only resolve inside an organization (or nowhere).
const INTERNAL_SUFFIXES: &[&str] =
    &["local", "internal", "corp", "lan", "home.arpa", "localhost", "test", "invalid"];

pub fn is_enrichable(indicator: &Indicator) -> bool {
    match indicator.kind {
        IndicatorType::Ip => indicator.value.parse::<IpAddr>().is_ok_and(is_public),
        IndicatorType::Domain => !is_internal_name(&indicator.value),
        _ => true,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || cgnat
        || a == 0)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

fn is_internal_name(name: &str) -> bool {
    INTERNAL_SUFFIXES.iter().any(|suffix| {
        name == *suffix || name.strip_suffix(suffix).is_some_and(|rest| rest.ends_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indicator(kind: IndicatorType, value: &str) -> Indicator {
        Indicator { kind, value: value.to_owned() }
    }

    #[test]
    fn only_public_addresses_are_enrichable_and_documentation_ranges_count_as_public() {
        for public in [
            "185.220.101.34",
            "203.0.113.7",
            "198.51.100.42",
            "192.0.2.1",
            "2001:db8::1",
            "2606:4700::1111",
        ] {
            assert!(is_enrichable(&indicator(IndicatorType::Ip, public)), "{public}");
        }
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.10",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_enrichable(&indicator(IndicatorType::Ip, private)), "{private}");
        }
    }

    #[test]
    fn names_under_internal_suffixes_are_not_enrichable() {
        for internal in
            ["printer.local", "db.internal", "fs01.corp", "nas.home.arpa", "x.test", "localhost"]
        {
            assert!(!is_enrichable(&indicator(IndicatorType::Domain, internal)), "{internal}");
        }
        for public in ["evil.example.com", "corp.example.com", "mycorp.com", "contest.io"] {
            assert!(is_enrichable(&indicator(IndicatorType::Domain, public)), "{public}");
        }
        assert!(is_enrichable(&indicator(
            IndicatorType::HashMd5,
            "44d88612fea8a8f36de82e1278abb02f"
        )));
    }
}
