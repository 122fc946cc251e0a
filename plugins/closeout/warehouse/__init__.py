"""The warehouse: connection, embedded server for demo/tests, and versioned migrations."""

from closeout.warehouse.db import WAREHOUSE_CONN_ID, connect

__all__ = ["WAREHOUSE_CONN_ID", "connect"]
