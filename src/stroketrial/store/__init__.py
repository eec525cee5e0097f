"""The database shell: tables, migrations, safe write transactions, and the hash-chained audit trail."""

from .audit import Verification, canonical, record, verify
from .db import Database, DatabaseError, database_url

__all__ = ["Verification", "canonical", "record", "verify", "Database", "DatabaseError", "database_url"]
