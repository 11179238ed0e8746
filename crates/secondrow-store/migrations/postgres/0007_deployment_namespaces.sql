-- SecondRow metadata schema, version 7: each deployment belongs to a namespace, like an experiment. A
-- namespace token sees, changes and infers on its own namespace's deployments only; the admin on all.
-- Deployments made before this version were made with the admin token and have no namespace ('').
-- Names stay unique across namespaces: a deployment's name is the model name on the serving port.
ALTER TABLE deployments ADD COLUMN namespace TEXT NOT NULL DEFAULT '';
