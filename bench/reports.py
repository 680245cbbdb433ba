"""Report benchmark: fill PostgreSQL with N chats (10 flow events each) and time every report page
and CSV export for the last 30 days and for a full year.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tierline_bench \\
        .venv/bin/python bench/reports.py --chats 1000000

The database is created, migrated and filled when it holds fewer chats than asked (use --fresh to
refill). Rows are generated in SQL with a realistic shape: chats over the last 365 days, 30% of
them escalated from tier 1 by an agent, 10% of those never taken (timed out and fell back),
tier-1 and tier-2 assignments (each with its first reply), queue entries, routes, 10 flow events
and 4 messages per chat (words from a small vocabulary, so that a common word is in 1 message in
20, and an order number in about 20 chats), and the search page's queries timed on them.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tierline_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def ensure_database() -> None:
    import psycopg

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def fill(chats: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from escalation.models import Agent, AgentGroup, Pipeline, Stage, Tier

    call_command("migrate", verbosity=0)
    call_command("load_demo", verbosity=0)
    ids = {
        "support": Pipeline.objects.get(name="Support").pk,
        "l1": Stage.objects.get(name="L1 General").pk,
        "billing": Stage.objects.get(name="L2 Billing").pk,
        "technical": Stage.objects.get(name="L2 Technical").pk,
        "t1": Tier.objects.get(level=1).pk,
        "t2": Tier.objects.get(level=2).pk,
        "g1": AgentGroup.objects.get(name="L1 General").pk,
        "alex": Agent.objects.get(user__username="alex").pk,
        "blair": Agent.objects.get(user__username="blair").pk,
        "sam": Agent.objects.get(user__username="sam").pk,
        "kim": Agent.objects.get(user__username="kim").pk,
        "n": chats,
    }
    steps = [
        (
            "truncate",
            """TRUNCATE chat_flowevent, chat_message, escalation_escalation,
            escalation_assignment, escalation_chatroute, escalation_queueentry_agents,
            escalation_waitestimate, escalation_queueentry, escalation_offlinemessage,
            chat_chatsession RESTART IDENTITY CASCADE""",
        ),
        (
            "chats",
            """
            INSERT INTO chat_chatsession (id, public_id, visitor_name, visitor_email, topic, status,
                last_seq, last_public_seq, visitor_context, created_at, updated_at, ended_at)
            SELECT g, md5(g::text)::uuid, 'Visitor ' || g, '', 'Billing', 'ended', 6, 6,
                   '{"page": "/help"}', c, c, c + interval '25 minutes'
            FROM (SELECT g, now() - random() * interval '365 days' AS c
                  FROM generate_series(1, %(n)s) g) s""",
        ),
        (
            "plan",
            """
            CREATE UNLOGGED TABLE bench_plan AS
            SELECT id AS chat, created_at AS c,
                   (id %% 10) < 3 AS escalated,
                   (id %% 100) < 3 AS untaken,
                   CASE WHEN id %% 2 = 0 THEN %(alex)s ELSE %(blair)s END AS l1_agent,
                   CASE WHEN id %% 3 = 0 THEN %(technical)s ELSE %(billing)s END AS to_stage,
                   CASE WHEN id %% 3 = 0 THEN %(kim)s ELSE %(sam)s END AS l2_agent,
                   (ARRAY['Billing question','Technical fault','Needs engineering',
                          'Customer asked for a specialist'])[1 + id %% 4] AS reason,
                   created_at + (30 + id %% 150) * interval '1 second' AS taken1,
                   created_at + (300 + id %% 600) * interval '1 second' AS done1
            FROM chat_chatsession""",
        ),
        (
            "entries l1",
            """
            INSERT INTO escalation_queueentry (id, chat_id, stage_id, tier_id, reason, priority,
                waiting_since, entered_at, deadline, left_at, outcome)
            SELECT chat, chat, %(l1)s, %(t1)s, 'start', 0, c, c, c + interval '3 minutes', taken1,
                   'taken' FROM bench_plan""",
        ),
        (
            "entries l2",
            """
            INSERT INTO escalation_queueentry (id, chat_id, stage_id, tier_id, reason, priority,
                waiting_since, entered_at, deadline, left_at, outcome)
            SELECT %(n)s + chat, chat, to_stage, %(t2)s, 'escalation', 0, c, done1,
                   done1 + interval '2 minutes',
                   done1 + CASE WHEN untaken THEN interval '2 minutes'
                                ELSE (10 + chat %% 590) * interval '1 second' END,
                   CASE WHEN untaken THEN 'timed_out' ELSE 'taken' END
            FROM bench_plan WHERE escalated""",
        ),
        (
            "wait estimates (2 an entry)",
            """
            INSERT INTO escalation_waitestimate (entry_id, position, low_seconds, high_seconds,
                created_at)
            SELECT e.id, 2 - k, 20 + e.id %% 60, 120 + e.id %% 240,
                   e.entered_at + k * interval '20 seconds'
            FROM escalation_queueentry e CROSS JOIN generate_series(0, 1) k""",
        ),
        (
            "routes",
            """
            INSERT INTO escalation_chatroute (chat_id, pipeline_id, stage_id, tier_id, hops)
            SELECT chat, %(support)s, CASE WHEN escalated THEN to_stage ELSE %(l1)s END,
                   CASE WHEN escalated THEN %(t2)s ELSE %(t1)s END, 0 FROM bench_plan""",
        ),
        (
            "assignments l1",
            """
            INSERT INTO escalation_assignment (chat_id, agent_id, tier_id, stage_id, group_id,
                started_at, ended_at, end_reason, last_read_seq, replied_at)
            SELECT chat, l1_agent, %(t1)s, %(l1)s, %(g1)s, taken1, done1,
                   CASE WHEN escalated THEN 'escalated' ELSE 'resolved' END, 0,
                   taken1 + (5 + chat %% 90) * interval '1 second' FROM bench_plan""",
        ),
        (
            "assignments l2",
            """
            INSERT INTO escalation_assignment (chat_id, agent_id, tier_id, stage_id, group_id,
                started_at, ended_at, end_reason, last_read_seq, replied_at)
            SELECT p.chat, p.l2_agent, %(t2)s, p.to_stage, NULL, e.left_at,
                   e.left_at + interval '8 minutes', 'resolved', 0,
                   e.left_at + (10 + p.chat %% 120) * interval '1 second'
            FROM bench_plan p JOIN escalation_queueentry e ON e.id = %(n)s + p.chat
            WHERE p.escalated AND NOT p.untaken""",
        ),
        (
            "escalations",
            """
            INSERT INTO escalation_escalation (chat_id, from_stage_id, from_tier_id, from_agent_id,
                from_group_id, target_kind, target_label, to_stage_id, to_tier_id, entry_id, reason,
                note, requested_by, requested_at, taken_at, taken_by_id, outcome, repeat)
            SELECT p.chat, %(l1)s, %(t1)s, p.l1_agent, %(g1)s, 'stage',
                   CASE WHEN p.to_stage = %(billing)s THEN 'L2 Billing' ELSE 'L2 Technical' END,
                   p.to_stage, %(t2)s, %(n)s + p.chat, p.reason, 'Customer needs a specialist',
                   CASE WHEN p.chat %% 2 = 0 THEN 'command' ELSE 'button' END, p.done1,
                   CASE WHEN p.untaken THEN NULL ELSE e.left_at END,
                   CASE WHEN p.untaken THEN NULL ELSE p.l2_agent END,
                   CASE WHEN p.untaken THEN 'timed_out' ELSE 'taken' END, false
            FROM bench_plan p JOIN escalation_queueentry e ON e.id = %(n)s + p.chat
            WHERE p.escalated""",
        ),
        (
            "flow events (10 a chat)",
            """
            INSERT INTO chat_flowevent (chat_id, kind, at, data)
            SELECT p.chat,
                   (ARRAY['created','queued','assigned','first_agent_message',
                          CASE WHEN p.escalated THEN 'agent_left' ELSE 'ended' END,
                          CASE WHEN p.escalated THEN 'queued' ELSE 'ended' END,
                          CASE WHEN p.escalated THEN 'escalated' ELSE 'ended' END,
                          CASE WHEN p.untaken THEN 'timed_out' ELSE 'assigned' END,
                          CASE WHEN p.untaken THEN 'fell_back' ELSE 'first_agent_message' END,
                          'ended'])[i],
                   p.c + i * interval '90 seconds',
                   CASE WHEN p.untaken AND i = 9 THEN '{"action": "leave_message"}'::jsonb
                        ELSE '{}'::jsonb END
            FROM bench_plan p CROSS JOIN generate_series(1, 10) i""",
        ),
        ("drop the search index", "DROP INDEX IF EXISTS message_text_search"),
        (
            "messages (4 a chat)",
            """
            INSERT INTO chat_message (chat_id, seq, public_seq, kind, event, author_name, text,
                created_at)
            SELECT p.chat, i, i, CASE WHEN i %% 2 = 1 THEN 'visitor' ELSE 'agent' END, '',
                   CASE WHEN i %% 2 = 1 THEN 'Visitor' ELSE 'Alex' END,
                   (ARRAY['Hello, my','About the','Question on the','Problem with the'])[i]
                   || ' ' || (ARRAY['invoice','refund','password','delivery','parcel','account',
                        'subscription','upgrade','login','payment','receipt','discount','voucher',
                        'address','warranty','battery','screen','charger','contract','plan'])
                        [1 + (p.chat * 7 + i) %% 20]
                   || ' ' || (ARRAY['was charged twice','does not work','is late','is missing',
                        'shows an error','needs a change','is wrong','was cancelled',
                        'keeps failing','is too slow','cannot be found','expired',
                        'was never sent','is broken','looks strange'])[1 + (p.chat * 3 + i) %% 15]
                   || ', order A' || (p.chat %% 50000),
                   p.c + i * interval '40 seconds'
            FROM bench_plan p CROSS JOIN generate_series(1, 4) i""",
        ),
        (
            "search index (GIN)",
            """CREATE INDEX message_text_search ON chat_message
               USING gin ((to_tsvector('simple'::regconfig, COALESCE("text", ''))))""",
        ),
        (
            "sequences",
            """
            SELECT setval(pg_get_serial_sequence('chat_chatsession', 'id'), %(n)s);
            SELECT setval(pg_get_serial_sequence('escalation_queueentry', 'id'), 2 * %(n)s)""",
        ),
        ("cleanup", "DROP TABLE bench_plan"),
    ]
    with connection.cursor() as cursor:
        for name, sql in steps:
            started = time.perf_counter()
            for statement in sql.split(";"):
                if statement.strip():
                    cursor.execute(statement, ids)
            print(f"  {name:<28} {time.perf_counter() - started:7.1f} s", flush=True)
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("ANALYZE")
        print(f"  {'analyze':<28} {time.perf_counter() - started:7.1f} s", flush=True)


def prepare() -> None:
    """Migrations and static files of this checkout, and the daily summaries the periodic task
    keeps (timed: the first run counts every finished day, later runs only the new ones)."""
    from django.core.management import call_command

    from reporting import summaries

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    started = time.perf_counter()
    days = summaries.summarise_pending(max_days=100_000)
    print(f"summarised {days} day(s) in {time.perf_counter() - started:.1f} s", flush=True)


def count_chats() -> int:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM chat_chatsession")
            return int(cursor.fetchone()[0])
    except Exception:
        return 0


def time_reports(repeat: int) -> list[tuple[str, str, float, float, int]]:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    client = Client()
    client.force_login(get_user_model().objects.get(username="morgan"))
    today = timezone.localdate()
    ranges = {"30 days": today - timedelta(days=29), "365 days": today - timedelta(days=364)}
    pages = [
        "escalated",
        "over_time",
        "by_agent",
        "reasons",
        "waits",
        "fallbacks",
        "predicted_vs_actual",
        "friction",
    ]
    results = []
    for label, start in ranges.items():
        for page in pages:
            for fmt in ("html", "csv"):
                params = {"start": start.isoformat(), "end": today.isoformat()}
                if fmt == "csv":
                    params["format"] = "csv"
                timings, firsts, size = [], [], 0
                for _ in range(repeat):
                    started = time.perf_counter()
                    response = client.get(reverse(f"reporting:{page}"), params)
                    assert response.status_code == 200, (page, response.status_code)
                    if response.streaming:  # the header row, then the first block of rows
                        chunks = iter(response.streaming_content)
                        body = next(chunks)
                        body += next(chunks, b"")
                        firsts.append(time.perf_counter() - started)
                        body += b"".join(chunks)
                    else:
                        body = response.content
                        firsts.append(time.perf_counter() - started)
                    timings.append(time.perf_counter() - started)
                    size = len(body)
                first, total = statistics.median(firsts), statistics.median(timings)
                results.append((label, f"{page} ({fmt})", first, total, size))
                print(
                    f"  {label:<9} {page + ' (' + fmt + ')':<22} {first * 1000:8.0f} ms"
                    f" {total * 1000:8.0f} ms  {size:>11,} bytes",
                    flush=True,
                )
    return results


SEARCHES = {
    "a common word (1 message in 20)": {"q": "invoice"},
    "a rare word (about 20 chats)": {"q": "A12345"},
    "a phrase": {"q": '"charged twice"'},
    "two words, one excluded": {"q": "refund -wrong"},
    "words and a date range": {"q": "battery", "start": "", "end": ""},
    "visitor name, no words": {"visitor": "Visitor 123456"},
    "a part of an e-mail nobody has": {"visitor": "@shop"},
}


def time_search(repeat: int) -> list[tuple[str, float, int]]:
    """The search page (a manager: every chat), first page of results."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    client = Client()
    client.force_login(get_user_model().objects.get(username="morgan"))
    today = timezone.localdate()
    results = []
    for label, params in SEARCHES.items():
        query = dict(params)
        if "start" in query:
            query.update(start=(today - timedelta(days=29)).isoformat(), end=today.isoformat())
        timings, rows = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(reverse("reporting:search"), query)
            assert response.status_code == 200, (label, response.status_code)
            timings.append(time.perf_counter() - started)
            rows = response.content.count(b'?tab=transcript">Chat ')
        took = statistics.median(timings)
        results.append((label, took, rows))
        print(f"  search: {label:<34} {took * 1000:8.0f} ms  {rows} rows", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true", help="refill even if the data is there")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
    print(f"database: {os.environ['DATABASE_URL']}")
    if args.fresh or count_chats() < args.chats:
        print(f"filling {args.chats:,} chats and {args.chats * 10:,} flow events ...", flush=True)
        fill(args.chats)
    print(f"chats in the database: {count_chats():,}")
    prepare()
    print(
        f"median of {args.repeat} runs; first = the page, or a CSV's first block of rows;"
        " total = the whole response, every CSV row streamed"
    )
    print(f"  {'range':<9} {'report':<22} {'first':>11} {'total':>11}  {'size':>11}")
    results = time_reports(args.repeat)
    worst = max(results, key=lambda r: r[2])
    print(f"slowest answer: {worst[0]} {worst[1]} {worst[2] * 1000:.0f} ms (target 500 ms)")
    pages = [r for r in results if "(html)" in r[1] or r[4] < 1_000_000]
    worst_whole = max(pages, key=lambda r: r[3])
    print(
        f"slowest whole page or small CSV: {worst_whole[0]} {worst_whole[1]}"
        f" {worst_whole[3] * 1000:.0f} ms (target 500 ms)"
    )
    searched = time_search(args.repeat)
    slowest = max(searched, key=lambda r: r[1])
    print(f"slowest search: {slowest[0]} {slowest[1] * 1000:.0f} ms (target 300 ms)")
    big = [r for r in results if r[4] >= 1_000_000]
    for r in big:
        print(
            f"large export: {r[0]} {r[1]} {r[4] / 1e6:.1f} MB in {r[3] * 1000:.0f} ms"
            f" ({r[4] / 1e6 / r[3]:.0f} MB/s), first rows after {r[2] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
