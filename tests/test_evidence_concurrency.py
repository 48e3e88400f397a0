"""Concurrent appends to the evidence chain on PostgreSQL: no fork, no gap, no duplicate.

Each thread has its own connection and its own committed transaction, as gunicorn workers and Celery
workers would. A Barrier releases them together so they really contend for the chain head.
"""

import threading

import pytest
from django.db import connection, transaction

from evidence.models import EvidenceEvent
from evidence.selectors import chain_verify
from evidence.services import Actor, Subject, event_record

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="concurrent writers need PostgreSQL; SQLite serialises every writer on one file lock",
    ),
]

THREADS = 50


class Rollback(Exception):
    pass


def append_concurrently(count: int, *, rolls_back=lambda n: False) -> list[BaseException]:
    barrier = threading.Barrier(count, timeout=30)
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                event_record(
                    actor=Actor.system(f"thread-{n}"),
                    action="tests.concurrent.appended",
                    subject=Subject("tests.thread", str(n), f"thread {n}"),
                    payload={"thread": n},
                )
                if rolls_back(n):
                    raise Rollback(n)
        except Rollback:
            pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "an append never finished (deadlock?)"
    return errors


def head_sequence() -> int:
    head = EvidenceEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    return head or 0


def test_fifty_concurrent_appends_make_one_contiguous_intact_chain(committed_db):
    start = head_sequence()

    errors = append_concurrently(THREADS)

    assert errors == []
    rows = list(
        EvidenceEvent.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("sequence", "prev_hash", "hash", "subject_id", "occurred_at")
    )
    assert [row[0] for row in rows] == list(range(start + 1, start + THREADS + 1))
    assert sorted(int(row[3]) for row in rows) == list(range(THREADS)), "each thread's event exactly once"
    hashes = [row[2] for row in rows]
    assert len(set(hashes)) == THREADS
    assert [row[1] for row in rows[1:]] == hashes[:-1]
    # Times are taken under the chain lock, so they never run backwards along the chain.
    assert [row[4] for row in rows] == sorted(row[4] for row in rows)
    result = chain_verify()
    assert result.intact, result.summary()
    assert (result.count, result.head_sequence, result.head_hash) == (
        start + THREADS,
        start + THREADS,
        hashes[-1],
    )


def test_concurrent_appends_that_roll_back_leave_no_gap(committed_db):
    start = head_sequence()

    errors = append_concurrently(THREADS, rolls_back=lambda n: n % 5 == 0)

    assert errors == []
    kept = THREADS - THREADS // 5
    rows = list(
        EvidenceEvent.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("sequence", "subject_id")
    )
    assert [row[0] for row in rows] == list(range(start + 1, start + kept + 1))
    assert sorted(int(row[1]) for row in rows) == [n for n in range(THREADS) if n % 5]
    assert chain_verify().intact
