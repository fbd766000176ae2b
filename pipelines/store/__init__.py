"""Our tables (SQLAlchemy 2 ORM) and the repository: the only code that issues queries."""
