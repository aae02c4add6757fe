//! Stored enrichment providers: built-ins seeded and upgraded without undoing people's edits,
//! the importable JSON format, credentials sealed at rest, and key rotation.

use std::collections::BTreeMap;

use domain::provider::registry::{self, RegistryError};
use domain::secret::{SecretError, SecretKey};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::provider_fixture;

async fn find(db: &PgPool, name: &str) -> registry::StoredProvider {
    let providers = registry::load(db).await.unwrap();
    providers.into_iter().find(|p| p.spec.provider_name == name).unwrap_or_else(|| panic!("{name}"))
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn built_in_providers_are_seeded_and_an_upgrade_keeps_peoples_edits(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let names: Vec<String> =
        registry::load(&db).await.unwrap().into_iter().map(|p| p.spec.provider_name).collect();
    assert_eq!(names, ["abuseipdb", "entra", "greynoise", "okta", "urlhaus", "virustotal"]);
    let virustotal = find(&db, "virustotal").await;
    assert!(virustotal.is_builtin && virustotal.is_active);
    assert!(!virustotal.extractions.is_empty());

    let update = registry::ProviderUpdate {
        base_url: Some(Some("http://127.0.0.1:9/vt".into())),
        is_active: Some(false),
        ..Default::default()
    };
    let updated = registry::update(&db, "virustotal", &update, "tests").await.unwrap();
    assert!(!updated.is_active);
    domain::migrate(&db).await.unwrap();

    let virustotal = find(&db, "virustotal").await;
    assert_eq!(virustotal.spec.base_url.as_deref(), Some("http://127.0.0.1:9/vt"));
    assert!(!virustotal.is_active);
    let providers: i64 = sqlx::query_scalar("select count(*) from enrichment_provider")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(providers, 6, "seeding twice adds nothing");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn the_greynoise_fixture_imports_unchanged_and_bad_definitions_say_what_is_wrong(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    // The fixture is named like the built-in; make room for it.
    sqlx::query("delete from enrichment_provider where name = 'greynoise'")
        .execute(&db)
        .await
        .unwrap();

    let provider = provider_fixture("greynoise.provider.json");
    let extractions = provider_fixture("greynoise.field_extractions.json");
    registry::import(&db, &provider, Some(&extractions), "tests").await.unwrap();

    let greynoise = find(&db, "greynoise").await;
    assert!(!greynoise.is_builtin);
    assert_eq!(greynoise.extractions.len(), extractions.as_array().unwrap().len());
    let duplicate = registry::import(&db, &provider, None, "tests").await;
    assert!(matches!(duplicate, Err(RegistryError::Duplicate(ref name)) if name == "greynoise"));

    let mut broken = provider.clone();
    broken["http_config"]["steps"][0]["url"] = "https://example.com/{{indicator.nope}}".into();
    broken["malice_rules"]["default_verdict"] = "Dangerous".into();
    broken["provider_name"] = "broken".into();
    let Err(RegistryError::Invalid(invalid)) = registry::import(&db, &broken, None, "tests").await
    else {
        panic!("a broken definition was accepted");
    };
    let fields: Vec<&str> = invalid.problems.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.iter().any(|f| f.starts_with("http_config.steps[0].url")), "{fields:?}");
    assert!(fields.iter().any(|f| f.starts_with("malice_rules.default_verdict")), "{fields:?}");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn credentials_are_sealed_at_rest_and_environment_variables_fill_the_gaps(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let key = SecretKey::generate();
    let fields = BTreeMap::from([("api_key".to_owned(), "vt-secret-123".to_owned())]);
    registry::set_credentials(&db, &key, "virustotal", &fields, "tests").await.unwrap();

    let stored: Vec<u8> =
        sqlx::query_scalar("select credentials from enrichment_provider where name = 'virustotal'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(!stored.windows(13).any(|w| w == b"vt-secret-123"), "credentials are not plaintext");
    let auth =
        find(&db, "virustotal").await.credentials(&key, no_env).unwrap().expect("configured");
    assert_eq!(auth.get("api_key").map(|s| s.expose()), Some("vt-secret-123"));

    // Nothing stored for AbuseIPDB: inactive without its variable, configured with it.
    let abuseipdb = find(&db, "abuseipdb").await;
    assert!(abuseipdb.credentials(&key, no_env).unwrap().is_none());
    let env = |name: &str| (name == "ABUSEIPDB_API_KEY").then(|| "from-env".to_owned());
    let auth = abuseipdb.credentials(&key, env).unwrap().expect("configured from the environment");
    assert_eq!(auth.get("api_key").map(|s| s.expose()), Some("from-env"));

    let wrong = BTreeMap::from([("password".to_owned(), "x".to_owned())]);
    let refused = registry::set_credentials(&db, &key, "virustotal", &wrong, "tests").await;
    assert!(
        matches!(refused, Err(RegistryError::UnknownCredential { ref field, .. }) if field == "password")
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn rotating_the_secret_key_re_encrypts_every_credential(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let (old, new) = (SecretKey::generate(), SecretKey::generate());
    for (provider, field) in [("virustotal", "api_key"), ("okta", "api_token")] {
        let mut fields = BTreeMap::from([(field.to_owned(), format!("{provider}-secret"))]);
        if provider == "okta" {
            fields.insert("domain".into(), "contoso.okta.example".into());
        }
        registry::set_credentials(&db, &old, provider, &fields, "tests").await.unwrap();
    }

    assert_eq!(registry::rotate_secrets(&db, &old, &new, "tests").await.unwrap(), 2);

    let okta = find(&db, "okta").await;
    let auth = okta.credentials(&new, no_env).unwrap().expect("readable with the new key");
    assert_eq!(auth.get("api_token").map(|s| s.expose()), Some("okta-secret"));
    assert_eq!(okta.credentials(&old, no_env).unwrap_err(), SecretError::WrongKey);
    // Rotating again with the old key fails as a whole and changes nothing.
    assert!(registry::rotate_secrets(&db, &old, &SecretKey::generate(), "tests").await.is_err());
    assert!(find(&db, "virustotal").await.credentials(&new, no_env).unwrap().is_some());
    // The audit log has the rotation that happened, with what it re-encrypted, and not the
    // one that failed.
    let logged: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "select actor, details from activity where event_type = 'secrets.rotated' and alert_id is null",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(logged, vec![("tests".to_owned(), json!({"re_encrypted": 2}))]);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn people_edit_replace_extractions_of_and_delete_providers_and_workers_follow(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let enricher = crate::helpers::enricher(&db, &[("DEMO_INTEL_API_KEY", "k")]).await;
    let mut provider = provider_fixture("greynoise.provider.json");
    provider["provider_name"] = "demo_intel".into();
    let mut extractions = provider_fixture("greynoise.field_extractions.json");
    for extraction in extractions.as_array_mut().unwrap() {
        extraction["provider_name"] = "demo_intel".into();
    }
    registry::import(&db, &provider, Some(&extractions), "tests").await.unwrap();
    wait_until(|| enricher.configured("demo_intel").is_some()).await;

    // Settings and a new definition are validated as a whole, every problem named by field.
    let bad = registry::ProviderUpdate {
        base_url: Some(Some("ftp://intel.example".into())),
        concurrency_limit: Some(Some(0)),
        ..Default::default()
    };
    let Err(RegistryError::Invalid(invalid)) =
        registry::update(&db, "demo_intel", &bad, "tests").await
    else {
        panic!("a bad update was accepted");
    };
    let fields: Vec<&str> = invalid.problems.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"base_url") && fields.contains(&"concurrency_limit"), "{fields:?}");
    let mut renamed = provider.clone();
    renamed["provider_name"] = "other".into();
    let rename = registry::ProviderUpdate { definition: Some(renamed), ..Default::default() };
    assert!(matches!(
        registry::update(&db, "demo_intel", &rename, "tests").await,
        Err(RegistryError::Invalid(ref invalid)) if invalid.problems[0].field == "provider_name"
    ));

    let good = registry::ProviderUpdate {
        base_url: Some(Some("https://intel.example/v2".into())),
        rate_limit_per_minute: Some(Some(120)),
        ..Default::default()
    };
    let updated = registry::update(&db, "demo_intel", &good, "tests").await.unwrap();
    assert_eq!(updated.spec.rate_limit_per_minute, Some(120));
    wait_until(|| {
        enricher.configured("demo_intel").and_then(|spec| spec.base_url).as_deref()
            == Some("https://intel.example/v2")
    })
    .await;
    // Clearing an override brings back the definition's own value.
    let reset = registry::ProviderUpdate { base_url: Some(None), ..Default::default() };
    let reset = registry::update(&db, "demo_intel", &reset, "tests").await.unwrap();
    assert_eq!(reset.spec.base_url, provider["base_url"].as_str().map(str::to_owned));

    // Extractions are replaced in bulk, validated first.
    let first = extractions.as_array().unwrap()[0].clone();
    assert_eq!(
        registry::set_extractions(&db, "demo_intel", &json!([first]), "tests").await.unwrap(),
        1
    );
    assert_eq!(find(&db, "demo_intel").await.extractions.len(), 1);
    let mut typo = first.clone();
    typo["value_type"] = "number-ish".into();
    assert!(matches!(
        registry::set_extractions(&db, "demo_intel", &json!([typo]), "tests").await,
        Err(RegistryError::Invalid(_))
    ));
    assert_eq!(find(&db, "demo_intel").await.extractions.len(), 1, "nothing changed");

    // A built-in keeps its shipped definition and extractions, and is deactivated, not deleted.
    let builtin =
        registry::ProviderUpdate { definition: Some(provider.clone()), ..Default::default() };
    assert!(matches!(
        registry::update(&db, "greynoise", &builtin, "tests").await,
        Err(RegistryError::Builtin(..))
    ));
    assert!(matches!(
        registry::delete(&db, "greynoise", "tests").await,
        Err(RegistryError::Builtin(..))
    ));
    let shipped = find(&db, "virustotal").await.extractions[0].clone();
    let clash = json!([{
        "provider_name": "virustotal",
        "indicator_type": shipped.indicator_type.as_str(),
        "source_path": "data.id",
        "target_key": shipped.target_key,
        "value_type": "string",
    }]);
    let Err(RegistryError::Invalid(invalid)) =
        registry::set_extractions(&db, "virustotal", &clash, "tests").await
    else {
        panic!("a user extraction replaced a built-in one");
    };
    assert_eq!(invalid.problems[0].field, "field_extractions[0].target_key");

    registry::delete(&db, "demo_intel", "tests").await.unwrap();
    assert!(matches!(
        registry::delete(&db, "demo_intel", "tests").await,
        Err(RegistryError::NotFound(_))
    ));
    wait_until(|| enricher.configured("demo_intel").is_none()).await;
}

/// Waits up to a second, the time SPEC §3 gives a change to reach every process.
async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("not seen within a second");
}
