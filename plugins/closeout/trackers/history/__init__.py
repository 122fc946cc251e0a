"""The one-time import of trackers' historical detailed time exports (CSV)."""
