//! The SSRF guard for every outbound HTTP call (agent webhooks, enrichment providers).
//!
//! [`OutboundPolicy`] refuses private, loopback, link-local, cloud metadata and other non-public
//! addresses unless `ALERTGRAPH_OUTBOUND_ALLOW` allows them. [`OutboundPolicy::check_url`] checks
//! IP-literal URLs before a request; the clients it builds check host names in their resolver and
//! connect only to the addresses that passed, so no second lookup can answer differently.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// The most redirects [`OutboundPolicy::client`] follows for one request.
const MAX_REDIRECTS: usize = 5;

/// Which otherwise-refused destinations are allowed (`ALERTGRAPH_OUTBOUND_ALLOW`).
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<IpNet>,
    /// Host names allowed to resolve to any address (lowercase, no trailing dot).
    allowed_hosts: Vec<String>,
}

/// An `ALERTGRAPH_OUTBOUND_ALLOW` item that is neither an IP address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ALERTGRAPH_OUTBOUND_ALLOW: {item:?} is not a host name, an IP address or a CIDR network")]
pub struct InvalidAllowList {
    pub item: String,
}

/// Why an outbound URL or connection was refused. Messages name the host but never the whole URL,
/// which may carry a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// Not an http(s) URL with a host; the reason says what is wrong.
    #[error("invalid outbound URL: {0}")]
    InvalidUrl(String),
    /// The host is, or resolves only to, addresses the policy refuses.
    #[error(
        "{host:?} resolves to {address}, {} address; allow it with ALERTGRAPH_OUTBOUND_ALLOW",
        with_article(*.address)
    )]
    Refused { host: String, address: IpAddr },
}

impl OutboundPolicy {
    /// Parses a comma-separated list of host names, IPs or CIDRs
    /// (`"intel.corp.example, 127.0.0.1, 10.0.0.0/8, ::1"`); whitespace and empty items are
    /// ignored. An allowed host name may resolve to any address.
    pub fn parse(list: &str) -> Result<OutboundPolicy, InvalidAllowList> {
        let mut policy = OutboundPolicy::default();
        for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from));
            match net {
                Ok(net) => policy.allowed.push(net),
                Err(_) if is_host_name(item) => {
                    policy.allowed_hosts.push(item.trim_end_matches('.').to_ascii_lowercase())
                }
                Err(_) => return Err(InvalidAllowList { item: item.to_owned() }),
            }
        }
        Ok(policy)
    }

    /// This policy, also allowing `ip` (`up --demo` allows its own server's address).
    pub fn allowing(mut self, ip: IpAddr) -> OutboundPolicy {
        self.allowed.push(IpNet::from(ip));
        self
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.contains(&host)
    }

    /// Whether connecting to `ip` is allowed: it is public, or inside an allowed network.
    pub fn permits(&self, ip: IpAddr) -> bool {
        classify(ip).is_none()
            || self.allowed.iter().any(|net| net.contains(&ip) || net.contains(&ip.to_canonical()))
    }

    /// Checks a URL before any request: the scheme must be http or https and a host must be
    /// present. An IP-literal host (including `[::1]`) is checked here, because reqwest does not
    /// call the resolver for one; host names are checked at connect time by the resolver of
    /// [`client`](Self::client) and [`client_without_redirects`](Self::client_without_redirects).
    pub fn check_url(&self, url: &str) -> Result<Url, OutboundError> {
        let url = Url::parse(url)
            .map_err(|error| OutboundError::InvalidUrl(format!("not a valid URL: {error}")))?;
        self.check_parsed_url(&url)?;
        Ok(url)
    }

    /// A client that connects only to addresses this policy permits, and follows at most 5
    /// redirects, each checked with [`check_url`](Self::check_url). Proxies are not used: the
    /// guard must see the address actually connected to.
    ///
    /// Panics if `user_agent` is not a valid header value.
    pub fn client(&self, user_agent: &str) -> reqwest::Client {
        let policy = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` starts with the original URL, so it holds one more than the redirects.
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("stopped after {MAX_REDIRECTS} redirects"));
            }
            match policy.check_parsed_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        self.build_client(user_agent, redirects)
    }

    /// Like [`client`](Self::client) but never follows redirects (for webhooks): a 3xx answer is
    /// returned as the response.
    pub fn client_without_redirects(&self, user_agent: &str) -> reqwest::Client {
        self.build_client(user_agent, reqwest::redirect::Policy::none())
    }

    fn build_client(
        &self,
        user_agent: &str,
        redirects: reqwest::redirect::Policy,
    ) -> reqwest::Client {
        reqwest::Client::builder()
            .user_agent(user_agent)
            .no_proxy()
            .dns_resolver(GuardedResolver { policy: self.clone() })
            .redirect(redirects)
            .build()
            .expect("the user agent is a valid header value and the TLS backend initializes")
    }

    fn check_parsed_url(&self, url: &Url) -> Result<(), OutboundError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::InvalidUrl(format!(
                "scheme {:?} is not allowed; use http or https",
                url.scheme()
            )));
        }
        let ip = match url.host() {
            None => return Err(OutboundError::InvalidUrl("the URL has no host".to_owned())),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(name)) => match name.parse() {
                Ok(ip) => ip,
                // Checked by the resolver when connecting.
                Err(_) => return Ok(()),
            },
        };
        if self.permits(ip) {
            Ok(())
        } else {
            let host = url.host_str().unwrap_or_default().to_owned();
            Err(OutboundError::Refused { host, address: ip })
        }
    }
}

/// The guard's own error in a reqwest error's source chain, if the guard refused the request
/// (at connect time or on a redirect), so callers can say "refused by the SSRF guard".
pub fn refusal(error: &reqwest::Error) -> Option<OutboundError> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(refused) = error.downcast_ref::<OutboundError>() {
            return Some(refused.clone());
        }
        source = error.source();
    }
    None
}

/// The category of an address refused by default (`"private"`, `"loopback"`, `"link-local"`,
/// `"CGNAT"`, `"multicast"`, `"metadata"`, `"reserved"`, `"unspecified"`, `"broadcast"`), or
/// `None` for a public one. Documentation ranges count as public. IPv6 forms that embed an IPv4
/// address (mapped, compatible, NAT64, 6to4) get the category of the embedded address.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

/// Refused IPv4 networks; the first match names the category, so specific entries come first.
const REFUSED_V4: &[(Ipv4Net, &str)] = &[
    (v4(169, 254, 169, 254, 32), "metadata"), // AWS, GCP, Azure, OpenStack, ...
    (v4(100, 100, 100, 200, 32), "metadata"), // Alibaba Cloud
    (v4(168, 63, 129, 16, 32), "metadata"),   // Azure WireServer, a public address
    (v4(0, 0, 0, 0, 8), "unspecified"),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "CGNAT"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "reserved"), // IETF protocol assignments
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(198, 18, 0, 0, 15), "reserved"), // benchmarking, often used internally
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
];

/// Refused IPv6 networks, checked before the forms that embed an IPv4 address.
const REFUSED_V6: &[(Ipv6Net, &str)] = &[
    (v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128), "metadata"), // AWS, inside fc00::/7
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "private"), // deprecated site-local
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "private"),  // unique local
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), prefix)
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    REFUSED_V4.iter().find(|(net, _)| net.contains(&ip)).map(|(_, category)| *category)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some((_, category)) = REFUSED_V6.iter().find(|(net, _)| net.contains(&ip)) {
        return Some(category);
    }
    let low32 = Ipv4Addr::from_bits(ip.to_bits() as u32);
    let embedded = match ip.segments() {
        // IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d (deprecated), NAT64 64:ff9b::/96
        [0, 0, 0, 0, 0, 0xffff | 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => low32,
        // 6to4 2002:aabb:ccdd::/48
        [0x2002, high, low, ..] => Ipv4Addr::from_bits(u32::from(high) << 16 | u32::from(low)),
        _ => return None,
    };
    classify_v4(embedded)
}

fn with_article(address: IpAddr) -> String {
    match classify(address) {
        Some(category) if category.starts_with(['a', 'e', 'i', 'o', 'u']) => {
            format!("an {category}")
        }
        Some(category) => format!("a {category}"),
        None => "a refused".to_owned(),
    }
}

/// Resolves with the system resolver and keeps only the addresses the policy permits; reqwest
/// connects to exactly those.
struct GuardedResolver {
    policy: OutboundPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.allows_host(&host) {
                let all: Addrs = Box::new(resolved.into_iter());
                return Ok(all);
            }
            let (permitted, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.into_iter().partition(|address| policy.permits(address.ip()));
            if permitted.is_empty() {
                let Some(first) = refused.first() else {
                    return Err(format!("{host:?} resolves to no address").into());
                };
                return Err(Box::new(OutboundError::Refused { host, address: first.ip() }) as _);
            }
            if !refused.is_empty() {
                let refused: Vec<IpAddr> = refused.iter().map(SocketAddr::ip).collect();
                tracing::warn!(host, ?refused, "skipping addresses refused by the SSRF guard");
            }
            let permitted: Addrs = Box::new(permitted.into_iter());
            Ok(permitted)
        })
    }
}

/// Whether `item` reads as a DNS host name (letters, digits, hyphens and dots).
fn is_host_name(item: &str) -> bool {
    let name = item.trim_end_matches('.');
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn allowing(list: &str) -> OutboundPolicy {
        OutboundPolicy::parse(list).unwrap()
    }

    /// Every message in the error's source chain, outermost first.
    fn chain(error: &reqwest::Error) -> String {
        let mut messages = vec![error.to_string()];
        let mut source = error.source();
        while let Some(error) = source {
            messages.push(error.to_string());
            source = error.source();
        }
        messages.join(": ")
    }

    #[test]
    fn classifies_every_refused_category() {
        let cases = [
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("::1", "loopback"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("169.254.169.254", "metadata"),
            ("fd00:ec2::254", "metadata"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.254", "CGNAT"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("::", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "metadata"),
            ("2002:c0a8:0101::1", "private"),
        ];
        for (address, expected) in cases {
            assert_eq!(classify(ip(address)), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_and_documentation_addresses_are_not_classified() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "2606:4700::1111",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(classify(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn parse_accepts_ips_and_networks_and_ignores_blanks() {
        let policy = allowing(" 127.0.0.1, 10.0.0.0/8 ,, ::1 , fd00::/8,");
        assert_eq!(policy.allowed.len(), 4);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(policy.permits(ip("10.200.3.4")));
        assert!(policy.permits(ip("::1")));
        assert!(policy.permits(ip("fd00:ec2::254")));
        assert!(policy.permits(ip("::ffff:10.1.1.1")), "IPv4-mapped forms follow the IPv4 rule");
        assert!(!policy.permits(ip("192.168.0.1")));
        assert!(policy.permits(ip("8.8.8.8")));
        assert!(OutboundPolicy::parse("").unwrap().allowed.is_empty());
    }

    #[test]
    fn parse_errors_name_the_bad_item() {
        for bad in ["10.0.0.0/33", "host_name", "10.0.0", "::1/129", "-bad.example"] {
            let error = OutboundPolicy::parse(&format!("127.0.0.1, {bad} ,::1")).unwrap_err();
            assert_eq!(error.item, bad);
            assert_eq!(
                error.to_string(),
                format!(
                    "ALERTGRAPH_OUTBOUND_ALLOW: {bad:?} is not a host name, an IP address or a \
                     CIDR network"
                )
            );
        }
    }

    #[tokio::test]
    async fn an_allowed_host_name_may_resolve_to_a_private_address() {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
        let url = server.uri().replace("127.0.0.1", "localhost");
        let strict = OutboundPolicy::parse("intel.example").unwrap();
        assert!(strict.client("t").get(&url).send().await.is_err());
        let allowed = OutboundPolicy::parse("LocalHost., 10.0.0.0/8").unwrap();
        assert_eq!(allowed.client("t").get(&url).send().await.unwrap().status(), 200);
        // A host name allows names, not the addresses they happen to have.
        assert!(allowed.check_url(&server.uri()).is_err());
    }

    #[test]
    fn check_url_requires_http_and_a_host() {
        let policy = OutboundPolicy::default();
        for url in ["ftp://example.com/x", "file:///etc/passwd", "http://", "not a url"] {
            let error = policy.check_url(url).unwrap_err();
            assert!(matches!(error, OutboundError::InvalidUrl(_)), "{url}: {error:?}");
        }
        assert_eq!(
            policy.check_url("ftp://example.com/").unwrap_err().to_string(),
            "invalid outbound URL: scheme \"ftp\" is not allowed; use http or https"
        );
        let url = policy.check_url("https://example.com/hook?token=1").unwrap();
        assert_eq!(url.host_str(), Some("example.com"));
        assert!(policy.check_url("http://localhost:8080/").is_ok(), "names wait for the resolver");
        assert!(policy.check_url("http://198.51.100.7/").is_ok());
    }

    #[test]
    fn check_url_refuses_ip_literals_unless_allowed() {
        let policy = OutboundPolicy::default();
        assert_eq!(
            policy.check_url("http://127.0.0.1:8080/x"),
            Err(OutboundError::Refused { host: "127.0.0.1".into(), address: ip("127.0.0.1") })
        );
        assert_eq!(
            policy.check_url("http://[::1]/"),
            Err(OutboundError::Refused { host: "[::1]".into(), address: ip("::1") })
        );
        // The URL parser normalizes numeric forms, so they cannot slip past.
        assert!(policy.check_url("http://2130706433/").is_err());
        assert!(policy.check_url("http://0x7f.1/").is_err());
        assert!(policy.check_url("http://[::ffff:169.254.169.254]/").is_err());

        assert!(allowing("127.0.0.1/32").check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(allowing("::1").check_url("http://[::1]/").is_ok());
        assert!(allowing("::1").check_url("http://127.0.0.1/").is_err());
    }

    #[test]
    fn refusal_messages_name_host_address_and_category() {
        let error =
            OutboundPolicy::default().check_url("http://169.254.169.254/latest").unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"169.254.169.254\" resolves to 169.254.169.254, a metadata address; \
             allow it with ALERTGRAPH_OUTBOUND_ALLOW"
        );
        let error = OutboundPolicy::default().check_url("http://0.0.0.0/").unwrap_err();
        assert!(error.to_string().contains("0.0.0.0, an unspecified address"), "{error}");
    }

    #[tokio::test]
    async fn client_refuses_names_resolving_to_loopback_unless_allowed() {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
        let url = format!("http://localhost:{}/", server.address().port());

        let error =
            OutboundPolicy::default().client("alertgraph-test").get(&url).send().await.unwrap_err();
        match refusal(&error) {
            Some(OutboundError::Refused { host, address }) => {
                assert_eq!(host, "localhost");
                assert!(address == ip("127.0.0.1") || address == ip("::1"), "{address}");
            }
            other => panic!("expected a refusal, got {other:?} from {error:?}"),
        }
        let chain = chain(&error);
        assert!(chain.contains("a loopback address; allow it with"), "{chain}");
        assert!(server.received_requests().await.unwrap().is_empty());

        let policy = allowing("127.0.0.0/8,::1");
        let response = policy.client("alertgraph-test").get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let response = policy.client_without_redirects("alertgraph-test").get(&url).send().await;
        assert_eq!(response.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn client_refuses_a_redirect_to_a_refused_address() {
        let server = MockServer::start().await;
        let location = format!("http://[::1]:{}/", server.address().port());
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str()))
            .mount(&server)
            .await;
        let policy = allowing("127.0.0.1/32");
        let url = policy.check_url(&server.uri()).unwrap();

        let error = policy.client("alertgraph-test").get(url.clone()).send().await.unwrap_err();
        assert!(error.is_redirect(), "{error:?}");
        assert_eq!(
            refusal(&error),
            Some(OutboundError::Refused { host: "[::1]".into(), address: ip("::1") })
        );

        let response = policy.client_without_redirects("alertgraph-test").get(url).send().await;
        assert_eq!(response.unwrap().status(), 302, "webhook clients never follow redirects");
    }

    #[tokio::test]
    async fn client_follows_at_most_five_permitted_redirects() {
        let server = MockServer::start().await;
        Mock::given(path("/loop"))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", "/loop"))
            .mount(&server)
            .await;
        Mock::given(path("/start"))
            .respond_with(ResponseTemplate::new(307).insert_header("Location", "/end"))
            .mount(&server)
            .await;
        Mock::given(path("/end")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
        let client = allowing("127.0.0.1").client("alertgraph-test");

        let response = client.get(format!("{}/start", server.uri())).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.url().path(), "/end");

        let error = client.get(format!("{}/loop", server.uri())).send().await.unwrap_err();
        assert!(chain(&error).contains("stopped after 5 redirects"), "{}", chain(&error));
        assert_eq!(refusal(&error), None, "a redirect loop is not an SSRF refusal");
        let loops = server.received_requests().await.unwrap();
        assert_eq!(loops.iter().filter(|r| r.url.path() == "/loop").count(), 1 + MAX_REDIRECTS);
    }
}

/// A client with the policy it was built with, for callers whose URLs come from configuration:
/// reqwest never asks the resolver about an IP-literal host, so [`Outbound::check`] must be
/// called on every URL before it is requested (redirects are checked by the client itself).
#[derive(Debug, Clone)]
pub struct Outbound {
    pub client: reqwest::Client,
    pub policy: OutboundPolicy,
}

impl Outbound {
    /// A redirect-following client under `policy`; see [`OutboundPolicy::client`].
    pub fn new(policy: OutboundPolicy, user_agent: &str) -> Outbound {
        Outbound { client: policy.client(user_agent), policy }
    }

    /// Checks a URL about to be requested; see [`OutboundPolicy::check_url`].
    pub fn check(&self, url: &Url) -> Result<(), OutboundError> {
        self.policy.check_url(url.as_str()).map(|_| ())
    }
}
