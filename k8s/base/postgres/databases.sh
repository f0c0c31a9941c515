#!/usr/bin/env bash
# A role and a database of its own for each service in SERVICE_DATABASES, the
# role's password from <NAME>_PASSWORD (order's are POSTGRES_USER and
# POSTGRES_DB, which the image's entrypoint creates itself). The entrypoint
# runs this on the first boot only. It is idempotent, so on a volume created
# before a service was listed, run it again (docs/kubernetes.md):
#   kubectl exec postgres-0 -- /docker-entrypoint-initdb.d/databases.sh
set -euo pipefail
for name in $SERVICE_DATABASES; do
  password_var="${name^^}_PASSWORD"
  # Fail here, not with a half-made role, when the Secret lacks the password.
  if [ -z "${!password_var:-}" ]; then
    echo "databases.sh: $password_var is not set" >&2
    exit 1
  fi
  # The password stays out of the process list: psql reads it from the environment.
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    --set name="$name" --set password_var="$password_var" <<'SQL'
\getenv password :password_var
SELECT format('CREATE ROLE %I', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
-- Its owner alone connects: no service reads another's data.
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
