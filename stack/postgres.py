"""PostgreSQL outages on demand, for fault tests and the chaos run."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database a Django connection uses, for the processes we start."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    credentials = settings_dict["USER"] + (f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else "")
    return f"postgres://{credentials}@{settings_dict['HOST']}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"


@contextmanager
def connections_refused(settings_dict: dict) -> Iterator[psycopg.Connection]:
    """Inside the block the database refuses new connections; yields a connection that is not refused.

    ALTER DATABASE cannot target the database it is connected to, so the
    yielded connection is to the server's `postgres` database.
    """
    database = settings_dict["NAME"]
    with psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    ) as maintenance:
        maintenance.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            yield maintenance
        finally:
            maintenance.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')


def terminate_connections(
    maintenance: psycopg.Connection, *, database: str, application_name: str | None = None, keep_pid: int = 0
) -> int:
    """Kill the open connections to `database` (only those of `application_name`, if given); return how many."""
    return maintenance.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> %s AND (%s::text IS NULL OR application_name = %s)",
        [database, keep_pid, application_name, application_name],
    ).fetchone()[0]
