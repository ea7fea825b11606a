"""Sync: Git remotes, replication, the HTTP server and client."""
