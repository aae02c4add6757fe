//! Field mappings: dot paths whose values are indicators of a given type.
//!
//! They are the second and third extraction passes of SPEC §2. The system mappings below are
//! the plain-path half of each source mapping; user-defined mappings, stored per source, use
//! the same shape so one resolver serves both. Anything a path can't express (Sentinel
//! entities typed by a sibling field, Splunk's host fallbacks, generic explicit indicators)
//! is the source normalizer's first pass instead.

use serde::{Deserialize, Serialize};

use crate::alert::{IndicatorType, Source};

/// What a mapping's path is resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MappingTarget {
    /// The payload as the source sent it.
    Raw,
    /// The normalized alert, as [`super::normalized_view`] shows it.
    Normalized,
}

/// Reads the values at `path` as indicators of `indicator_type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldMapping {
    /// The source whose alerts this applies to; `None` applies it to every source.
    pub source: Option<Source>,
    pub target: MappingTarget,
    pub path: String,
    pub indicator_type: IndicatorType,
}

impl FieldMapping {
    /// [`SYSTEM_MAPPINGS`] as field mappings on the raw payload, ready to be followed by a
    /// tenant's own mappings.
    pub fn system() -> Vec<FieldMapping> {
        SYSTEM_MAPPINGS
            .iter()
            .map(|&(source, path, indicator_type)| FieldMapping {
                source: Some(source),
                target: MappingTarget::Raw,
                path: path.to_owned(),
                indicator_type,
            })
            .collect()
    }
}

/// The plain dot paths of SPEC §2's source mappings, all read from the raw payload.
///
/// Elastic's `threat.enrichments` holds what an indicator-match rule matched, and
/// `threat.indicator` what a threat-intel document describes; both are ECS.
pub const SYSTEM_MAPPINGS: &[(Source, &str, IndicatorType)] = {
    use IndicatorType::{Account, Domain, Email, HashMd5, HashSha1, HashSha256, Ip, Url};
    use Source::{Elastic, Generic, Splunk};
    &[
        (Elastic, "source.ip", Ip),
        (Elastic, "destination.ip", Ip),
        (Elastic, "host.ip", Ip),
        (Elastic, "destination.domain", Domain),
        (Elastic, "dns.question.name", Domain),
        (Elastic, "url.full", Url),
        (Elastic, "url.domain", Domain),
        (Elastic, "file.hash.md5", HashMd5),
        (Elastic, "file.hash.sha1", HashSha1),
        (Elastic, "file.hash.sha256", HashSha256),
        (Elastic, "process.hash.md5", HashMd5),
        (Elastic, "process.hash.sha1", HashSha1),
        (Elastic, "process.hash.sha256", HashSha256),
        (Elastic, "user.email", Email),
        (Elastic, "user.name", Account),
        (Elastic, "threat.indicator.ip", Ip),
        (Elastic, "threat.indicator.domain", Domain),
        (Elastic, "threat.indicator.url.full", Url),
        (Elastic, "threat.indicator.url.domain", Domain),
        (Elastic, "threat.indicator.file.hash.md5", HashMd5),
        (Elastic, "threat.indicator.file.hash.sha1", HashSha1),
        (Elastic, "threat.indicator.file.hash.sha256", HashSha256),
        (Elastic, "threat.indicator.email.address", Email),
        (Elastic, "threat.enrichments.indicator.ip", Ip),
        (Elastic, "threat.enrichments.indicator.domain", Domain),
        (Elastic, "threat.enrichments.indicator.url.full", Url),
        (Elastic, "threat.enrichments.indicator.url.domain", Domain),
        (Elastic, "threat.enrichments.indicator.file.hash.md5", HashMd5),
        (Elastic, "threat.enrichments.indicator.file.hash.sha1", HashSha1),
        (Elastic, "threat.enrichments.indicator.file.hash.sha256", HashSha256),
        (Elastic, "threat.enrichments.indicator.email.address", Email),
        (Splunk, "result.src_ip", Ip),
        (Splunk, "result.dest_ip", Ip),
        (Splunk, "result.user", Account),
        (Splunk, "result.url", Url),
        (Splunk, "result.domain", Domain),
        (Splunk, "result.md5", HashMd5),
        (Splunk, "result.sha1", HashSha1),
        (Splunk, "result.sha256", HashSha256),
        (Generic, "src_ip", Ip),
        (Generic, "dest_ip", Ip),
        (Generic, "ip", Ip),
        (Generic, "domain", Domain),
        (Generic, "hostname", Domain),
        (Generic, "url", Url),
        (Generic, "user", Account),
        (Generic, "username", Account),
        (Generic, "email", Email),
        (Generic, "md5", HashMd5),
        (Generic, "sha1", HashSha1),
        (Generic, "sha256", HashSha256),
    ]
};
