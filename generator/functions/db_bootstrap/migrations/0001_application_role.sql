-- The processor's role: logs in (IAM database authentication on RDS), nothing else of its own.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{app_role}') THEN
    CREATE ROLE {app_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 200;
  END IF;
  -- RDS: the role authenticates with IAM tokens only (rds-db:connect), never with a password.
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
    GRANT rds_iam TO {app_role};
  END IF;
END
$$;

-- Nobody but the roles granted below connects; nobody creates objects in public.
REVOKE ALL ON DATABASE {database} FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {app_role};
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- The application's schema: owned by the master (migrations change its tables), used by the processor.
CREATE SCHEMA IF NOT EXISTS {app_schema};
REVOKE ALL ON SCHEMA {app_schema} FROM PUBLIC;
GRANT USAGE ON SCHEMA {app_schema} TO {app_role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {app_schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app_role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {app_schema} GRANT USAGE, SELECT ON SEQUENCES TO {app_role};
ALTER ROLE {app_role} SET search_path = {app_schema};
