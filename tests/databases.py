"""A fresh PostgreSQL database per test, on the server `./dev.sh test` starts (CITYVEIL_TEST_DATABASE_URL:
a role allowed to create databases). Without it, PostgreSQL tests skip with the reason."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ENV = "CITYVEIL_TEST_DATABASE_URL"


@contextmanager
def postgres_database() -> Iterator[str]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL not started ({POSTGRES_ENV} unset): ./dev.sh test starts one")
    name = f"cityveil_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
