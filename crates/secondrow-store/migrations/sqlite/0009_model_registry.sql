-- SecondRow metadata schema, version 9: the model registry (Kubeflow Model Registry REST API, `secondrow models`).
-- Registered models have versions; a version has model artifacts (the file's URI and format). Ids are
-- integers because the registry's wire format wants decimal ids. Custom properties are kept as the JSON
-- map the client sent (echoed as stored); `extra` holds the optional descriptive fields as a JSON object.
CREATE TABLE registered_models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    owner TEXT,
    state TEXT NOT NULL,
    custom_properties TEXT NOT NULL,
    extra TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (namespace, name),
    UNIQUE (namespace, external_id)
);

CREATE TABLE model_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    registered_model_id BIGINT NOT NULL REFERENCES registered_models (id),
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    author TEXT,
    state TEXT NOT NULL,
    custom_properties TEXT NOT NULL,
    extra TEXT NOT NULL,
    -- Lineage: the run, task and artifact the version was registered from, and the task's metrics then.
    run_id TEXT,
    task TEXT,
    source_artifact_id TEXT,
    metrics TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (registered_model_id, name),
    UNIQUE (namespace, external_id)
);
CREATE INDEX model_versions_run ON model_versions (run_id);

CREATE TABLE model_artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version_id BIGINT NOT NULL REFERENCES model_versions (id),
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    external_id TEXT,
    uri TEXT NOT NULL,
    state TEXT NOT NULL,
    model_format_name TEXT,
    model_format_version TEXT,
    custom_properties TEXT NOT NULL,
    extra TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (model_version_id, name),
    UNIQUE (namespace, external_id)
);

-- Where a model version is deployed: a deployment name and its version (`secondrow deploy create --model`).
CREATE TABLE model_version_deployments (
    model_version_id BIGINT NOT NULL REFERENCES model_versions (id),
    deployment TEXT NOT NULL,
    version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (model_version_id, deployment, version)
);
