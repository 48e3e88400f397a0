"""Database triggers that make the evidence table append-only.

Installed by migration 0002; kept here so the migration and the test helpers that simulate a DBA bypassing
them share one definition. A TRUNCATE of an empty table is allowed: it destroys nothing, and Django's test
runner truncates every table between transactional tests.
"""

TABLE = "evidence_evidenceevent"
# The tables the application's database role may only read and insert into (soxgov/dbroles.py).
APPEND_ONLY_TABLES = (TABLE,)

POSTGRES_INSTALL = f"""
CREATE OR REPLACE FUNCTION soxgov_evidence_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND NOT EXISTS (SELECT 1 FROM {TABLE}) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'evidence events are append-only: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER evidence_refuse_update_delete BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION soxgov_evidence_refuse_change();
CREATE TRIGGER evidence_refuse_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION soxgov_evidence_refuse_change();
"""

POSTGRES_REMOVE = f"""
DROP TRIGGER IF EXISTS evidence_refuse_truncate ON {TABLE};
DROP TRIGGER IF EXISTS evidence_refuse_update_delete ON {TABLE};
DROP FUNCTION IF EXISTS soxgov_evidence_refuse_change();
"""

SQLITE_INSTALL = [
    f"""CREATE TRIGGER IF NOT EXISTS evidence_refuse_update BEFORE UPDATE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'evidence events are append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS evidence_refuse_delete BEFORE DELETE ON {TABLE}
        BEGIN SELECT RAISE(ABORT, 'evidence events are append-only: DELETE refused'); END""",
]

SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS evidence_refuse_update",
    "DROP TRIGGER IF EXISTS evidence_refuse_delete",
]


def install(schema_editor) -> None:
    _run(schema_editor, POSTGRES_INSTALL, SQLITE_INSTALL)


def remove(schema_editor) -> None:
    _run(schema_editor, POSTGRES_REMOVE, SQLITE_REMOVE)


def _run(schema_editor, postgres_sql: str, sqlite_statements: list[str]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # params=None: the function body contains RAISE ... % placeholders, not query parameters.
        schema_editor.execute(postgres_sql, params=None)
    elif vendor == "sqlite":
        for statement in sqlite_statements:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError(f"evidence triggers are not defined for {vendor}")
