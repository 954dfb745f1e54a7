"""Numbered SQL migrations, applied once each by ``warehouse.db.migrate``."""
