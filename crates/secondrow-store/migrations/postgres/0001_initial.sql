-- SecondRow metadata schema, version 1. Times are milliseconds since the Unix epoch; JSON is TEXT.
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    namespace TEXT NOT NULL DEFAULT '',
    storage_state TEXT NOT NULL DEFAULT 'AVAILABLE',
    created_at BIGINT NOT NULL,
    UNIQUE (namespace, display_name)
);

CREATE TABLE pipelines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    namespace TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (namespace, name)
);

CREATE TABLE pipeline_versions (
    id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    spec_digest TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (pipeline_id, name)
);
CREATE INDEX pipeline_versions_digest ON pipeline_versions (pipeline_id, spec_digest);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    namespace TEXT NOT NULL DEFAULT '',
    experiment_id TEXT,
    pipeline_id TEXT,
    pipeline_version_id TEXT,
    pipeline_name TEXT NOT NULL,
    spec TEXT NOT NULL,
    parameters TEXT NOT NULL,
    options TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    outputs TEXT,
    storage_state TEXT NOT NULL DEFAULT 'AVAILABLE',
    recurring_run_id TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX runs_state ON runs (state);
CREATE INDEX runs_created ON runs (created_at);

CREATE TABLE run_state_history (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX run_state_history_run ON run_state_history (run_id, at);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    parent_id TEXT,
    path TEXT NOT NULL,
    task_key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    cached BIGINT NOT NULL DEFAULT 0,
    cache_key TEXT,
    inputs TEXT,
    outputs TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (run_id, path)
);
CREATE INDEX tasks_run ON tasks (run_id);

CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    task_id TEXT,
    name TEXT NOT NULL,
    uri TEXT NOT NULL,
    schema_title TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id);

-- Lineage: which task produced (OUTPUT) or consumed (INPUT) which artifact, under which input/output name.
CREATE TABLE events (
    task_id TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (task_id, artifact_id, kind, name)
);
CREATE INDEX events_artifact ON events (artifact_id);

CREATE TABLE cache_entries (
    cache_key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
