//! The client's address. Behind a reverse proxy every connection comes from the proxy, so
//! rate limits keyed on the peer address would put every guest in one bucket. The
//! forwarding header is believed only from a trusted peer, and read from the right: each
//! trusted hop vouches for the hop before it, and the first untrusted hop is the client.
//! Anything to its left was written by the client and can be forged.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest};
use ipnet::IpNet;

/// Which header the trusted proxies write. Only one is read: a proxy that appends to one
/// passes the other through from the client untouched, forgeries included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(ForwardedHeader::XForwardedFor),
            "forwarded" => Some(ForwardedHeader::Forwarded),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The proxies whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

/// CIDR blocks, or single addresses (a /32 or /128).
pub fn parse_networks(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    format!("{text:?} is not a CIDR block or address such as 10.0.0.0/8 or ::1")
                })
        })
        .collect()
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>, header: ForwardedHeader) -> Self {
        TrustedProxies { networks, header }
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a connection from `peer` carrying these headers: the peer
    /// unless it is trusted; otherwise the first untrusted hop from the right, or the peer
    /// when a hop that has to be read does not parse.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeader::Forwarded => forwarded(headers),
        };
        let Some(hops) = hops else {
            return peer;
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop.as_deref().and_then(node_ip) {
                Some(ip) => client = ip.to_canonical(),
                None => return peer,
            }
        }
        client
    }

    pub fn header_name(&self) -> &'static str {
        self.header.name()
    }
}

/// Every value of the header, in order, as one list (proxies may add a line each).
fn header_list(headers: &HeaderMap, name: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    for value in headers.get_all(name) {
        let text = value.to_str().ok()?;
        items.extend(text.split(',').map(|s| s.trim().to_string()));
    }
    Some(items)
}

/// The hops of `X-Forwarded-For`; `None` when a value is not text.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<String>>> {
    Some(
        header_list(headers, "x-forwarded-for")?
            .into_iter()
            .map(Some)
            .collect(),
    )
}

/// The `for=` of each element of `Forwarded`; an element without one is a hop that does not
/// parse.
fn forwarded(headers: &HeaderMap) -> Option<Vec<Option<String>>> {
    Some(
        header_list(headers, "forwarded")?
            .into_iter()
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| value.trim().to_string())
                })
            })
            .collect(),
    )
}

/// An address from a hop: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`,
/// quoted or not. `unknown` and obfuscated names (RFC 7239 §6) are not addresses.
fn node_ip(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The client's address of a request, as the rate limits and logs should see it; `None`
/// when the connection has no peer address (a test request).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(match req.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => proxies.client(peer, req.headers()),
        None => peer.to_canonical(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn proxies(list: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        TrustedProxies::new(parse_networks(&list).unwrap(), header)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(p.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        let none = proxies(&[], ForwardedHeader::XForwardedFor);
        assert_eq!(none.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let p = proxies(
            &["10.0.0.0/8", "192.168.1.1"],
            ForwardedHeader::XForwardedFor,
        );
        // The client forged the first two entries; the proxies appended the rest.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 7.7.7.7"),
            ("x-forwarded-for", "198.51.100.7, 192.168.1.1"),
        ]);
        assert_eq!(p.client(ip("10.1.2.3"), &h), ip("198.51.100.7"));
        // Only proxies all the way: the leftmost is the best we know.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 192.168.1.1")]);
        assert_eq!(p.client(ip("10.1.2.3"), &h), ip("10.9.9.9"));
        // No header: the proxy itself made the request.
        assert_eq!(p.client(ip("10.1.2.3"), &headers(&[])), ip("10.1.2.3"));
    }

    #[test]
    fn malformed_hops_fall_back_to_the_peer() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        for bad in ["not-an-ip", "", "1.2.3", "[::1", "unknown"] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{bad:?}");
        }
        // Garbage left of the client is never read.
        let h = headers(&[("x-forwarded-for", "garbage, 198.51.100.7")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let p = proxies(&["10.0.0.0/8", "::1"], ForwardedHeader::XForwardedFor);
        let h = headers(&[("x-forwarded-for", "[2001:db8::5]:4711")]);
        assert_eq!(p.client(ip("::1"), &h), ip("2001:db8::5"));
        let h = headers(&[("x-forwarded-for", "198.51.100.7:5000")]);
        assert_eq!(p.client(ip("::ffff:10.0.0.1"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_reads_for_and_ignores_x_forwarded_for() {
        let p = proxies(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                "for=5.5.5.5, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.0.2;by=10.0.0.1",
            ),
        ]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "proto=https")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn networks_parse_or_name_the_bad_entry() {
        assert!(parse_networks(&["10.0.0.0/8".into(), "::1".into(), "fd00::/8".into()]).is_ok());
        let err = parse_networks(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(ForwardedHeader::parse("X-Forwarded-For").is_some());
        assert!(ForwardedHeader::parse("x-real-ip").is_none());
    }
}
