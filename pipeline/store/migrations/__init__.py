"""Alembic migrations of the store (env.py, versions/), applied by `store/migrate.py`."""
