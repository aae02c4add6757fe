//! Stored enrichment providers: built-ins seeded and upgraded without undoing people's edits,
//! the importable JSON format, credentials sealed at rest, and key rotation.

use std::collections::BTreeMap;

use domain::provider::registry::{self, RegistryError};
use domain::secret::{SecretError, SecretKey};
use sqlx::PgPool;

fn provider_fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/../shared/fixtures/providers/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

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

    assert!(
        domain::store::provider::update_settings(
            &db,
            "virustotal",
            Some("http://127.0.0.1:9/vt"),
            Some(false)
        )
        .await
        .unwrap()
    );
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
    registry::import(&db, &provider, Some(&extractions)).await.unwrap();

    let greynoise = find(&db, "greynoise").await;
    assert!(!greynoise.is_builtin);
    assert_eq!(greynoise.extractions.len(), extractions.as_array().unwrap().len());
    let duplicate = registry::import(&db, &provider, None).await;
    assert!(matches!(duplicate, Err(RegistryError::Duplicate(ref name)) if name == "greynoise"));

    let mut broken = provider.clone();
    broken["http_config"]["steps"][0]["url"] = "https://example.com/{{indicator.nope}}".into();
    broken["malice_rules"]["default_verdict"] = "Dangerous".into();
    broken["provider_name"] = "broken".into();
    let Err(RegistryError::Invalid(invalid)) = registry::import(&db, &broken, None).await else {
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
    registry::set_credentials(&db, &key, "virustotal", &fields).await.unwrap();

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
    let refused = registry::set_credentials(&db, &key, "virustotal", &wrong).await;
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
        registry::set_credentials(&db, &old, provider, &fields).await.unwrap();
    }

    assert_eq!(registry::rotate_secrets(&db, &old, &new).await.unwrap(), 2);

    let okta = find(&db, "okta").await;
    let auth = okta.credentials(&new, no_env).unwrap().expect("readable with the new key");
    assert_eq!(auth.get("api_token").map(|s| s.expose()), Some("okta-secret"));
    assert_eq!(okta.credentials(&old, no_env).unwrap_err(), SecretError::WrongKey);
    // Rotating again with the old key fails as a whole and changes nothing.
    assert!(registry::rotate_secrets(&db, &old, &SecretKey::generate()).await.is_err());
    assert!(find(&db, "virustotal").await.credentials(&new, no_env).unwrap().is_some());
}
