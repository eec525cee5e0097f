"""The database shell: tables, migrations, safe write transactions, and the keyed audit trail."""

from .audit import Verification, canonical, record, verify
from .db import Database, DatabaseError, database_url, rows_changed
from .keystore import Checkpoint, Keystore, KeystoreError, parse_checkpoint

__all__ = [
           "Checkpoint",
           "Database",
           "DatabaseError",
           "Keystore",
           "KeystoreError",
           "Verification",
           "canonical",
           "database_url",
           "parse_checkpoint",
           "record",
           "rows_changed",
           "verify",
]
