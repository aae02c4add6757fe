-- Enrichment providers as data (SPEC §3). A provider's definition is the JSON of the importable
-- format (`domain::provider::ProviderSpec`), validated on write; the enrichment engine reads it
-- as a whole. What people edit on a built-in (base URL, limits, active) lives in its own
-- columns, so that shipping a new built-in definition never undoes their edits.
create table enrichment_provider (
    enrichment_provider_id uuid primary key default gen_random_uuid(),
    name text not null,
    definition jsonb not null,
    -- null: the definition's own value.
    base_url text,
    concurrency_limit integer,
    rate_limit_per_minute integer,
    -- The credentials JSON sealed with ALERTGRAPH_SECRET_KEY (`domain::secret::SecretKey`);
    -- null: none stored, so environment variables are used, if any.
    credentials bytea,
    is_builtin boolean not null default false,
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint enrichment_provider_name_key unique (name),
    constraint enrichment_provider_name_check check (name ~ '^[a-z][a-z0-9_]*$'),
    constraint enrichment_provider_concurrency_check
        check (concurrency_limit is null or concurrency_limit > 0),
    constraint enrichment_provider_rate_limit_check
        check (rate_limit_per_minute is null or rate_limit_per_minute > 0)
);

create table field_extraction (
    field_extraction_id uuid primary key default gen_random_uuid(),
    enrichment_provider_id uuid not null
        constraint field_extraction_provider_fkey references enrichment_provider on delete cascade,
    indicator_type indicator_type not null,
    source_path text not null,
    target_key text not null,
    value_type text not null,
    description text,
    -- Shipped with a built-in provider: upgraded at start-up, never deleted by hand.
    is_builtin boolean not null default false,
    is_active boolean not null default true,
    constraint field_extraction_target_key
        unique (enrichment_provider_id, indicator_type, target_key),
    constraint field_extraction_value_type_check
        check (value_type in ('string', 'int', 'float', 'bool', 'list', 'object', 'any'))
);

-- The latest lookup of each (indicator, provider): the cache every worker shares.
create table enrichment_result (
    indicator_id uuid not null
        constraint enrichment_result_indicator_fkey references indicator on delete cascade,
    enrichment_provider_id uuid not null
        constraint enrichment_result_provider_fkey references enrichment_provider on delete cascade,
    success boolean not null,
    extracted jsonb not null default '{}',
    raw jsonb,
    error text,
    malice malice not null default 'Pending',
    enriched_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint enrichment_result_pkey primary key (indicator_id, enrichment_provider_id)
);

create index enrichment_result_provider_idx on enrichment_result (enrichment_provider_id);

-- Single flight across every worker: the one holding the claim of an (indicator, provider)
-- calls the provider; others wait for its result instead of calling too. A claim expires, so a
-- worker that dies mid-lookup only delays the next one.
create table enrichment_lookup (
    indicator_id uuid not null
        constraint enrichment_lookup_indicator_fkey references indicator on delete cascade,
    enrichment_provider_id uuid not null
        constraint enrichment_lookup_provider_fkey references enrichment_provider on delete cascade,
    claimed_until timestamptz not null,
    constraint enrichment_lookup_pkey primary key (indicator_id, enrichment_provider_id)
);
