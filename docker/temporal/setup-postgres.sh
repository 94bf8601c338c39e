#!/bin/sh
# One-shot schema setup for Temporal's Postgres, run in temporalio/admin-tools before the server
# starts: the server image does not set up its schema, and temporalio/auto-setup is deprecated.
# Follows temporalio/samples-server compose/scripts/setup-postgres.sh. Every step is idempotent
# (`create` ignores an existing database, `setup-schema -v 0.0` keeps a newer version,
# `update-schema` applies only what is missing), so it runs on every `docker compose up`.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS names the Postgres host}"
: "${POSTGRES_USER:?POSTGRES_USER names the Postgres user}"
: "${SQL_PASSWORD:?SQL_PASSWORD is the Postgres password temporal-sql-tool reads}"
PORT="${DB_PORT:-5432}"
# The versioned schema folders ship inside the admin-tools image, matching its server version.
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

attempt=1
until nc -z -w 5 "$POSTGRES_SEEDS" "$PORT"; do
  if [ "$attempt" -ge 30 ]; then
    echo "Postgres at $POSTGRES_SEEDS:$PORT is not reachable after $attempt attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

# setup_database <database> <versioned schema folder>
setup_database() {
  echo "Temporal schema: database $1 from $2"
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" --db "$1" create
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" --db "$1" setup-schema -v 0.0
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" --db "$1" update-schema -d "$2"
}

# The same names the server reads (DBNAME, VISIBILITY_DBNAME; both default like the server's config template).
setup_database "${DBNAME:-temporal}" "$SCHEMA_ROOT/temporal/versioned"
setup_database "${VISIBILITY_DBNAME:-temporal_visibility}" "$SCHEMA_ROOT/visibility/versioned"
echo 'Temporal schema setup complete'
