-- SecondRow metadata schema, version 5: secrets and config maps for kfp-kubernetes pipelines
-- (`use_secret_as_env`, `use_config_map_as_volume`, …). One table, the kind in a column; `data` is a JSON
-- object of key → value. Names are unique per namespace and kind, as on Kubernetes.
CREATE TABLE secrets (
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, kind, name)
);
