"""The audit key and the checkpoint log: kept outside the database, so that write access to the
database alone cannot rewrite, extend or cut the audit trail unseen.

A keystore is a folder holding two files:

- `audit.key`: 32 random bytes (hex), made on first start; every audit event's hash is an
  HMAC-SHA256 under this key, so nobody without it can recompute a chain after an edit,
  forge an event, or test a guess about a hidden field against a stored hash.
- `checkpoints`: one line appended after every committed write for each chain it moved (the
  platform's, or a trial's: `audit.py`), `seq hash at signature [chain]`, the signature an
  HMAC of the line under the key. `audit verify` checks the trail against
  every line, so events deleted from the end (and the head moved back) are caught.

Where it is: `STROKETRIAL_KEYS`, else next to a SQLite file (`trial.db` -> `trial.db.keys/`),
else, for PostgreSQL, `$XDG_DATA_HOME/stroketrial/keys/<host>-<port>-<database>/`.
Back the folder up with the database backups but store it apart from them (docs/architecture.md).
"""

from __future__ import annotations

from .. import InputError

import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

KEY_FILE = "audit.key"
CHECKPOINT_FILE = "checkpoints"
CHECKPOINT_PREFIX = "stroketrial-checkpoint"


class KeystoreError(InputError):
    """The keystore cannot be used; the message says why and what to do."""


def default_location(url: str) -> Path | None:
    explicit = os.environ.get("STROKETRIAL_KEYS")
    if explicit:
        return Path(explicit)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        return Path(parsed.database + ".keys")
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    name = f"{parsed.host or 'localhost'}-{parsed.port or 5432}-{parsed.database}"
    return base / "stroketrial" / "keys" / name


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    signature: str
    source: str  # where the line came from, for messages
    chain: str = ""  # the trial whose chain it is; "" for the platform's chain

    def line(self) -> str:
        line = f"{CHECKPOINT_PREFIX} seq={self.seq} hash={self.hash} at={self.at} sig={self.signature}"
        return f"{line} chain={self.chain}" if self.chain else line


class Keystore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._key: bytes | None = None

    @property
    def key_path(self) -> Path:
        return self.folder / KEY_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    def exists(self) -> bool:
        return self.key_path.exists()

    def key(self) -> bytes:
        if self._key is None:
            try:
                text = self.key_path.read_text().strip()
                self._key = bytes.fromhex(text)
            except FileNotFoundError:
                raise KeystoreError(f"the audit key {self.key_path} is missing") from None
            except ValueError:
                raise KeystoreError(f"the audit key {self.key_path} is not 64 hex digits") from None
            if len(self._key) != 32:
                raise KeystoreError(f"the audit key {self.key_path} is not 32 bytes")
        return self._key

    def create(self) -> bytes:
        """Make the key if no process made it first (O_EXCL decides a race between processes)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.key()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return self.key()

    def key_id(self) -> str:
        """A public name for the key (not the key): recorded in the trail when the key is made."""
        return hmac.new(self.key(), b"stroketrial audit key id", hashlib.sha256).hexdigest()[:16]

    # ---- checkpoints -------------------------------------------------------------------------------------
    def sign(self, seq: int, digest: str, at: str, chain: str = "") -> str:
        # The platform chain keeps the signature its lines had before there were trial chains.
        text = f"checkpoint:{chain}:{seq}:{digest}:{at}" if chain else f"checkpoint:{seq}:{digest}:{at}"
        return hmac.new(self.key(), text.encode(), hashlib.sha256).hexdigest()

    def checkpoint(self, seq: int, digest: str, chain: str = "") -> Checkpoint:
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return Checkpoint(seq, digest, at, self.sign(seq, digest, at, chain), "now", chain)

    def append_checkpoint(self, seq: int, digest: str, chain: str = "") -> None:
        """One line, one write() on an O_APPEND file: lines from several processes never interleave."""
        line = (self.checkpoint(seq, digest, chain).line() + "\n").encode()
        fd = os.open(self.checkpoint_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def checkpoints(self) -> list[Checkpoint]:
        if not self.checkpoint_path.exists():
            return []
        lines = self.checkpoint_path.read_text().splitlines()
        return [parse_checkpoint(line, f"{self.checkpoint_path}:{n}") for n, line in enumerate(lines, 1)
                if line.strip()]

    def is_signed(self, checkpoint: Checkpoint) -> bool:
        return hmac.compare_digest(checkpoint.signature,
                                   self.sign(checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.chain))


def parse_checkpoint(line: str, source: str) -> Checkpoint:
    parts = line.strip().split()
    fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    try:
        if parts[0] != CHECKPOINT_PREFIX:
            raise ValueError
        return Checkpoint(int(fields["seq"]), fields["hash"], fields["at"], fields["sig"], source,
                          fields.get("chain", ""))
    except (IndexError, KeyError, ValueError):
        raise KeystoreError(f"{source}: not a checkpoint line ({CHECKPOINT_PREFIX} seq=N hash=H at=T sig=S)") \
            from None
