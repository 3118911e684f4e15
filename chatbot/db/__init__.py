"""The SQL store: models, sessions, queries and migrations (the only SQLAlchemy users)."""
