-- SecondRow metadata schema, version 13: managed JupyterLab servers (`secondrow notebook`). A notebook belongs to
-- one namespace (its name is unique there) and is a supervised child process of `secondrow server`: its state,
-- the reason of its last stop or failure, the environment it runs in, the loopback port and process group it
-- has while it runs, the secret token the server's proxy adds to every request, its workspace folder and the
-- last kernel activity the culler saw.
CREATE TABLE notebooks (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    -- Starting | Running | Stopped | Culled | Failed
    state TEXT NOT NULL,
    reason TEXT,
    -- The interpreter given with --python; NULL: the cached environment of `packages` (plus jupyterlab).
    python TEXT,
    -- JSON array of pip requirement strings.
    packages TEXT NOT NULL,
    port BIGINT,
    pid BIGINT,
    -- The start time (clock ticks since boot) of the process group leader, to recognise it after a restart.
    pid_started BIGINT,
    secret TEXT NOT NULL,
    workspace TEXT NOT NULL,
    last_activity BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);
