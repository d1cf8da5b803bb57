"""Backups that can be trusted: atomic, checksummed, verified, restorable, kept by a policy."""
