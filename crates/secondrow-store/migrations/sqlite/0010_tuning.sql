-- SecondRow metadata schema, version 10: hyperparameter tuning (Katib v1beta1 Experiments, `secondrow tune`).
-- An experiment keeps the document it was created from (YAML text) and Katib's status: state, the reason and
-- message of its last condition, and the best trial so far. Trials are numbered in creation order (`seq`):
-- the suggestion algorithms rebuild their model from that history. `assignments` is Katib's
-- parameterAssignments (`[{name, value}]`, values as text); `observations` every metric value the trial
-- reported (`[{name, value, step}]`); `objective` the objective after its metric strategy.
CREATE TABLE tuning_experiments (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    optimal_trial TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (namespace, name)
);

CREATE TABLE tuning_trials (
    id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL REFERENCES tuning_experiments (id),
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    assignments TEXT NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT,
    observations TEXT NOT NULL,
    objective REAL,
    reason TEXT,
    message TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (experiment_id, seq),
    UNIQUE (experiment_id, name)
);
CREATE INDEX tuning_trials_run ON tuning_trials (run_id);
