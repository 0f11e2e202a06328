"""Persistence behind one interface (``Store``); SQLite is the embedded default."""

from sferumd.store.base import CommitListener, Store, TxnKey
from sferumd.store.sqlite import SqliteStore

__all__ = ["CommitListener", "SqliteStore", "Store", "TxnKey"]
