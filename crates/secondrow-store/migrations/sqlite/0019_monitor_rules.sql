-- SecondRow metadata schema, version 19: monitor rules. A rule watches a deployment's monitoring figures
-- (drift, performance) with a condition such as `psi(x) > 0.2 or accuracy < 0.8`; when it holds, the
-- server starts a run of a pipeline version with the logged window as an input dataset, at most once per
-- cool-down. `last_fired_at` is claimed before the run starts, so one drift starts one run.
CREATE TABLE monitor_rules (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    deployment TEXT NOT NULL,
    condition TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    pipeline_version_id TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    -- JSON object of run parameters.
    parameters TEXT NOT NULL,
    -- The run parameter that receives the window's file path.
    window_parameter TEXT NOT NULL,
    cooldown_ms BIGINT NOT NULL,
    last_fired_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX monitor_rules_deployment ON monitor_rules (deployment);

-- The runs rules started: which rule, for which deployment version, with which window file.
CREATE TABLE monitor_rule_runs (
    rule_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    deployment TEXT NOT NULL,
    version TEXT NOT NULL,
    window_uri TEXT NOT NULL,
    fired_at BIGINT NOT NULL,
    PRIMARY KEY (rule_id, run_id)
);
