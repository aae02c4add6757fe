//! The process's Prometheus metrics (SPEC §9): counters and latency histograms that the pipeline
//! stages record as they work, kept in one place per process ([`global`]).
//!
//! Each process counts what it did itself, as Prometheus expects: every replica is scraped on
//! its own and the sums are taken at query time. What lives in the database (queue depth, the
//! age of the oldest due job) is read at scrape time instead, so any replica reports it the same.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Every metric the pipeline records.
#[derive(Debug)]
pub struct Metrics {
    ingests: Family<IngestLabels, Counter>,
    ingest_seconds: Family<SourceLabel, Histogram, fn() -> Histogram>,
    jobs: Family<JobLabels, Counter>,
    job_seconds: Family<KindLabel, Histogram, fn() -> Histogram>,
    lookups: Family<LookupLabels, Counter>,
    provider_calls: Family<ProviderCallLabels, Counter>,
    provider_call_seconds: Family<ProviderLabel, Histogram, fn() -> Histogram>,
    deliveries: Family<OutcomeLabel, Counter>,
    delivery_seconds: Histogram,
    rate_limited: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    source: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    provider: String,
    /// `hit`: a fresh stored result answered; `miss`: the provider had to be asked.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderCallLabels {
    provider: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// Latency buckets from 1 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// This process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            ingests: Family::default(),
            ingest_seconds: Family::new_with_constructor(latency_histogram),
            jobs: Family::default(),
            job_seconds: Family::new_with_constructor(latency_histogram),
            lookups: Family::default(),
            provider_calls: Family::default(),
            provider_call_seconds: Family::new_with_constructor(latency_histogram),
            deliveries: Family::default(),
            delivery_seconds: latency_histogram(),
            rate_limited: Counter::default(),
        }
    }

    /// One ingest request answered: `outcome` is `queued`, `deduplicated` or the error code.
    /// Accepted payloads also record how long they took to commit.
    pub fn ingest(&self, source: &str, outcome: &str, took: Option<Duration>) {
        let labels = IngestLabels { source: source.to_owned(), outcome: outcome.to_owned() };
        self.ingests.get_or_create(&labels).inc();
        if let Some(took) = took {
            let source = SourceLabel { source: source.to_owned() };
            self.ingest_seconds.get_or_create(&source).observe(took.as_secs_f64());
        }
    }

    /// One job run to its outcome (`succeeded`, `retry_scheduled`, `dead`, `fenced`, `unrecorded`).
    pub fn job(&self, kind: &str, outcome: &str, took: Duration) {
        let labels = JobLabels { kind: kind.to_owned(), outcome: outcome.to_owned() };
        self.jobs.get_or_create(&labels).inc();
        let kind = KindLabel { kind: kind.to_owned() };
        self.job_seconds.get_or_create(&kind).observe(took.as_secs_f64());
    }

    /// One lookup of a provider: answered by a fresh stored result (`hit`), or not (`miss`).
    pub fn lookup(&self, provider: &str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        let labels = LookupLabels { provider: provider.to_owned(), result: result.to_owned() };
        self.lookups.get_or_create(&labels).inc();
    }

    /// One call to a provider (`success` or `error`), retries included in its time.
    pub fn provider_call(&self, provider: &str, success: bool, took: Duration) {
        let outcome = if success { "success" } else { "error" };
        let labels = ProviderCallLabels { provider: provider.to_owned(), outcome: outcome.into() };
        self.provider_calls.get_or_create(&labels).inc();
        let provider = ProviderLabel { provider: provider.to_owned() };
        self.provider_call_seconds.get_or_create(&provider).observe(took.as_secs_f64());
    }

    /// One webhook delivery attempt (`delivered`, `retry`, `failed`), with the time the webhook
    /// took when it was called (the SSRF guard may refuse it first).
    pub fn delivery(&self, outcome: &str, took: Option<Duration>) {
        self.deliveries.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
        if let Some(took) = took {
            self.delivery_seconds.observe(took.as_secs_f64());
        }
    }

    /// One request refused because its key had used its budget for the minute.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Adds every metric to `registry`, under the `alertgraph_` prefix the registry carries.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ingest_requests",
            "Ingest requests whose key was accepted, by source and outcome (queued, deduplicated or the error code)",
            self.ingests.clone(),
        );
        registry.register_with_unit(
            "ingest_duration",
            "Time from the request to the committed alert, for accepted payloads",
            Unit::Seconds,
            self.ingest_seconds.clone(),
        );
        registry.register(
            "jobs_finished",
            "Jobs run to an outcome: succeeded, retry_scheduled, dead, fenced (taken over after its lease ran out) or unrecorded (the outcome could not be written; the job runs again)",
            self.jobs.clone(),
        );
        registry.register_with_unit(
            "job_duration",
            "Time a job's handler ran",
            Unit::Seconds,
            self.job_seconds.clone(),
        );
        registry.register(
            "enrichment_lookups",
            "Indicator lookups by provider: hit when a fresh stored result answered, miss when there was none (the provider is asked unless its limits fail the lookup first)",
            self.lookups.clone(),
        );
        registry.register(
            "provider_calls",
            "Calls to enrichment providers, by provider and outcome",
            self.provider_calls.clone(),
        );
        registry.register_with_unit(
            "provider_call_duration",
            "Time a provider took to answer a lookup, retries included",
            Unit::Seconds,
            self.provider_call_seconds.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts: delivered, retry or failed",
            self.deliveries.clone(),
        );
        registry.register_with_unit(
            "webhook_delivery_duration",
            "Time an agent's webhook took to answer",
            Unit::Seconds,
            self.delivery_seconds.clone(),
        );
        registry.register(
            "requests_rate_limited",
            "Requests refused with RATE_LIMITED because their key had used its budget for the minute",
            self.rate_limited.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_encoded_with_their_labels() {
        let metrics = Metrics::new();
        metrics.ingest("sentinel", "queued", Some(Duration::from_millis(3)));
        metrics.ingest("sentinel", "INVALID_PAYLOAD", None);
        metrics.lookup("virustotal", true);
        metrics.lookup("virustotal", true);
        metrics.provider_call("virustotal", false, Duration::from_millis(40));
        let mut registry = Registry::with_prefix("alertgraph");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"alertgraph_ingest_requests_total{source="sentinel",outcome="queued"} 1"#,
            r#"alertgraph_ingest_requests_total{source="sentinel",outcome="INVALID_PAYLOAD"} 1"#,
            r#"alertgraph_ingest_duration_seconds_count{source="sentinel"} 1"#,
            r#"alertgraph_enrichment_lookups_total{provider="virustotal",result="hit"} 2"#,
            r#"alertgraph_provider_calls_total{provider="virustotal",outcome="error"} 1"#,
            r#"alertgraph_provider_call_duration_seconds_bucket{le="0.064",provider="virustotal"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
