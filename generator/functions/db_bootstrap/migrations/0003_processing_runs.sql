-- The processor's record of each attempt (issue 23): written at its start and at its end. The job table
-- (DynamoDB) stays the authority for a video's status; this row is what the processor reports about one run.
CREATE TABLE IF NOT EXISTS {app_schema}.processing_runs (
  video_id text NOT NULL CHECK (video_id ~ '^[A-Za-z0-9_-]{1,80}$'),
  attempt integer NOT NULL CHECK (attempt >= 0),
  status text NOT NULL CHECK (status IN ('processing', 'done', 'invalid_media', 'interrupted', 'failed')),
  source_version_id text NOT NULL DEFAULT '',
  source_sha256 text NOT NULL DEFAULT '' CHECK (source_sha256 ~ '^([0-9a-f]{64})?$'),
  duration_seconds double precision CHECK (duration_seconds >= 0),
  renditions jsonb CHECK (renditions IS NULL OR jsonb_typeof(renditions) = 'array'),
  manifest_key text,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz CHECK (finished_at IS NULL OR finished_at >= started_at),
  error text CHECK (length(error) <= 2000),
  PRIMARY KEY (video_id, attempt)
);

-- The processor inserts and updates its rows, nothing more: no delete, no truncate (a record outlives a re-run).
-- SELECT only on the key, which its UPDATE's WHERE reads. The schema's default privileges
-- (0001) granted it all four; take them back and grant exactly these.
REVOKE ALL ON {app_schema}.processing_runs FROM {app_role};
GRANT INSERT, UPDATE ON {app_schema}.processing_runs TO {app_role};
GRANT SELECT (video_id, attempt) ON {app_schema}.processing_runs TO {app_role};
