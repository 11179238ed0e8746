-- SecondRow metadata schema, version 4: platform-managed model deployments (`secondrow deploy`).
-- A deployment is a served model name with versions; each version records where its file came from.
CREATE TABLE deployments (
    name TEXT PRIMARY KEY,
    default_version TEXT NOT NULL,
    canary_version TEXT,
    canary_percent BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE deployment_versions (
    deployment TEXT NOT NULL,
    version TEXT NOT NULL,
    -- The source as given (JSON: {"artifact_id"} | {"run_id","task","output"} | {"path"}).
    source TEXT NOT NULL,
    artifact_id TEXT,
    path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (deployment, version)
);
