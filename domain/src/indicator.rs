//! Indicator values: the one place that decides what a valid `ip`, `domain`, `url`, hash,
//! `email` or `account` looks like and how it is spelled once stored.
//!
//! Every extraction pass (source mappings, system and user field mappings) funnels raw text
//! through [`clean`], so two alerts that mention the same observable in different spellings
//! (`EVIL[.]example.com.` and `evil.example.com`) link to the same global indicator row, which
//! is keyed by `(type, value)` (SPEC §2).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::alert::IndicatorType;

/// An observable in its normalized spelling, ready to be deduplicated by `(kind, value)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Indicator {
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    pub value: String,
}

impl fmt::Display for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// Defanged spellings and what they stand for. Matched without regard to ASCII case, so
/// `[DOT]` and `[At]` are refanged too. Each pattern carries its brackets, which keeps plain
/// text such as "dot" or "at" untouched.
const DEFANGED: &[(&str, &str)] = &[
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[dot]", "."),
    ("(dot)", "."),
    ("[:]", ":"),
    ("[://]", "://"),
    ("[@]", "@"),
    ("[at]", "@"),
];

/// Undoes the usual ways analysts and threat feeds defang indicators so they can't be clicked:
/// `hxxp`/`hxxps` schemes and bracketed dots, colons and at signs.
///
/// Borrows the input when there is nothing to refang, which is the common case.
pub fn refang(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut refanged = String::new();
    // Everything before `copied` is already in `refanged`; only the output of a replacement
    // moves it, so an untouched input never allocates.
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Some((matched_len, replacement)) = defanged_at(text, at) else {
            at += 1;
            continue;
        };
        refanged.push_str(&text[copied..at]);
        refanged.push_str(replacement);
        at += matched_len;
        copied = at;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    refanged.push_str(&text[copied..]);
    Cow::Owned(refanged)
}

/// The defanged token that starts at byte `at`, as its length and its replacement.
///
/// Every pattern starts with an ASCII byte, so a match always begins and ends on a character
/// boundary and the caller may slice `text` there.
fn defanged_at(text: &str, at: usize) -> Option<(usize, &'static str)> {
    if let Some(scheme) = defanged_scheme(text, at) {
        return Some(scheme);
    }
    let rest = &text.as_bytes()[at..];
    DEFANGED
        .iter()
        .find(|(pattern, _)| {
            rest.len() >= pattern.len()
                && rest[..pattern.len()].eq_ignore_ascii_case(pattern.as_bytes())
        })
        .map(|(pattern, replacement)| (pattern.len(), *replacement))
}

/// Recognizes `hxxp` or `hxxps` (any case) used as a URL scheme. It must start a word and be
/// followed by a colon (plain or bracketed), so words that merely contain "hxxp" are left alone.
fn defanged_scheme(text: &str, at: usize) -> Option<(usize, &'static str)> {
    let bytes = text.as_bytes();
    let starts_word = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
    let rest = &bytes[at..];
    if !starts_word || rest.len() < 5 || !rest[..4].eq_ignore_ascii_case(b"hxxp") {
        return None;
    }
    let (len, replacement) =
        if rest[4].eq_ignore_ascii_case(&b's') { (5, "https") } else { (4, "http") };
    matches!(rest.get(len), Some(b':' | b'[')).then_some((len, replacement))
}

/// Normalizes `raw` as an indicator of type `kind`, or returns `None` when it isn't one.
///
/// The text is trimmed and refanged first. Hashes are typed by their length, not by `kind`:
/// sources routinely put a SHA-1 in a field named after MD5, and the length is the only
/// reliable signal. A hex value whose length names no algorithm is kept under `kind` when it is
/// within one byte of that algorithm's length: SIEM exports do truncate digests, and an analyst
/// would rather see the damaged value than lose it. Anything further off is refused.
pub fn clean(kind: IndicatorType, raw: &str) -> Option<Indicator> {
    let refanged = refang(raw.trim());
    let text = refanged.trim();
    let (kind, value) = match kind {
        IndicatorType::Ip => (kind, clean_ip(text)?),
        IndicatorType::Domain => (kind, clean_domain(text)?),
        IndicatorType::Url => (kind, clean_url(text)?),
        IndicatorType::HashMd5 | IndicatorType::HashSha1 | IndicatorType::HashSha256 => {
            clean_hash(kind, text)?
        }
        IndicatorType::Email => (kind, clean_email(text)?),
        IndicatorType::Account => (kind, clean_account(text)?),
    };
    Some(Indicator { kind, value })
}

/// Reads a host field that may hold either an address or a name, as Splunk's `src` and `dest`
/// do.
pub fn classify_host(raw: &str) -> Option<Indicator> {
    clean(IndicatorType::Ip, raw).or_else(|| clean(IndicatorType::Domain, raw))
}

/// Writes an address the way `std` prints it: IPv6 compressed and lowercase. IPv4-mapped IPv6
/// addresses become plain IPv4 so that both spellings of one host meet in one row.
fn clean_ip(text: &str) -> Option<String> {
    let unbracketed =
        text.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')).unwrap_or(text);
    let address: IpAddr = unbracketed.parse().ok()?;
    Some(address.to_canonical().to_string())
}

/// Checks a DNS name and returns it lowercased without its trailing root dot.
///
/// Single-label names (`WORKSTATION12`) are refused: without a dot they can't be resolved or
/// looked up by a reputation provider. Underscores and non-ASCII letters are allowed because
/// real DNS data (SRV names, IDNs in Unicode form) contains them.
fn clean_domain(text: &str) -> Option<String> {
    let lowered = text.to_lowercase();
    let name = lowered.trim_end_matches('.');
    let valid_label = |label: &str| {
        (1..=63).contains(&label.chars().count())
            && label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    let has_dot = name.contains('.');
    let fits = name.chars().count() <= 253;
    // No top-level domain is all digits, and this also keeps IP addresses and version
    // strings such as `10.0.22631` out of the domain type.
    let numeric_tld =
        name.rsplit('.').next().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    let is_ip = name.parse::<IpAddr>().is_ok();
    (has_dot && fits && !numeric_tld && !is_ip && name.split('.').all(valid_label))
        .then(|| name.to_owned())
}

/// Checks a `scheme://host…` URL and lowercases its scheme and host, which are case-insensitive.
/// Everything else is kept as written: paths and queries are case-sensitive, and adding or
/// removing a slash would make the value differ from what the alert and the feeds show.
fn clean_url(text: &str) -> Option<String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (scheme, rest) = text.split_once("://")?;
    let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The user info keeps its case; only the host (with its port) is case-insensitive.
    let (user_info, host) = match authority.rsplit_once('@') {
        Some((user_info, host)) => (Some(user_info), host),
        None => (None, authority),
    };
    // A bracketed IPv6 host holds colons of its own, so the port is cut after the bracket.
    let host_name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    if host_name.is_empty() {
        return None;
    }
    let mut url = scheme.to_ascii_lowercase();
    url.push_str("://");
    if let Some(user_info) = user_info {
        url.push_str(user_info);
        url.push('@');
    }
    url.push_str(&host.to_lowercase());
    url.push_str(tail);
    Some(url)
}

/// Lowercases a hex digest and types it by its length.
fn clean_hash(declared: IndicatorType, text: &str) -> Option<(IndicatorType, String)> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let kind = match text.len() {
        32 => IndicatorType::HashMd5,
        40 => IndicatorType::HashSha1,
        64 => IndicatorType::HashSha256,
        length if hex_length(declared).abs_diff(length) <= 2 => declared,
        _ => return None,
    };
    Some((kind, text.to_ascii_lowercase()))
}

/// Hex digits in a digest of each hash type.
fn hex_length(kind: IndicatorType) -> usize {
    match kind {
        IndicatorType::HashMd5 => 32,
        IndicatorType::HashSha1 => 40,
        _ => 64,
    }
}

/// Checks an address of the form `local@domain` and lowercases it whole. Mail systems treat the
/// local part case-insensitively in practice, and one spelling per mailbox keeps it one row.
fn clean_email(text: &str) -> Option<String> {
    let lowered = text.to_lowercase();
    let (local, domain) = lowered.split_once('@')?;
    let plain_local = !local.is_empty()
        && !local.chars().any(|c| c.is_whitespace() || "@<>()[],;:\"".contains(c));
    if !plain_local {
        return None;
    }
    Some(format!("{local}@{}", clean_domain(domain)?))
}

/// Words that SIEMs put in a user field when they have no user; storing them would link
/// unrelated alerts through a fake account.
const ACCOUNT_PLACEHOLDERS: &[&str] = &["-", "n/a", "none", "null", "unknown"];

/// Keeps an account name as written: `CORP\d.kowalski`, `SYSTEM` and a UPN are all identities
/// whose case the directory that issued them decides.
fn clean_account(text: &str) -> Option<String> {
    let placeholder = ACCOUNT_PLACEHOLDERS.iter().any(|word| text.eq_ignore_ascii_case(word));
    (!text.is_empty() && !placeholder).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(kind: IndicatorType, raw: &str) -> Option<(IndicatorType, String)> {
        clean(kind, raw).map(|indicator| (indicator.kind, indicator.value))
    }

    fn cleaned_value(kind: IndicatorType, raw: &str) -> Option<String> {
        clean(kind, raw).map(|indicator| indicator.value)
    }

    #[test]
    fn refang_restores_every_defanged_style() {
        let cases = [
            ("hxxp://evil[.]example[.]com/payload", "http://evil.example.com/payload"),
            ("hxxps://cdn-update(.)example(.)net/a.ps1", "https://cdn-update.example.net/a.ps1"),
            ("hXXps://a{.}example[dot]org", "https://a.example.org"),
            ("HXXP[://]evil(dot)com", "http://evil.com"),
            ("hxxp[:]//evil[DOT]com", "http://evil.com"),
            ("198.51.100[.]23", "198.51.100.23"),
            ("j.doe[@]example[.]com", "j.doe@example.com"),
            ("j.doe[at]example[.]com", "j.doe@example.com"),
        ];
        for (defanged, expected) in cases {
            assert_eq!(refang(defanged), expected, "refanging {defanged}");
        }
    }

    #[test]
    fn refang_borrows_text_that_has_nothing_to_refang() {
        assert!(matches!(refang("https://example.com/a?b=c"), Cow::Borrowed(_)));
    }

    #[test]
    fn refang_leaves_words_that_only_contain_hxxp_alone() {
        assert_eq!(refang("the hxxp protocol and shxxp://x"), "the hxxp protocol and shxxp://x");
        assert_eq!(refang("dot at (at) {dot}"), "dot at (at) {dot}");
    }

    #[test]
    fn refang_keeps_non_ascii_text_intact() {
        assert_eq!(refang("bücher[.]example — ok"), "bücher.example — ok");
    }

    #[test]
    fn ips_are_written_canonically() {
        assert_eq!(cleaned_value(IndicatorType::Ip, " 10.0.0.1 "), Some("10.0.0.1".into()));
        assert_eq!(
            cleaned_value(IndicatorType::Ip, "FE80:0000::1A2B:3C4D:5E6F:7890"),
            Some("fe80::1a2b:3c4d:5e6f:7890".into())
        );
        assert_eq!(cleaned_value(IndicatorType::Ip, "[2001:db8::1]"), Some("2001:db8::1".into()));
        assert_eq!(cleaned_value(IndicatorType::Ip, "::ffff:192.0.2.1"), Some("192.0.2.1".into()));
        assert_eq!(cleaned_value(IndicatorType::Ip, "203.0.113[.]7"), Some("203.0.113.7".into()));
    }

    #[test]
    fn text_that_is_not_an_address_is_not_an_ip() {
        for raw in
            ["", "unknown", "10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.1:443", "host.example.com"]
        {
            assert_eq!(clean(IndicatorType::Ip, raw), None, "{raw:?}");
        }
    }

    #[test]
    fn domains_are_lowercased_without_trailing_dots() {
        assert_eq!(
            cleaned_value(IndicatorType::Domain, "Payroll-Portal.Example.NET."),
            Some("payroll-portal.example.net".into())
        );
        assert_eq!(
            cleaned_value(IndicatorType::Domain, "evil[.]example[.]com"),
            Some("evil.example.com".into())
        );
        assert_eq!(
            cleaned_value(IndicatorType::Domain, "_ldap._tcp.corp.example"),
            Some("_ldap._tcp.corp.example".into())
        );
        assert_eq!(
            cleaned_value(IndicatorType::Domain, "Bücher.Example"),
            Some("bücher.example".into())
        );
    }

    #[test]
    fn names_that_break_dns_rules_are_not_domains() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        for raw in [
            "WORKSTATION12",
            "10.0.0.1",
            "10.0.22631",
            "a..example.com",
            "bad host.example.com",
            "evil.example.com/path",
            "user@example.com",
            &long_label,
            &long_name,
        ] {
            assert_eq!(clean(IndicatorType::Domain, raw), None, "{raw:?}");
        }
        assert!(clean(IndicatorType::Domain, &format!("{}.com", "a".repeat(63))).is_some());
    }

    #[test]
    fn urls_lowercase_only_scheme_and_host() {
        let cases = [
            ("https://portal.azure.com", "https://portal.azure.com"),
            (
                "HTTPS://Evil.Example.COM/Payload/Stage2.PS1?Q=A",
                "https://evil.example.com/Payload/Stage2.PS1?Q=A",
            ),
            ("hxxp://evil[.]example[.]com/payload", "http://evil.example.com/payload"),
            ("http://User:Pw@Host.Example:8080/x", "http://User:Pw@host.example:8080/x"),
            ("http://[FE80::1]:80/", "http://[fe80::1]:80/"),
            (
                "https://a.example.net/sso?user=j.martinez%40contoso.com",
                "https://a.example.net/sso?user=j.martinez%40contoso.com",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(cleaned_value(IndicatorType::Url, raw), Some(expected.into()), "{raw:?}");
        }
    }

    #[test]
    fn urls_without_a_scheme_or_host_are_refused() {
        for raw in [
            "evil.example.com/payload",
            "https:///path",
            "https://",
            "1http://x.com",
            "http://a b.com/",
            "://x.com",
        ] {
            assert_eq!(clean(IndicatorType::Url, raw), None, "{raw:?}");
        }
    }

    #[test]
    fn hashes_are_lowercased_and_typed_by_length() {
        let md5 = "4FC0ADCB33AA2E2D61453E236691E8AE";
        let sha1 = "3395856CE81F2B7382DEE72602F798B642F14140";
        let sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
        assert_eq!(
            cleaned(IndicatorType::HashSha256, md5),
            Some((IndicatorType::HashMd5, md5.to_lowercase()))
        );
        assert_eq!(
            cleaned(IndicatorType::HashMd5, sha1),
            Some((IndicatorType::HashSha1, sha1.to_lowercase()))
        );
        assert_eq!(
            cleaned(IndicatorType::HashSha1, sha256),
            Some((IndicatorType::HashSha256, sha256.into()))
        );
    }

    #[test]
    fn digests_of_unknown_length_or_with_non_hex_are_refused() {
        let not_hex = format!("{}g", "a".repeat(31));
        for raw in ["abc", &"a".repeat(36), &not_hex, ""] {
            assert_eq!(clean(IndicatorType::HashMd5, raw), None, "{raw:?}");
        }
    }

    #[test]
    fn a_digest_truncated_by_a_byte_keeps_its_declared_type() {
        let truncated = "B94F6F125C79E3A5FFAA826F584C10D52ADA669E6762051B826B55776D05A8A";
        assert_eq!(
            cleaned(IndicatorType::HashSha256, truncated),
            Some((IndicatorType::HashSha256, truncated.to_lowercase()))
        );
        assert_eq!(
            clean(IndicatorType::HashMd5, &"a".repeat(33)).map(|i| i.kind),
            Some(IndicatorType::HashMd5)
        );
    }

    #[test]
    fn emails_are_lowercased_whole() {
        assert_eq!(
            cleaned_value(IndicatorType::Email, "HR.Payroll.Desk@Mail.Example.ORG."),
            Some("hr.payroll.desk@mail.example.org".into())
        );
        assert_eq!(
            cleaned_value(IndicatorType::Email, "j.doe[at]example[.]com"),
            Some("j.doe@example.com".into())
        );
    }

    #[test]
    fn emails_need_one_at_a_local_part_and_a_valid_domain() {
        for raw in [
            "jdoe",
            "@example.com",
            "a@b@example.com",
            "jdoe@localhost",
            "j doe@example.com",
            "jdoe@10.0.0.1",
        ] {
            assert_eq!(clean(IndicatorType::Email, raw), None, "{raw:?}");
        }
    }

    #[test]
    fn accounts_keep_their_case() {
        assert_eq!(cleaned_value(IndicatorType::Account, " SYSTEM "), Some("SYSTEM".into()));
        assert_eq!(
            cleaned_value(IndicatorType::Account, r"CORP\d.kowalski"),
            Some(r"CORP\d.kowalski".into())
        );
        assert_eq!(
            cleaned_value(IndicatorType::Account, "R.Chen@Contoso.com"),
            Some("R.Chen@Contoso.com".into())
        );
    }

    #[test]
    fn empty_and_placeholder_accounts_are_refused() {
        for raw in ["", "   ", "-", "unknown", "N/A"] {
            assert_eq!(clean(IndicatorType::Account, raw), None, "{raw:?}");
        }
    }

    #[test]
    fn hosts_are_classified_as_ip_or_domain() {
        assert_eq!(
            cleaned_value(IndicatorType::Ip, "192.168.1.10"),
            classify_host("192.168.1.10").map(|i| i.value)
        );
        assert_eq!(classify_host("192.168.1.10").map(|i| i.kind), Some(IndicatorType::Ip));
        assert_eq!(
            classify_host("evil[.]example[.]com"),
            Some(Indicator { kind: IndicatorType::Domain, value: "evil.example.com".into() })
        );
        assert_eq!(classify_host("FILESERVER03"), None);
    }

    #[test]
    fn indicators_serialize_with_a_type_field() {
        let indicator = Indicator {
            kind: IndicatorType::HashMd5,
            value: "d41d8cd98f00b204e9800998ecf8427e".into(),
        };
        assert_eq!(
            serde_json::to_value(&indicator).ok(),
            Some(
                serde_json::json!({"type": "hash_md5", "value": "d41d8cd98f00b204e9800998ecf8427e"})
            )
        );
        assert_eq!(indicator.to_string(), "hash_md5:d41d8cd98f00b204e9800998ecf8427e");
    }
}
