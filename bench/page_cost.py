"""What one request of each page in the load test's mix costs the server, in CPU and queries.

The load test (bench/load_bench.py) is CPU-bound on two cores, so its p95 follows the CPU each request takes in
gunicorn's processes. This measures that directly, without the noise of a shared machine: each page of the
reviewers' loop is requested in-process through Django's test client (the full middleware stack, production
settings), as reviewers of the load test's database, and timed by ``time.process_time`` (this process's CPU).

    .venv/bin/python bench/load_bench.py --users 200 --setup-only --redis-url redis://127.0.0.1:6379/10
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/soxgov_load .venv/bin/python bench/page_cost.py [--profile]

``--reviewers`` (20) users from the load test's reviewers, ``--rounds`` (10) requests per page and reviewer.
Decisions are made inside a transaction that is rolled back, so the database is left as it was. ``--profile``
prints the top functions by cumulative time for the queue page, the item page and the decision.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "soxgov.settings",
    "SOXGOV_DEBUG": "0",
    "SOXGOV_SECRET_KEY": "page-cost-secret-key-not-for-production-" + "x" * 24,
    "SOXGOV_ALLOWED_HOSTS": "testserver",
    "SOXGOV_BEHIND_TLS_PROXY": "0",
    "SOXGOV_SECURE_COOKIES": "0",
    "SOXGOV_SECURE_SSL_REDIRECT": "0",
    "SOXGOV_HSTS_SECONDS": "0",
    "SOXGOV_LOG_LEVEL": "WARNING",
}


class Rollback(Exception):
    pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative, tottime ...")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL to the load test's database (load_bench.py --setup-only)")
    for key, value in PRODUCTION.items():
        os.environ.setdefault(key, value)
    os.environ.pop("REDIS_URL", None)

    import django

    django.setup()
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import setup_test_environment

    from reviews.models import ReviewItem
    from soxgov.models import User

    setup_test_environment()  # Client needs the test response hooks; it does not change settings.DEBUG
    users = list(
        User.objects.filter(
            username__startswith="rev-",
            pk__in=ReviewItem.objects.filter(status="pending").values("reviewer_id"),
        )
        .distinct()
        .order_by("pk")[: args.reviewers]
    )
    if not users:
        print("no reviewers with pending items: seed the database with load_bench.py --setup-only")
        return 1

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    costs: dict[str, list[tuple[float, int]]] = {}
    profiles: dict[str, cProfile.Profile] = {}

    def measure(label, call):
        nonlocal queries
        queries = 0
        profile = profiles.setdefault(label, cProfile.Profile()) if args.profile else None
        start = time.process_time()
        if profile:
            profile.enable()
        response = call()
        if profile:
            profile.disable()
        costs.setdefault(label, []).append(((time.process_time() - start) * 1000, queries))
        return response

    # One client per reviewer for the whole run: a client builds its handler (the middleware, WhiteNoise's file
    # index) on its first request, as a gunicorn worker does once at start, not per request.
    clients = {}
    for user in users:
        clients[user.pk] = Client()
        clients[user.pk].force_login(user)
    with connection.execute_wrapper(count):
        for round_ in range(args.rounds + 1):  # the first round warms caches and is not counted
            for user in users:
                client = clients[user.pk]
                item = (
                    ReviewItem.objects.filter(reviewer=user, status="pending")
                    .order_by("pk")
                    .values("pk", "application_id")
                    .first()
                )
                app = item["application_id"]
                pages = [
                    # The floor: an authenticated page with the site's layout (navigation, the unread count) and
                    # an empty list, through the same middleware: what any page costs before its own work.
                    ("floor: empty page (notifications)", lambda c=client: c.get("/notifications/")),
                    ("GET queue: page", lambda c=client: c.get("/reviews/?status=pending")),
                    (
                        "GET queue: filter by flag (htmx)",
                        lambda c=client: c.get(
                            "/reviews/?status=pending&flag=privileged", HTTP_HX_REQUEST="true"
                        ),
                    ),
                    (
                        "GET queue: filter by application (htmx)",
                        lambda c=client, a=app: c.get(
                            f"/reviews/?status=pending&application={a}", HTTP_HX_REQUEST="true"
                        ),
                    ),
                    (
                        "GET queue: search (htmx)",
                        lambda c=client: c.get("/reviews/?status=pending&q=a", HTTP_HX_REQUEST="true"),
                    ),
                    ("GET item: detail", lambda c=client, i=item["pk"]: c.get(f"/reviews/items/{i}/")),
                ]
                for label, call in pages:
                    response = measure(label, call) if round_ else call()
                    assert response.status_code == 200, (label, response.status_code)
                try:
                    with transaction.atomic():
                        post = lambda c=client, i=item["pk"]: c.post(  # noqa: E731
                            "/reviews/decide/",
                            {
                                "item": i,
                                "action": "revoke",
                                "comment": "page cost",
                                "next": f"/reviews/items/{i}/",
                            },
                        )
                        response = measure("POST decide: one item", post) if round_ else post()
                        assert response.status_code == 302, response.status_code
                        raise Rollback
                except Rollback:
                    pass
        connection.close()

    print(
        f"page cost: {len(users)} reviewers x {args.rounds} rounds, production settings, CPU of this process"
    )
    print(f"| {'request':<40} | {'n':>5} | {'CPU mean ms':>11} | {'CPU p95 ms':>10} | {'queries':>7} |")
    print(f"|{'-' * 42}|{'-' * 7}|{'-' * 13}|{'-' * 12}|{'-' * 9}|")
    for label, values in costs.items():
        cpu = sorted(v[0] for v in values)
        p95 = cpu[min(len(cpu) - 1, int(0.95 * len(cpu)))]
        print(
            f"| {label:<40} | {len(cpu):>5} | {statistics.fmean(cpu):>11.1f} | {p95:>10.1f} | "
            f"{statistics.fmean(v[1] for v in values):>7.1f} |"
        )
    for label, profile in profiles.items():
        print(f"\n--- profile: {label}")
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
