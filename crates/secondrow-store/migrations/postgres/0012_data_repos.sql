-- SecondRow metadata schema, version 12: versioned data repositories (`secondrow data`).
-- File bytes and tree manifests are content-addressed objects in the artifact store (`data/objects/…`);
-- these tables hold the repositories, the immutable commits (each naming its manifest object and parent)
-- and the branches, whose heads move only by compare-and-swap.
CREATE TABLE data_repos (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE data_commits (
    -- SHA-256 (hex) of the commit's canonical JSON: namespace, repo, parent, manifest, message, author, time.
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    repo TEXT NOT NULL,
    parent TEXT,
    -- The branch the commit was made on.
    branch TEXT NOT NULL,
    -- The object id of the tree manifest (JSON: path → object id and size).
    manifest TEXT NOT NULL,
    files BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    message TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX data_commits_repo ON data_commits (namespace, repo, id);

CREATE TABLE data_branches (
    namespace TEXT NOT NULL,
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    head TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, repo, name)
);
