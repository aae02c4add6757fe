//! Provider results this server has read, kept between requests: the largest part of most
//! graph queries, and the one that changes least.
//!
//! The cache never answers with results older than the database's. Every write of results
//! bumps the indicator's `results_version` in the same transaction (see the
//! `20261130000010_result_versions` migration), and a request reads that version with the
//! indicator before it asks for the indicator's results. An entry is filed under the version
//! of the request that read it, whose results were read after that version, so they are at
//! least as new; and it is used only by requests that read the same version. A change committed
//! by any worker or server is therefore seen by the next request on every replica, with no
//! invalidation message to wait for or to lose. Entries are evicted by approximate size
//! (S3-FIFO, from `quick_cache`).

use std::sync::Arc;

use domain::store::graph::ResultNode;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use uuid::Uuid;

/// An indicator's results, by provider name, shared by every request that reads them.
pub(crate) type Results = Arc<[Arc<StoredResult>]>;

/// A provider result as answers use it: the row, and its extracted fields already in
/// async-graphql's form, converted once when read rather than once per answer.
#[derive(Debug)]
pub(crate) struct StoredResult {
    pub(crate) row: ResultNode,
    pub(crate) extracted: async_graphql::Value,
}

impl From<ResultNode> for StoredResult {
    fn from(row: ResultNode) -> Self {
        let extracted = super::plain::json(&row.extracted);
        StoredResult { row, extracted }
    }
}

/// Provider results by indicator, each with the version it was read at.
pub struct ResultCache {
    entries: Option<Cache<Uuid, Entry, ByWeight>>,
}

#[derive(Clone)]
struct Entry {
    version: i64,
    results: Results,
    weight: u64,
}

#[derive(Clone)]
struct ByWeight;

impl Weighter<Uuid, Entry> for ByWeight {
    fn weight(&self, _: &Uuid, entry: &Entry) -> u64 {
        entry.weight
    }
}

/// What an entry costs besides its values: the key, the version, the slice and the cache's own
/// bookkeeping.
const ENTRY_OVERHEAD: u64 = 96;

impl ResultCache {
    /// A cache holding about `bytes` of results; 0 keeps none.
    pub fn new(bytes: u64) -> Self {
        let entries = (bytes > 0).then(|| {
            // About a kilobyte per indicator (three providers' small extractions).
            let estimated = (bytes / 1024).clamp(16, 1 << 22) as usize;
            Cache::with_weighter(estimated, bytes, ByWeight)
        });
        ResultCache { entries }
    }

    /// The results of `indicator` at `version`, when this server has them.
    pub(crate) fn get(&self, indicator: Uuid, version: i64) -> Option<Results> {
        let entry = self.entries.as_ref()?.get(&indicator)?;
        (entry.version == version).then_some(entry.results)
    }

    /// Keeps `results`, read after the indicator was at `version`, unless a newer version is
    /// kept already. Two requests may race here; the loser's entry is only ever a miss for
    /// requests that read another version, never a wrong answer.
    pub(crate) fn put(&self, indicator: Uuid, version: i64, results: Results) {
        let Some(entries) = &self.entries else { return };
        if entries.get(&indicator).is_some_and(|kept| kept.version >= version) {
            return;
        }
        let weight = ENTRY_OVERHEAD + results.iter().map(|result| size(result)).sum::<u64>();
        entries.insert(indicator, Entry { version, results, weight });
    }
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("ResultCache");
        if let Some(entries) = &self.entries {
            debug.field("indicators", &entries.len()).field("bytes", &entries.weight());
        }
        debug.finish_non_exhaustive()
    }
}

/// Roughly the heap and inline bytes of one result: its extracted fields are kept twice, as
/// read and as answered, each about the size of the JSON value.
fn size(result: &StoredResult) -> u64 {
    let node = &result.row;
    let own = size_of::<StoredResult>() + 16 + node.provider.len();
    (own + node.error.as_ref().map_or(0, String::len) + 2 * json_size(&node.extracted)) as u64
}

fn json_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    size_of::<Value>()
        + match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(json_size).sum(),
            Value::Object(fields) => fields.iter().map(|(k, v)| 24 + k.len() + json_size(v)).sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}
