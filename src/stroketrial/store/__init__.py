"""The database shell: tables, migrations, safe write transactions, and the keyed audit trail."""

from .audit import Verification, canonical, record, verify
from .db import Database, DatabaseError, database_url
from .keystore import Checkpoint, Keystore, KeystoreError, parse_checkpoint

__all__ = ["Verification", "canonical", "record", "verify", "Database", "DatabaseError", "database_url",
           "Checkpoint", "Keystore", "KeystoreError", "parse_checkpoint"]
