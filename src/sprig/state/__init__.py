"""Persistent core state: components, their configuration, and the deployment queue (SQLite)."""
