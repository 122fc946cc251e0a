"""Harvest API v2: the hook (protocol), the normaliser (record -> contract row) and the sync phases."""
