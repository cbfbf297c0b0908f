"""Base backups, WAL archiving, the backup catalog, expiry and the secondary copy."""
