//! A provider's credentials while a lookup runs: the named secret fields templates reach as
//! `{{auth.<field>}}`, the OAuth2 token cache that rides with them, and the masking that keeps
//! every one of those values out of traces and error messages.
//!
//! The token cache lives inside [`AuthValues`] on purpose: a token is only as valid as the
//! credentials that obtained it, so whoever rebuilds a provider's credentials (after an edit
//! through the API) gets an empty cache with them, and clones share one cache.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::template::encode_component;
use crate::secret::Secret;

/// Named credential fields (`api_key`, `api_token`, `client_id`, `client_secret`, `tenant_id`,
/// `domain`, …). `Debug` shows the field names only.
#[derive(Clone, Default)]
pub struct AuthValues {
    fields: BTreeMap<String, Secret>,
    tokens: Arc<TokenCache>,
}

impl AuthValues {
    pub fn get(&self, field: &str) -> Option<&Secret> {
        self.fields.get(field)
    }

    pub(crate) fn token_cache(&self) -> &TokenCache {
        &self.tokens
    }

    fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.fields.values()
    }
}

impl<K: Into<String>> FromIterator<(K, Secret)> for AuthValues {
    fn from_iter<I: IntoIterator<Item = (K, Secret)>>(fields: I) -> Self {
        let fields = fields.into_iter().map(|(name, secret)| (name.into(), secret)).collect();
        AuthValues { fields, tokens: Arc::default() }
    }
}

impl fmt::Debug for AuthValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthValues").field("fields", &self.fields.keys()).finish_non_exhaustive()
    }
}

/// The most a token is renewed before its `expires_in`, so a request never leaves with a token
/// that expires in flight or is refused for clock skew.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// One provider's OAuth2 access token, kept in memory until shortly before it expires.
///
/// The lock is held while a token is fetched, so any number of concurrent lookups that find
/// the cache empty wait for one token request instead of each sending their own.
#[derive(Default)]
pub(crate) struct TokenCache {
    slot: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    access_token: Secret,
    refresh_at: Instant,
}

impl TokenCache {
    /// The cached token, or a new one from `fetch`, which returns the token and its lifetime.
    /// A failed fetch caches nothing, so the next lookup tries again.
    pub(crate) async fn get_or_fetch<F, Fut, E>(&self, fetch: F) -> Result<Secret, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, Duration), E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.as_ref().filter(|cached| Instant::now() < cached.refresh_at) {
            return Ok(cached.access_token.clone());
        }
        let (access_token, lifetime) = fetch().await?;
        let margin = MAX_REFRESH_MARGIN.min(lifetime / 10);
        let refresh_at = Instant::now() + lifetime.saturating_sub(margin);
        *slot = Some(CachedToken { access_token: access_token.clone(), refresh_at });
        Ok(access_token)
    }

    /// Drops `stale` after the provider refused it. A token that another lookup has already
    /// replaced is kept, so a burst of refusals leads to one new token, not one each.
    pub(crate) async fn forget(&self, stale: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|cached| cached.access_token == *stale) {
            *slot = None;
        }
    }
}

/// Replaces every secret value of a lookup with `***` in text meant for people: traces,
/// error messages, provider error bodies (which sometimes echo the key back).
pub(crate) struct Masker {
    /// Each secret as written and as encoded into URLs and forms, longest first so that a
    /// secret containing another is masked whole.
    needles: Vec<String>,
}

pub(crate) const MASK: &str = "***";

impl Masker {
    pub(crate) fn new(auth: &AuthValues) -> Self {
        let mut masker = Masker { needles: Vec::new() };
        auth.secrets().for_each(|secret| masker.add(secret));
        masker
    }

    /// Adds a secret learned during the lookup: the fetched OAuth2 token.
    pub(crate) fn add(&mut self, secret: &Secret) {
        let raw = secret.expose();
        if raw.is_empty() {
            return;
        }
        let form_encoded: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        for needle in [raw.to_owned(), encode_component(raw), form_encoded] {
            if !self.needles.contains(&needle) {
                self.needles.push(needle);
            }
        }
        self.needles.sort_by_key(|needle| std::cmp::Reverse(needle.len()));
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        self.needles.iter().fold(text.to_owned(), |masked, needle| masked.replace(needle, MASK))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn auth() -> AuthValues {
        [("api_key", Secret::new("s3cr3t key/+")), ("domain", Secret::new("example.okta.com"))]
            .into_iter()
            .collect()
    }

    #[test]
    fn debug_output_shows_field_names_but_no_values() {
        let debug = format!("{:?}", auth());
        assert!(debug.contains("api_key") && debug.contains("domain"), "{debug}");
        assert!(!debug.contains("s3cr3t") && !debug.contains("okta"), "{debug}");
    }

    #[test]
    fn masking_covers_raw_and_encoded_spellings_of_a_secret() {
        let masker = Masker::new(&auth());
        let text =
            "key=s3cr3t key/+ url=s3cr3t%20key%2F%2B form=s3cr3t+key%2F%2B host=example.okta.com";
        assert_eq!(masker.mask(text), "key=*** url=*** form=*** host=***");
    }

    #[tokio::test]
    async fn a_cached_token_is_reused_until_shortly_before_it_expires() {
        let cache = TokenCache::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>((Secret::new("t"), Duration::from_secs(3600)))
        };
        assert_eq!(cache.get_or_fetch(fetch).await, Ok(Secret::new("t")));
        assert_eq!(cache.get_or_fetch(fetch).await, Ok(Secret::new("t")));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_token_is_fetched_again_once_its_refresh_time_has_passed() {
        let cache = TokenCache::default();
        let fetches = AtomicUsize::new(0);
        // One second to live: renewed a tenth of it (100 ms) early.
        let fetch = || async {
            let count = fetches.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>((Secret::new(format!("t{count}")), Duration::from_secs(1)))
        };
        assert_eq!(cache.get_or_fetch(fetch).await, Ok(Secret::new("t0")));
        assert_eq!(cache.get_or_fetch(fetch).await, Ok(Secret::new("t0")));
        tokio::time::sleep(Duration::from_millis(950)).await;
        assert_eq!(cache.get_or_fetch(fetch).await, Ok(Secret::new("t1")));
    }

    #[tokio::test]
    async fn forgetting_a_replaced_token_keeps_the_new_one() {
        let cache = TokenCache::default();
        let fetch = |value: &'static str| {
            move || async move { Ok::<_, ()>((Secret::new(value), Duration::from_secs(60))) }
        };
        cache.get_or_fetch(fetch("old")).await.ok();
        cache.forget(&Secret::new("old")).await;
        cache.get_or_fetch(fetch("new")).await.ok();
        cache.forget(&Secret::new("old")).await;
        assert_eq!(cache.get_or_fetch(fetch("unused")).await, Ok(Secret::new("new")));
    }
}
