-- SecondRow metadata schema, version 3: API tokens get an id (for `tokens list` and `tokens revoke`),
-- a label and a revocation time. Only the SHA-256 digest of a token is stored, never the token.
ALTER TABLE api_tokens ADD COLUMN id TEXT;
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT;
UPDATE api_tokens SET id = substr(token_hash, 1, 12) WHERE id IS NULL;
CREATE UNIQUE INDEX api_tokens_id ON api_tokens (id);
