"""Staging, diffing and applying pulled records, set-based, in one transaction.

The same SQL runs on PostgreSQL and SQLite (both support temporary tables, INSERT ... SELECT, UPDATE ... FROM
and DELETE ... WHERE NOT EXISTS); only loading the stage differs: COPY on PostgreSQL, batched INSERTs on SQLite.
"""
