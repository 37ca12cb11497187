"""Alembic environment; every service's env.py is this same thin file."""

from tooling.migrate import run_alembic_env

run_alembic_env()
