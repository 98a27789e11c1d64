//! Where a request comes from, as lockouts, rate limits and connection limits count it.

use std::fmt;
use std::net::IpAddr;

/// An IPv4 address, or the /64 an IPv6 address is in. A host is usually given a whole IPv6 /64,
/// so counting single IPv6 addresses would let it walk through 2^64 of them, each with a fresh
/// allowance; counting the /64 gives it one. IPv4-mapped IPv6 addresses count as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourcePrefix {
    /// One IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6([u8; 8]),
}

impl From<IpAddr> for SourcePrefix {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => SourcePrefix::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourcePrefix::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    SourcePrefix::V6(prefix)
                }
            },
        }
    }
}

impl fmt::Display for SourcePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePrefix::V4(o) => write!(f, "{}.{}.{}.{}", o[0], o[1], o[2], o[3]),
            SourcePrefix::V6(p) => {
                let mut full = [0u8; 16];
                full[..8].copy_from_slice(p);
                write!(f, "{}/64", std::net::Ipv6Addr::from(full))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(SourcePrefix::from(a), SourcePrefix::from(b));
        assert_ne!(SourcePrefix::from(a), SourcePrefix::from(c));
        assert_eq!(SourcePrefix::from(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        let plain: IpAddr = "10.0.0.7".parse().expect("ip");
        assert_eq!(SourcePrefix::from(mapped), SourcePrefix::from(plain));
        assert_eq!(SourcePrefix::from(plain).to_string(), "10.0.0.7");
    }
}
