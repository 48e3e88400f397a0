"""The evidence trail: append-only in the database, hash-chained so a bypass of that is still detected.

Service-level tests that hit the database; every one must pass on SQLite and on PostgreSQL. Tampering is done
the way a DBA bypassing the triggers would do it, inside the test transaction, so it rolls back with the test.
"""

import datetime as dt
import hashlib
import io
import string
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence import triggers
from evidence.chain import GENESIS_HASH, HASHED_FIELDS, event_hash, format_time, verify
from evidence.models import AppendOnlyError, ChainVerification, EvidenceEvent
from evidence.selectors import chain_verify
from evidence.services import (
    Actor,
    Event,
    Subject,
    canonical_payload,
    event_record,
    events_record,
    verification_run,
)

TABLE = triggers.TABLE
SYSTEM = Actor.system("tests")


def subject(n: int) -> Subject:
    return Subject("tests.thing", str(n), f"thing {n}")


def record_chain(count: int) -> list[EvidenceEvent]:
    return events_record(
        actor=SYSTEM,
        events=[Event("tests.thing.recorded", subject(n), {"n": n}) for n in range(1, count + 1)],
    )


def as_if_committed() -> None:
    """Fire PostgreSQL's deferred foreign-key checks queued by the inserts, as a commit would.

    ALTER TABLE and TRUNCATE refuse a table with pending trigger events; committed rows have none.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def bypass_append_only_triggers() -> None:
    """What a DBA with owner rights would do. Transactional on both databases, so it ends with the test."""
    as_if_committed()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        else:
            for statement in triggers.SQLITE_REMOVE:
                cursor.execute(statement)


def execute(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def run_verify_evidence() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_evidence", stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    return code, out.getvalue(), err.getvalue()


# --- The database refuses changes -----------------------------------------------------------------------


def test_update_of_an_event_is_refused_by_the_database(db):
    record_chain(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(f"UPDATE {TABLE} SET payload = %s WHERE sequence = 1", ['{"n":99}'])
    assert EvidenceEvent.objects.get(sequence=1).payload == '{"n":1}'


def test_delete_of_an_event_is_refused_by_the_database(db):
    record_chain(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(f"DELETE FROM {TABLE} WHERE sequence = 2")
    assert EvidenceEvent.objects.count() == 2


def test_delete_of_every_event_is_refused_by_the_database(db):
    record_chain(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(f"DELETE FROM {TABLE}")
    assert EvidenceEvent.objects.count() == 2


def test_truncate_of_a_table_with_events_is_refused_by_the_database(db):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE statement; its DELETE without WHERE is refused (test above)")
    record_chain(2)
    as_if_committed()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(f"TRUNCATE {TABLE}")
    assert EvidenceEvent.objects.count() == 2


def test_truncate_of_an_empty_table_is_allowed(db):
    # Django's test runner empties tables this way between transactional tests; nothing is destroyed.
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE statement")
    with transaction.atomic():
        execute(f"TRUNCATE {TABLE}")
    assert event_record(actor=SYSTEM, action="tests.thing.recorded", subject=subject(1)).sequence == 1


def test_queryset_update_and_delete_are_refused_by_the_database(db):
    record_chain(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        EvidenceEvent.objects.filter(sequence=1).update(actor_name="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        EvidenceEvent.objects.filter(sequence=2).delete()
    assert list(EvidenceEvent.objects.values_list("sequence", "actor_name")) == [
        (1, "system:tests"),
        (2, "system:tests"),
    ]


def test_saving_an_existing_event_raises_append_only_error(db):
    event = record_chain(1)[0]
    stored = EvidenceEvent.objects.get(sequence=event.sequence)
    stored.actor_name = "someone else"
    with pytest.raises(AppendOnlyError):
        stored.save()
    assert EvidenceEvent.objects.get(sequence=event.sequence).actor_name == "system:tests"


def test_deleting_an_event_raises_append_only_error(db):
    event = record_chain(1)[0]
    with pytest.raises(AppendOnlyError):
        EvidenceEvent.objects.get(sequence=event.sequence).delete()
    assert EvidenceEvent.objects.filter(sequence=event.sequence).exists()


def test_a_bypass_of_the_triggers_rolls_back_with_its_transaction(db):
    # The tamper tests below rely on this: their bypass must not outlive the test.
    record_chain(1)
    with pytest.raises(RuntimeError), transaction.atomic():
        bypass_append_only_triggers()
        execute(f"UPDATE {TABLE} SET actor_name = 'dba' WHERE sequence = 1")
        raise RuntimeError("roll back")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute(f"UPDATE {TABLE} SET actor_name = 'dba' WHERE sequence = 1")
    assert EvidenceEvent.objects.get(sequence=1).actor_name == "system:tests"


# --- verify_evidence detects a bypass -------------------------------------------------------------------


def test_verify_evidence_reports_an_intact_chain_and_exits_zero(db):
    events = record_chain(5)
    code, out, err = run_verify_evidence()
    assert (code, err) == (0, "")
    assert out == f"intact: 5 events, head {events[-1].hash}\n"


def test_verify_evidence_reports_an_empty_chain_as_intact(db):
    code, out, err = run_verify_evidence()
    assert (code, out, err) == (0, f"intact: 0 events, head {GENESIS_HASH}\n", "")


def test_verify_evidence_names_an_edited_payload(db):
    record_chain(5)
    bypass_append_only_triggers()
    execute(f"UPDATE {TABLE} SET payload = %s WHERE sequence = 3", ['{"n":300}'])
    code, out, err = run_verify_evidence()
    assert (code, out) == (1, "")
    assert err.startswith("broken at sequence 3: stored hash does not match the event's content")


def test_verify_evidence_names_a_deleted_row(db):
    record_chain(5)
    bypass_append_only_triggers()
    execute(f"DELETE FROM {TABLE} WHERE sequence = 3")
    code, out, err = run_verify_evidence()
    assert (code, out) == (1, "")
    assert err.startswith("broken at sequence 3: expected sequence 3, found 4")


def test_verify_evidence_names_a_deleted_first_row(db):
    record_chain(3)
    bypass_append_only_triggers()
    execute(f"DELETE FROM {TABLE} WHERE sequence = 1")
    code, _, err = run_verify_evidence()
    assert code == 1
    assert err.startswith("broken at sequence 1: expected sequence 1, found 2")


def test_verify_evidence_names_a_swapped_pair(db):
    record_chain(5)
    bypass_append_only_triggers()
    # sequence is the primary key (and must stay >= 1), so swap through a free positive value.
    execute(f"UPDATE {TABLE} SET sequence = 1000000 WHERE sequence = 2")
    execute(f"UPDATE {TABLE} SET sequence = 2 WHERE sequence = 3")
    execute(f"UPDATE {TABLE} SET sequence = 3 WHERE sequence = 1000000")
    code, out, err = run_verify_evidence()
    assert (code, out) == (1, "")
    # The event now at 2 (formerly 3) links to the hash of the old 2, not to event 1.
    assert err.startswith("broken at sequence 2: prev_hash does not match")


def test_verify_evidence_names_the_event_after_a_forged_hash(db):
    record_chain(5)
    bypass_append_only_triggers()
    edited = EvidenceEvent.objects.get(sequence=3)
    edited.payload = '{"n":300}'
    forged = event_hash(edited.hashed_fields())
    execute(f"UPDATE {TABLE} SET payload = %s, hash = %s WHERE sequence = 3", [edited.payload, forged])
    code, out, err = run_verify_evidence()
    assert (code, out) == (1, "")
    # Event 3 is self-consistent now; the link from event 4 is what breaks.
    assert err.startswith("broken at sequence 4: prev_hash does not match")


# --- Recording ------------------------------------------------------------------------------------------


def test_an_event_rolled_back_with_its_change_leaves_no_event_and_no_gap(db):
    first = event_record(actor=SYSTEM, action="tests.thing.recorded", subject=subject(1))
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record(actor=SYSTEM, action="tests.thing.recorded", subject=subject(2))
        raise RuntimeError("the change this event records failed")
    assert list(EvidenceEvent.objects.values_list("sequence", flat=True)) == [first.sequence]
    after = event_record(actor=SYSTEM, action="tests.thing.recorded", subject=subject(3))
    assert after.sequence == first.sequence + 1
    assert after.prev_hash == first.hash
    assert chain_verify().intact


def test_the_first_event_links_to_the_genesis_hash(db):
    first = event_record(actor=SYSTEM, action="tests.thing.recorded", subject=subject(1))
    assert (first.sequence, first.prev_hash) == (1, GENESIS_HASH)


def test_bulk_recording_gives_contiguous_linked_sequence_numbers_across_batches(db):
    before = event_record(actor=SYSTEM, action="tests.thing.recorded", subject=subject(0))
    written = events_record(
        actor=SYSTEM,
        events=[Event("tests.thing.recorded", subject(n), {"n": n}) for n in range(1, 26)],
        batch_size=10,
    )
    assert [e.sequence for e in written] == list(range(before.sequence + 1, before.sequence + 26))
    assert [e.prev_hash for e in written] == [before.hash] + [e.hash for e in written[:-1]]
    stored = list(EvidenceEvent.objects.filter(sequence__gt=before.sequence).values_list("sequence", "hash"))
    assert stored == [(e.sequence, e.hash) for e in written]
    result = chain_verify()
    assert (result.intact, result.count, result.head_hash) == (True, 26, written[-1].hash)


def test_a_user_actor_is_recorded_and_hashed_with_its_user_id(db, django_user_model):
    user = django_user_model.objects.create_user(username="alice", password="correct horse battery")
    event = event_record(actor=Actor.for_user(user), action="tests.thing.recorded", subject=subject(1))
    stored = EvidenceEvent.objects.get(sequence=event.sequence)
    assert (stored.actor_kind, stored.actor_user_id, stored.actor_name) == ("user", user.pk, "alice (alice)")
    assert event_hash(stored.hashed_fields()) == stored.hash
    assert chain_verify().intact


def test_a_user_actor_without_a_user_id_is_refused(db):
    with pytest.raises(ValueError, match="user id"):
        event_record(actor=Actor("user", "ghost"), action="tests.thing.recorded", subject=subject(1))
    assert not EvidenceEvent.objects.exists()


def test_canonical_payload_ignores_key_order():
    assert canonical_payload({"b": 1, "a": {"d": 2, "c": [3, 1]}}) == '{"a":{"c":[3,1],"d":2},"b":1}'
    assert canonical_payload({"a": {"c": [3, 1], "d": 2}, "b": 1}) == '{"a":{"c":[3,1],"d":2},"b":1}'


def test_canonical_payload_serialises_dates_decimals_and_uuids():
    payload = {
        "on": dt.date(2024, 2, 29),
        "at": dt.datetime(2024, 2, 29, 13, 5, 7, 123456, tzinfo=dt.UTC),
        "amount": Decimal("10.50"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    assert canonical_payload(payload) == (
        '{"amount":"10.50","at":"2024-02-29T13:05:07.123Z",'
        '"id":"12345678-1234-5678-1234-567812345678","on":"2024-02-29"}'
    )


def test_canonical_payload_keeps_non_ascii_text_and_treats_none_as_empty():
    assert canonical_payload({"name": "Zoë Ångström"}) == '{"name":"Zoë Ångström"}'
    assert canonical_payload(None) == "{}"


def test_canonical_payload_refuses_nan():
    with pytest.raises(ValueError):
        canonical_payload({"ratio": float("nan")})


def test_recorded_payload_is_canonical_whatever_the_key_order(db):
    one = event_record(
        actor=SYSTEM,
        action="tests.thing.recorded",
        subject=subject(1),
        payload={"z": 1, "a": dt.date(2024, 1, 31)},
    )
    two = event_record(
        actor=SYSTEM,
        action="tests.thing.recorded",
        subject=subject(1),
        payload={"a": dt.date(2024, 1, 31), "z": 1},
    )
    stored = dict(EvidenceEvent.objects.values_list("sequence", "payload"))
    assert stored[one.sequence] == stored[two.sequence] == '{"a":"2024-01-31","z":1}'
    assert EvidenceEvent.objects.get(sequence=one.sequence).payload_data == {"a": "2024-01-31", "z": 1}


@pytest.mark.parametrize(
    "action",
    [
        "",
        "granted",
        "Access.grant.added",
        "access.GRANT.added",
        "access..added",
        ".access.grant",
        "access.grant.",
        "access.grant-added",
        "access.grant added",
        "access.grant.added ",
        "access/grant.added",
    ],
)
def test_an_invalid_action_name_is_refused_and_nothing_is_written(db, action):
    with pytest.raises(ValueError, match="dotted lower-case"):
        event_record(actor=SYSTEM, action=action, subject=subject(1))
    assert not EvidenceEvent.objects.exists()


def test_one_invalid_action_refuses_the_whole_bulk_write(db):
    with pytest.raises(ValueError, match="dotted lower-case"):
        events_record(
            actor=SYSTEM,
            events=[Event("tests.thing.recorded", subject(1)), Event("Not An Action", subject(2))],
        )
    assert not EvidenceEvent.objects.exists()


@pytest.mark.parametrize(
    "action", ["access.grant.added", "evidence.chain.verified", "review.item_decided.v2"]
)
def test_a_dotted_lower_case_action_is_accepted(db, action):
    assert event_record(actor=SYSTEM, action=action, subject=subject(1)).action == action


# --- chain.verify, without the database -----------------------------------------------------------------


def build_chain(specs: list[dict]) -> list[dict]:
    rows, prev_hash = [], GENESIS_HASH
    for sequence, spec in enumerate(specs, start=1):
        row = {**spec, "sequence": sequence, "prev_hash": prev_hash}
        row["hash"] = event_hash(row)
        prev_hash = row["hash"]
        rows.append(row)
    return rows


def spec(n: int, **overrides) -> dict:
    return {
        "occurred_at": f"2024-01-01T00:00:{n:02d}.000000Z",
        "actor_kind": "system",
        "actor_id": None,
        "actor_name": "system:tests",
        "action": "tests.thing.recorded",
        "subject_type": "tests.thing",
        "subject_id": str(n),
        "subject_repr": f"thing {n}",
        "payload": f'{{"n":{n}}}',
        **overrides,
    }


def test_the_hash_is_sha256_of_the_documented_canonical_encoding():
    # Pins the encoding: a change here breaks every existing chain and every auditor's offline verifier.
    row = {**spec(1, payload='{"amount":"10.50","name":"Zoë"}', actor_kind="user", actor_id=7)}
    row.update(sequence=1, prev_hash=GENESIS_HASH)
    material = (
        '{"action":"tests.thing.recorded","actor_id":7,"actor_kind":"user","actor_name":"system:tests",'
        '"occurred_at":"2024-01-01T00:00:01.000000Z","payload":"{\\"amount\\":\\"10.50\\",\\"name\\":\\"Zoë\\"}",'
        f'"prev_hash":"{GENESIS_HASH}","sequence":1,"subject_id":"1","subject_repr":"thing 1",'
        '"subject_type":"tests.thing"}'
    )
    assert event_hash(row) == hashlib.sha256(material.encode("utf-8")).hexdigest()


def test_the_hash_ignores_fields_outside_the_hashed_set():
    row = {**spec(1), "sequence": 1, "prev_hash": GENESIS_HASH}
    assert event_hash({**row, "hash": "x", "extra": 1}) == event_hash(row)


def test_format_time_is_utc_with_microseconds_and_refuses_naive_times():
    moment = dt.datetime(2024, 3, 1, 1, 2, 3, 45, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_time(moment) == "2024-02-29T23:02:03.000045Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(dt.datetime(2024, 3, 1))


def test_verify_of_an_empty_chain_is_intact_at_genesis():
    result = verify([])
    assert (result.intact, result.count, result.head_sequence, result.head_hash) == (True, 0, 0, GENESIS_HASH)


def test_verify_reports_count_and_head_of_an_intact_chain():
    rows = build_chain([spec(n) for n in range(1, 4)])
    result = verify(rows)
    assert (result.intact, result.count, result.head_sequence, result.head_hash) == (
        True,
        3,
        3,
        rows[-1]["hash"],
    )
    assert result.broken_sequence is None


def test_verify_checks_a_segment_from_a_known_starting_point():
    rows = build_chain([spec(n) for n in range(1, 6)])
    segment = verify(rows[2:], start_sequence=3, start_prev_hash=rows[1]["hash"])
    assert (segment.intact, segment.count, segment.head_hash) == (True, 3, rows[-1]["hash"])
    wrong_start = verify(rows[2:], start_sequence=3, start_prev_hash=GENESIS_HASH)
    assert (wrong_start.intact, wrong_start.broken_sequence) == (False, 3)


def test_verify_reports_the_last_good_head_when_broken():
    rows = build_chain([spec(n) for n in range(1, 6)])
    rows[3] = {**rows[3], "payload": '{"n":400}'}
    result = verify(rows)
    assert (result.intact, result.broken_sequence, result.count) == (False, 4, 3)
    assert (result.head_sequence, result.head_hash) == (3, rows[2]["hash"])
    assert result.summary().startswith("broken at sequence 4: ")


def test_a_rewritten_tail_is_invisible_to_verify_but_changes_the_head():
    # Why each verification records the head hash: only a recorded head catches a forged last event.
    rows = build_chain([spec(n) for n in range(1, 4)])
    forged = {**rows[-1], "payload": '{"n":300}'}
    forged["hash"] = event_hash(forged)
    result = verify([*rows[:-1], forged])
    assert result.intact
    assert result.head_hash != verify(rows).head_hash


# --- chain.verify: property tests -----------------------------------------------------------------------

hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
timestamps = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
).map(format_time)
# The language of r"[a-z]{1,8}(\.[a-z_]{1,8}){1,3}", built from text strategies: st.from_regex draws it several
# times slower, and these tests spend most of their time drawing examples.
actions = st.builds(
    lambda head, rest: ".".join([head, *rest]),
    st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8),
    st.lists(st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8), min_size=1, max_size=3),
)
event_specs = st.fixed_dictionaries(
    {
        "occurred_at": timestamps,
        "actor_kind": st.sampled_from(["user", "system"]),
        "actor_id": st.none() | st.integers(min_value=1, max_value=10**9),
        "actor_name": st.text(max_size=30),
        "action": actions,
        "subject_type": st.text(max_size=20),
        "subject_id": st.text(max_size=20),
        "subject_repr": st.text(max_size=30),
        "payload": st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4).map(
            canonical_payload
        ),
    }
)
chains = st.lists(event_specs, min_size=1, max_size=8).map(build_chain)

# A new value for a field, of the field's own type.
MUTATIONS = {
    "sequence": st.integers(min_value=-3, max_value=10**6),
    "occurred_at": timestamps,
    "actor_kind": st.sampled_from(["user", "system", "other"]),
    "actor_id": st.none() | st.integers(min_value=0, max_value=10**9),
    "prev_hash": hex64,
    "hash": hex64,
}
MUTABLE_FIELDS = (*HASHED_FIELDS, "hash")


def mutate(data, rows: list[dict], field: str) -> tuple[list[dict], int]:
    index = data.draw(st.integers(min_value=0, max_value=len(rows) - 1), label="index")
    old = rows[index][field]
    new = data.draw(
        MUTATIONS.get(field, st.text(max_size=30)).filter(lambda value: value != old), label="new"
    )
    mutated = [dict(row) for row in rows]
    mutated[index][field] = new
    return mutated, index


@settings(max_examples=200, deadline=None)
@given(rows=chains)
def test_verify_finds_any_generated_chain_intact(rows):
    result = verify(rows)
    assert (result.intact, result.count, result.head_sequence) == (True, len(rows), len(rows))
    assert result.head_hash == rows[-1]["hash"]


@settings(max_examples=300, deadline=None)
@given(rows=chains, field=st.sampled_from(MUTABLE_FIELDS), data=st.data())
def test_verify_detects_any_single_field_mutation_at_the_mutated_event(rows, field, data):
    mutated, index = mutate(data, rows, field)
    result = verify(mutated)
    # Every event is checked against its own stored hash and its own prev_hash, so an edit of any hashed
    # field, of prev_hash, or of the hash column itself is caught at the edited event, never later.
    assert not result.intact
    assert result.broken_sequence == index + 1
    assert result.count == index
    expected_reason = {
        "sequence": "expected sequence",
        "prev_hash": "prev_hash does not match",
    }.get(field, "stored hash does not match")
    assert result.reason.startswith(expected_reason)


@settings(max_examples=300, deadline=None)
@given(
    rows=chains.filter(lambda rows: len(rows) >= 2),
    field=st.sampled_from([f for f in HASHED_FIELDS if f not in ("sequence", "prev_hash")]),
    data=st.data(),
)
def test_verify_detects_a_forged_hash_at_the_next_event(rows, field, data):
    mutated, index = mutate(data, rows[:-1], field)  # the last event has no successor to betray it
    mutated.append(dict(rows[-1]))
    mutated[index]["hash"] = event_hash(mutated[index])
    result = verify(mutated)
    assert not result.intact
    assert result.broken_sequence == index + 2
    assert result.reason.startswith("prev_hash does not match")


@settings(max_examples=100, deadline=None)
@given(rows=chains.filter(lambda rows: len(rows) >= 2), data=st.data())
def test_verify_detects_a_removed_event_at_its_sequence(rows, data):
    index = data.draw(st.integers(min_value=0, max_value=len(rows) - 2), label="index")
    result = verify(rows[:index] + rows[index + 1 :])
    assert (result.intact, result.broken_sequence) == (False, index + 1)


# --- Verification runs ----------------------------------------------------------------------------------


def queued_verification() -> ChainVerification:
    return ChainVerification.objects.create(requested_by_name="system:tests")


def test_a_verification_run_records_an_intact_chain_and_a_verified_event(db):
    events = record_chain(4)
    verification = queued_verification()
    assert verification_run(verification_id=verification.pk) is True
    verification.refresh_from_db()
    assert verification.status == ChainVerification.Status.INTACT
    assert (verification.event_count, verification.head_sequence, verification.head_hash) == (
        4,
        4,
        events[-1].hash,
    )
    assert verification.broken_sequence is None
    assert verification.started_at is not None and verification.finished_at is not None
    assert verification.detail == (
        f"intact: 4 events, head {events[-1].hash}; no external checkpoint to compare with yet"
    )
    event = EvidenceEvent.objects.order_by("-sequence").first()
    assert (event.sequence, event.action, event.actor_name) == (
        5,
        "evidence.chain.verified",
        "system:evidence.verify_chain",
    )
    assert (event.subject_type, event.subject_id) == ("evidence.chainverification", str(verification.pk))
    assert event.payload_data == {
        "intact": True,
        "event_count": 4,
        "head_sequence": 4,
        "head_hash": events[-1].hash,
        "broken_sequence": None,
        "checkpoint": None,
        "detail": verification.detail,
    }
    assert chain_verify().intact


def test_a_verification_run_twice_runs_once_and_writes_nothing_more(db):
    record_chain(2)
    verification = queued_verification()
    assert verification_run(verification_id=verification.pk) is True
    verification.refresh_from_db()
    events_after_first = list(EvidenceEvent.objects.values_list("sequence", "hash"))

    assert verification_run(verification_id=verification.pk) is False

    assert list(EvidenceEvent.objects.values_list("sequence", "hash")) == events_after_first
    again = ChainVerification.objects.get(pk=verification.pk)
    assert (again.status, again.started_at, again.finished_at, again.detail) == (
        verification.status,
        verification.started_at,
        verification.finished_at,
        verification.detail,
    )
    assert ChainVerification.objects.count() == 1


def test_a_verification_run_of_an_unknown_id_does_nothing(db):
    assert verification_run(verification_id=999_999) is False
    assert not EvidenceEvent.objects.exists()


def test_a_verification_run_on_a_tampered_chain_records_broken_with_the_sequence(db):
    events = record_chain(5)
    bypass_append_only_triggers()
    execute(f"UPDATE {TABLE} SET subject_repr = 'someone else' WHERE sequence = 2")
    verification = queued_verification()

    assert verification_run(verification_id=verification.pk) is True

    verification.refresh_from_db()
    assert verification.status == ChainVerification.Status.BROKEN
    assert verification.broken_sequence == 2
    assert (verification.event_count, verification.head_sequence, verification.head_hash) == (
        1,
        1,
        events[0].hash,
    )
    assert verification.detail.startswith("broken at sequence 2: ")
    event = EvidenceEvent.objects.order_by("-sequence").first()
    assert (event.sequence, event.action) == (6, "evidence.chain.broken")
    assert event.payload_data["broken_sequence"] == 2
    assert event.payload_data["intact"] is False
