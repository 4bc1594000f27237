-- One row per processed video: what the processor records about a run.
CREATE TABLE IF NOT EXISTS {app_schema}.videos (
  video_id text PRIMARY KEY CHECK (video_id ~ '^[A-Za-z0-9_-]{1,80}$'),
  status text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
