-- SecondRow metadata schema, version 2: what the KFP v2beta1 API server adds.
-- Recurring runs (cron or periodic triggers), namespace-scoped API tokens.
CREATE TABLE recurring_runs (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    namespace TEXT NOT NULL DEFAULT '',
    experiment_id TEXT,
    pipeline_id TEXT,
    pipeline_version_id TEXT,
    spec TEXT NOT NULL,
    parameters TEXT NOT NULL,
    runtime_config TEXT NOT NULL,
    trigger_spec TEXT NOT NULL,
    max_concurrency BIGINT NOT NULL DEFAULT 1,
    no_catchup BIGINT NOT NULL DEFAULT 0,
    enabled BIGINT NOT NULL DEFAULT 1,
    last_fire_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX runs_recurring ON runs (recurring_run_id);
CREATE INDEX runs_experiment ON runs (experiment_id);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
