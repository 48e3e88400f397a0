"""Connectors turn a source (a file today; SCIM, LDAP or a cloud API later) into normalised records.

A connector never touches the database: it yields IdentityRecord or AccessRecord tuples and reports problems.
Staging, diffing and applying are shared by every kind (entitlements/imports/).
"""
