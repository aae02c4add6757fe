//! The PostgreSQL NOTIFY channels alertgraph uses. Payloads are wake-ups, never data: a listener
//! that hears one re-reads the database, so a missed or coalesced notification loses nothing.

/// A job was enqueued (sent by the `job_notify` trigger in the enqueuing transaction).
pub const JOB_QUEUED: &str = "alertgraph_job_queued";
/// Configuration that processes cache (indicator mappings, later providers) changed.
pub const CONFIG_CHANGED: &str = "alertgraph_config_changed";
/// An API key was created, revoked or changed; caches of verified keys must be dropped.
pub const API_KEY_CHANGED: &str = "alertgraph_api_key_changed";
