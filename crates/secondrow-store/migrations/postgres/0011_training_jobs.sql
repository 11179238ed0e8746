-- SecondRow metadata schema, version 11: distributed training jobs (Kubeflow Training Operator v1 YAML run as
-- local multi-process jobs). A job's name is unique in its namespace; `spec` is the submitted YAML, `status`
-- the operator-shaped status JSON (conditions, replica statuses); `supervisor_*` names the process running it. One row per replica (type, index; `ordinal` is its rank order) with its
-- process (pid = process group id, with its start time: the pair names one process), restarts, exit code and log file.
CREATE TABLE training_jobs (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    supervisor_pid BIGINT,
    supervisor_start BIGINT,
    UNIQUE (namespace, name)
);
CREATE TABLE training_job_replicas (
    job_id TEXT NOT NULL REFERENCES training_jobs (id) ON DELETE CASCADE,
    replica_type TEXT NOT NULL,
    replica_index INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    state TEXT NOT NULL,
    pid BIGINT,
    pid_start BIGINT,
    port INTEGER,
    restarts INTEGER NOT NULL,
    exit_code INTEGER,
    log_path TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, replica_type, replica_index)
);
