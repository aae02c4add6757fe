//! The vocabulary of an alert: sources, severities, statuses, verdicts and indicator types.
//!
//! Every value here is checked once, when it is parsed from text, so the rest of the pipeline
//! never sees a raw string where one of these belongs. The spellings are the wire contract
//! (SPEC §2) and match the PostgreSQL enum labels in `migrations/`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A SIEM or webhook format that `POST /v1/ingest/{source}` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Sentinel,
    Elastic,
    Splunk,
    Generic,
}

impl Source {
    pub const ALL: [Source; 4] =
        [Source::Sentinel, Source::Elastic, Source::Splunk, Source::Generic];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sentinel => "sentinel",
            Source::Elastic => "elastic",
            Source::Splunk => "splunk",
            Source::Generic => "generic",
        }
    }
}

impl FromStr for Source {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| UnknownValue::new("source", s))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not one of the allowed spellings of `what`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a known {what}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl UnknownValue {
    pub(crate) fn new(what: &'static str, value: &str) -> Self {
        UnknownValue { what, value: value.to_owned() }
    }
}

/// Declares a closed set of labels that is stored as a PostgreSQL enum of the same spellings.
macro_rules! labels {
    ($(#[$meta:meta])* $name:ident as $pg:literal, $what:literal { $($variant:ident = $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type)]
        #[sqlx(type_name = $pg)]
        pub enum $name {
            $(
                #[serde(rename = $label)]
                #[sqlx(rename = $label)]
                $variant,
            )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            /// Parses the exact label; use the source-specific parsers for loose SIEM spellings.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($label => Ok($name::$variant),)+
                    _ => Err(UnknownValue::new($what, s)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use labels;

labels! {
    /// How bad an alert is. Ordered: `Pending` (not yet known) is the lowest.
    Severity as "severity", "severity" {
        Pending = "Pending",
        Informational = "Informational",
        Low = "Low",
        Medium = "Medium",
        High = "High",
        Critical = "Critical",
    }
}

impl Severity {
    /// Reads the severity spellings SIEMs use (`high`, `HIGH`, `info`, `moderate`, `1`..`5`).
    /// Returns `None` for text that names no severity, so the caller decides whether that is
    /// an error (generic payloads) or `Pending` (SIEM payloads, whose vocabularies grow).
    pub fn parse_loose(text: &str) -> Option<Severity> {
        let lowered = text.trim().to_ascii_lowercase();
        let severity = match lowered.as_str() {
            "pending" | "unknown" => Severity::Pending,
            "informational" | "information" | "info" | "informative" | "0" => {
                Severity::Informational
            }
            "low" | "1" => Severity::Low,
            "medium" | "moderate" | "med" | "2" => Severity::Medium,
            "high" | "3" => Severity::High,
            "critical" | "crit" | "very high" | "4" | "5" => Severity::Critical,
            _ => return None,
        };
        Some(severity)
    }
}

labels! {
    /// Where an alert is in its triage lifecycle.
    AlertStatus as "alert_status", "alert status" {
        Open = "Open",
        Triaging = "Triaging",
        Escalated = "Escalated",
        Closed = "Closed",
    }
}

labels! {
    /// A verdict on an indicator or an alert. Ordered so that the worst verdict is the maximum.
    Malice as "malice", "malice verdict" {
        Pending = "Pending",
        Benign = "Benign",
        Suspicious = "Suspicious",
        Malicious = "Malicious",
    }
}

labels! {
    /// Whether an alert's enrichment has run.
    EnrichmentStatus as "enrichment_status", "enrichment status" {
        Pending = "Pending",
        Enriched = "Enriched",
        Failed = "Failed",
    }
}

labels! {
    /// The kinds of observable alertgraph extracts, deduplicates and enriches.
    IndicatorType as "indicator_type", "indicator type" {
        Ip = "ip",
        Domain = "domain",
        Url = "url",
        HashMd5 = "hash_md5",
        HashSha1 = "hash_sha1",
        HashSha256 = "hash_sha256",
        Email = "email",
        Account = "account",
    }
}

impl IndicatorType {
    pub fn is_hash(self) -> bool {
        matches!(self, IndicatorType::HashMd5 | IndicatorType::HashSha1 | IndicatorType::HashSha256)
    }
}
