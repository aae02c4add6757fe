-- Contextualize and dispatch (SPEC §4, §5): context documents with their version history,
-- the documents attached to each alert, agents with sealed secrets, deliveries and every
-- delivery attempt, agent findings, and the alert lifecycle's timestamps.

create type document_type as enum
    ('runbook', 'ir_plan', 'sop', 'playbook', 'detection_guide', 'other');

create table context_document (
    context_document_id uuid primary key default gen_random_uuid(),
    title text not null,
    document_type document_type not null default 'other',
    -- Markdown.
    content text not null,
    description text,
    tags text[] not null default '{}',
    -- Attached to every alert, whatever its targeting rules say.
    is_global boolean not null default false,
    -- `{"match_any": [rule…], "match_all": [rule…]}`, validated by `domain::targeting`.
    targeting_rules jsonb not null default '{"match_any": [], "match_all": []}',
    is_active boolean not null default true,
    -- Bumped on every change of content, title, type, description, tags or rules; the
    -- previous version is kept in `context_document_version`.
    version integer not null default 1,
    created_by text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint context_document_title_not_blank check (btrim(title) <> '')
);

create table context_document_version (
    context_document_id uuid not null
        constraint context_document_version_document_fkey
        references context_document on delete cascade,
    version integer not null,
    title text not null,
    document_type document_type not null,
    content text not null,
    description text,
    tags text[] not null,
    is_global boolean not null,
    targeting_rules jsonb not null,
    changed_by text,
    created_at timestamptz not null default now(),
    constraint context_document_version_pkey primary key (context_document_id, version)
);

-- The documents the pipeline attached to an alert, at the version it attached.
create table alert_context_document (
    alert_id uuid not null
        constraint alert_context_document_alert_fkey references alert on delete cascade,
    context_document_id uuid not null
        constraint alert_context_document_document_fkey references context_document on delete cascade,
    version integer not null,
    attached_at timestamptz not null default now(),
    constraint alert_context_document_pkey primary key (alert_id, context_document_id)
);
create index alert_context_document_document_idx on alert_context_document (context_document_id);

create table agent (
    agent_id uuid primary key default gen_random_uuid(),
    name text not null,
    description text,
    webhook_url text not null,
    -- An extra header sent with every delivery (`Authorization: Bearer …`), its value sealed.
    auth_header_name text,
    auth_header_value bytea,
    -- The Standard Webhooks secret (`whsec_…`), sealed; shown once, when the agent is created.
    signing_secret bytea not null,
    -- `{min_severity, source_names, tags, match_any, match_all}`, validated by
    -- `domain::targeting::TriggerFilter`.
    trigger_filter jsonb not null default '{}',
    timeout_seconds integer not null default 10,
    is_active boolean not null default true,
    -- Why the agent was deactivated by alertgraph (a 410 from its webhook), if it was.
    deactivated_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint agent_name_key unique (name),
    constraint agent_name_not_blank check (btrim(name) <> ''),
    constraint agent_timeout_check check (timeout_seconds between 1 and 300),
    constraint agent_auth_header_check check ((auth_header_name is null) = (auth_header_value is null))
);

-- One event for one agent. `delivery_id` is the Standard Webhooks `webhook-id`, the same for
-- every attempt and redelivery. `payload` is the body, built once from one consistent read;
-- `json`, not `jsonb`, so it is sent byte for byte as built, keys in the contract's order.
create table delivery (
    delivery_id uuid primary key,
    agent_id uuid not null constraint delivery_agent_fkey references agent on delete cascade,
    alert_id uuid not null constraint delivery_alert_fkey references alert on delete cascade,
    event text not null,
    payload json not null,
    status text not null default 'pending',
    attempts integer not null default 0,
    last_status_code integer,
    last_error text,
    next_attempt_at timestamptz,
    delivered_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint delivery_status_check
        check (status in ('pending', 'retrying', 'delivered', 'failed', 'cancelled'))
);
create index delivery_alert_idx on delivery (alert_id, created_at);
create index delivery_agent_idx on delivery (agent_id, created_at desc);

create table delivery_attempt (
    delivery_attempt_id bigint generated always as identity primary key,
    delivery_id uuid not null
        constraint delivery_attempt_delivery_fkey references delivery on delete cascade,
    attempt integer not null,
    attempted_at timestamptz not null default now(),
    status_code integer,
    latency_ms integer not null,
    error text,
    -- The first 1 KiB of the receiver's answer.
    response_excerpt text
);
create index delivery_attempt_delivery_idx on delivery_attempt (delivery_id, attempt);

create table finding (
    finding_id uuid primary key default gen_random_uuid(),
    alert_id uuid not null constraint finding_alert_fkey references alert on delete cascade,
    agent_name text not null,
    summary text not null,
    -- 0 to 1.
    confidence double precision,
    recommended_action text,
    evidence jsonb not null default '{}',
    created_at timestamptz not null default now(),
    constraint finding_summary_not_blank check (btrim(summary) <> ''),
    constraint finding_agent_name_not_blank check (btrim(agent_name) <> ''),
    constraint finding_confidence_check check (confidence is null or confidence between 0 and 1)
);
create index finding_alert_idx on finding (alert_id, created_at);

alter table alert
    add column acknowledged_at timestamptz,
    add column triaged_at timestamptz,
    add column closed_at timestamptz,
    add constraint alert_close_classification_check check (close_classification is null or
        close_classification in ('true_positive_suspicious_activity',
                                 'benign_positive_suspicious_but_expected',
                                 'false_positive_incorrect_detection_logic',
                                 'false_positive_inaccurate_data',
                                 'undetermined', 'duplicate', 'not_applicable'));

create index activity_created_at_idx on activity (created_at desc);

-- Documents and agents are matched in memory by every worker; a change reloads them.
create trigger context_document_config_notify
    after insert or update or delete on context_document
    for each statement execute function config_changed_notify();
create trigger agent_config_notify
    after insert or update or delete on agent
    for each statement execute function config_changed_notify();

-- Deleting a detection rule unlinks its alerts instead of failing.
alter table alert drop constraint alert_detection_rule_fkey,
    add constraint alert_detection_rule_fkey foreign key (detection_rule_id)
        references detection_rule on delete set null;
