-- SecondRow metadata schema, version 14: prediction logging. A deployment may log a sampled share of its
-- requests and answers (0 < log_sample <= 1; NULL: off) to Parquet files under the server's work folder,
-- where the monitor computes drift and performance from them.
ALTER TABLE deployments ADD COLUMN log_sample DOUBLE PRECISION;
