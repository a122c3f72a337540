"""etcd of a lab: backups (snapshots off the lab, checked), listing, pruning and restore."""

from toolkit.etcd.backup import BackupResult, backup
from toolkit.etcd.manifest import SnapshotError
from toolkit.etcd.restore import RestoreError, RestoreResult, restore, resume
from toolkit.etcd.rollback import RollbackError, rollback
from toolkit.etcd.snapshots import list_backups, resolve
from toolkit.etcd.status import EtcdError

__all__ = [
    "BackupResult",
    "EtcdError",
    "RestoreError",
    "RestoreResult",
    "RollbackError",
    "SnapshotError",
    "backup",
    "list_backups",
    "resolve",
    "restore",
    "resume",
    "rollback",
]
