-- SecondRow metadata schema, version 8: composite indexes for the listings' filtered sorts, so that a page of
-- runs (or experiments, pipelines, recurring runs) is an index range read in order, never a scan and a sort.
-- Each index is the listing's equality filters, then its sort key, then the id that breaks ties.

-- Runs: the UI always filters on storage_state (and a namespace token on namespace), optionally on state or
-- experiment; the API filters on namespace and/or experiment; both sort by created_at unless asked otherwise.
CREATE INDEX runs_created_id ON runs (created_at, id);
CREATE INDEX runs_ns_created ON runs (namespace, created_at, id);
CREATE INDEX runs_ns_storage_created ON runs (namespace, storage_state, created_at, id);
CREATE INDEX runs_ns_storage_state_created ON runs (namespace, storage_state, state, created_at, id);
CREATE INDEX runs_storage_created ON runs (storage_state, created_at, id);
CREATE INDEX runs_storage_state_created ON runs (storage_state, state, created_at, id);
CREATE INDEX runs_experiment_created ON runs (experiment_id, created_at, id);
CREATE INDEX runs_experiment_storage_created ON runs (experiment_id, storage_state, created_at, id);
CREATE INDEX runs_storage_name ON runs (storage_state, display_name, id);
CREATE INDEX runs_ns_storage_name ON runs (namespace, storage_state, display_name, id);
-- runs_created (created_at) and runs_experiment (experiment_id) are prefixes of runs_created_id and
-- runs_experiment_created.
DROP INDEX runs_created;
DROP INDEX runs_experiment;

-- The other listings by creation time: all, per namespace, per experiment (recurring runs), per pipeline
-- (versions).
CREATE INDEX experiments_created ON experiments (created_at, id);
CREATE INDEX experiments_ns_created ON experiments (namespace, created_at, id);
CREATE INDEX pipelines_created ON pipelines (created_at, id);
CREATE INDEX pipelines_ns_created ON pipelines (namespace, created_at, id);
CREATE INDEX pipeline_versions_pipeline_created ON pipeline_versions (pipeline_id, created_at, id);
CREATE INDEX recurring_runs_created ON recurring_runs (created_at, id);
CREATE INDEX recurring_runs_ns_created ON recurring_runs (namespace, created_at, id);
CREATE INDEX recurring_runs_experiment_created ON recurring_runs (experiment_id, created_at, id);
