"""Leave room in the account table's pages (PostgreSQL), so that pulls update accounts in place.

Every pull rewrites some account rows: ``last_used_at`` of the accounts used since the last pull, the digest of
the accounts it re-read. None of those columns is indexed, so PostgreSQL can update a row within its page
(a "HOT" update, without touching the table's five indexes) when the page has room; full pages cannot. With
15% of each page free, rewriting the digest of 20k of 300k accounts took 0.30 s against 0.64 s
(bench/README.md). The setting applies to pages written from now on; ``VACUUM FULL entitlements_account``
applies it to existing rows (README.md, Operations).
"""

from django.db import migrations

FILLFACTOR = 85


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = apps.get_model("entitlements", "Account")._meta.db_table
        schema_editor.execute(
            f"ALTER TABLE {schema_editor.quote_name(table)} SET (fillfactor = {FILLFACTOR})"
        )


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        table = apps.get_model("entitlements", "Account")._meta.db_table
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("entitlements", "0007_account_pull_digest"),
    ]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
