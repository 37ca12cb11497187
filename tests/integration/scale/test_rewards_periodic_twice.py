"""Two rewards processes running their due jobs at the same moment apply each piece of due
work once (issue 16): voucher expiry, the green channel (claims and held compensations
escalated at 12 hours, announced overdue at 24) and catalogue claims the points service
never answered, with both outbox relays running, on Apache Kafka.

The due rows are inserted in one transaction once both processes are ready, as the books
hold them when the work falls due; jobs run every second in small batches, so both
instances' passes interleave over the same rows. Each kind of due row has a twin that is
not due yet and must stay untouched.

Event ids are derived from the row, so a row handled twice would not show as a second
distinct id on the topic. So the test also counts (a) the rows the relays published (their
`loyalty_outbox_published_total`), which must equal the events expected, and (b) every
UPDATE of a due row, recorded by a trigger installed for the test with the login role of
the instance that made it: each instance connects as its own role, so the same audit
proves both instances did job work, not one alone while the other idled.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Databases, Infra
from tests.support.services import ServiceProcess, start_service, wait_ready

pytestmark = pytest.mark.integration

# Enough due rows in small batches that one pass takes longer than the 1 s interval:
# the other instance's pass starts while the first is still working.
VOUCHERS = 1200  # past their expiry
CLAIMS_12H = 60  # guarantee claims undecided 13 hours: escalated
CLAIMS_24H = 60  # undecided 25 hours: escalated and overdue
HELD_12H = 60  # compensations held 13 hours: escalated
HELD_24H = 60  # held 25 hours: escalated and overdue
CATALOGUE = 400  # catalogue claims unanswered 20 minutes, timeout 10 minutes
LIVE_CATALOGUE = 3  # requested just now: keep their units
TIMEOUT_SECONDS = 600
BATCH = 5

AUDIT = [
    "CREATE TABLE job_audit (tbl text NOT NULL, row_id text NOT NULL, by_role text NOT NULL)",
    "CREATE FUNCTION job_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO job_audit VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> TG_ARGV[0], session_user);"
    " RETURN NEW; END $$",
    *(
        f"CREATE TRIGGER audit_{table} AFTER UPDATE ON {table} FOR EACH ROW"
        f" EXECUTE FUNCTION job_audit('{key}')"
        for table, key in [
            ("vouchers", "voucher_id"),
            ("guarantee_claims", "claim_id"),
            ("compensations", "compensation_id"),
            ("catalogue_claims", "claim_id"),
        ]
    ),
]

PUBLISHED = re.compile(r'^loyalty_outbox_published_total\{service="rewards"\} (\S+)$', re.M)

VOUCHER = sa.text(
    "INSERT INTO vouchers (voucher_id, code, customer_id, reward_code, origin, origin_ref,"
    " merchant_id, issued_at, expires_at) VALUES"
    " (:id, :code, :customer, 'tea', 'catalogue', :ref, 'cafe', :issued, :expires)"
)
CLAIM = sa.text(
    "INSERT INTO guarantee_claims (claim_id, customer_id, merchant_id, order_id, promise_kind,"
    " measured_value, measured_unit, order_amount_minor, currency, filed_at, status) VALUES"
    " (:id, :customer, 'pizza', :order, 'delivery_minutes', 55, 'minutes', 2500, 'EUR',"
    " :at, 'in_review')"
)
BREACH = sa.text(
    "INSERT INTO breaches (breach_key, customer_id, merchant_id, order_id, promise_kind,"
    " currency, order_amount_minor, worst_value, worst_unit, tier, first_seen_at, updated_at)"
    " VALUES (:key, :customer, 'pizza', :order, 'delivery_minutes', 'EUR', 2500, 55,"
    " 'minutes', 1, :at, :at)"
)
HELD = sa.text(
    "INSERT INTO compensations (compensation_id, breach_key, tier, customer_id, merchant_id,"
    " order_id, promise_kind, points, refund_minor, currency, new_breach, status, trigger,"
    " trigger_ref, review_reasons, created_at) VALUES"
    " (:id, :key, 1, :customer, 'pizza', :order, 'delivery_minutes', 100, 500, 'EUR', true,"
    " 'in_review', 'claim', :order, ARRAY['refund_over_cap'], :at)"
)
ITEM = sa.text(
    "INSERT INTO catalogue_items (item_id, reward_code, title, points_cost, claimable_from,"
    " claimable_until, voucher_valid_days, total_stock, units_claimed) VALUES"
    " (:item, 'tea', 'Tea', 40, :start, :end, 30, :stock, :units)"
)
CATALOGUE_CLAIM = sa.text(
    "INSERT INTO catalogue_claims (claim_id, item_id, customer_id, points, merchant_id, state,"
    " created_at, updated_at) VALUES (:id, :item, :customer, 40, 'rewards', 'requested',"
    " :at, :at)"
)


def _ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


async def _published(service: ServiceProcess) -> int:
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
        response = await client.get("/metrics")
    response.raise_for_status()
    found = PUBLISHED.search(response.text)
    return int(float(found.group(1))) if found else 0


async def _assert_ready(service: ServiceProcess) -> None:
    """Process alive and every worker (consumer, jobs, relay) running: a job that crashed
    (a constraint broken by work applied twice) fails the test at once."""
    assert service.process.poll() is None, service.tail()
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, f"{response.text}\n{service.tail()}"


async def test_rewards_due_jobs_in_two_instances_each_apply_once(
    infra: Infra, apache_kafka: str, databases: Databases, unique: str, tmp_path: Path
) -> None:
    topics = {
        "points": f"loyalty.points.{unique}",
        "incidents": f"service.incidents.{unique}",
        "purchases": f"pos.purchases.{unique}",
        "rewards": f"loyalty.rewards.{unique}",
        "ops": f"ops.escalations.{unique}",
    }
    group = f"rewards-p-{unique}"
    await ensure_topics(apache_kafka, [*topics.values(), f"{group}.dlq"], 4)
    rewards_db = await databases.fresh("rewards")
    engine = create_engine(rewards_db, pool_size=2)
    url = make_url(rewards_db)
    roles = [f"rewards_{i}_{unique}" for i in range(2)]
    async with engine.begin() as conn:
        owner = await conn.scalar(sa.text("SELECT current_user"))
        for role in roles:
            password = (url.password or "").replace("'", "''")
            await conn.execute(
                sa.text(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{password}\' IN ROLE "{owner}"')
            )
        for statement in AUDIT:
            await conn.execute(sa.text(statement))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": apache_kafka,
        "REWARDS_CONSUMER_GROUP": group,
        "REWARDS_POINTS_TOPIC": topics["points"],
        "REWARDS_INCIDENTS_TOPIC": topics["incidents"],
        "REWARDS_PURCHASES_TOPIC": topics["purchases"],
        "REWARDS_REWARDS_TOPIC": topics["rewards"],
        "REWARDS_OPS_TOPIC": topics["ops"],
        "REWARDS_JOBS_INTERVAL_SECONDS": "1",
        "REWARDS_JOBS_BATCH": str(BATCH),
        "REWARDS_CLAIM_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    }
    services = [
        start_service(
            "rewards",
            {
                **env,
                "REWARDS_DATABASE_URL": url.set(username=role).render_as_string(
                    hide_password=False
                ),
            },
            tmp_path,
            f"rewards-{i}",
        )
        for i, role in enumerate(roles)
    ]
    try:
        await asyncio.gather(*(wait_ready(s) for s in services))
        now = datetime.now(UTC).replace(microsecond=0)
        vouchers, vouchers_live = _ids(VOUCHERS), _ids(1)
        claims_12h, claims_24h, claims_live = _ids(CLAIMS_12H), _ids(CLAIMS_24H), _ids(1)
        held_12h, held_24h, held_live = _ids(HELD_12H), _ids(HELD_24H), _ids(1)
        catalogue, catalogue_live = _ids(CATALOGUE), _ids(LIVE_CATALOGUE)
        async with engine.begin() as conn:
            await conn.execute(
                VOUCHER,
                [
                    {
                        "id": vid,
                        "code": f"C{vid.hex[:16].upper()}",
                        "customer": f"cust-{vid.hex[:6]}",
                        "ref": f"claim:{vid}",
                        "issued": now - timedelta(days=30),
                        "expires": expires,
                    }
                    for vid, expires in [
                        *((v, now - timedelta(hours=1)) for v in vouchers),
                        *((v, now + timedelta(days=1)) for v in vouchers_live),
                    ]
                ],
            )
            await conn.execute(
                CLAIM,
                [
                    {
                        "id": cid,
                        "customer": f"cust-{cid.hex[:6]}",
                        "order": f"o-{cid.hex[:12]}",
                        "at": now - timedelta(hours=age),
                    }
                    for cid, age in [
                        *((c, 13) for c in claims_12h),
                        *((c, 25) for c in claims_24h),
                        *((c, 1) for c in claims_live),
                    ]
                ],
            )
            held_rows = [
                {
                    "id": hid,
                    "key": f"b-{hid.hex}",
                    "customer": f"cust-{hid.hex[:6]}",
                    "order": f"h-{hid.hex[:12]}",
                    "at": now - timedelta(hours=age),
                }
                for hid, age in [
                    *((h, 13) for h in held_12h),
                    *((h, 25) for h in held_24h),
                    *((h, 1) for h in held_live),
                ]
            ]
            await conn.execute(BREACH, held_rows)
            await conn.execute(HELD, held_rows)
            units = CATALOGUE + LIVE_CATALOGUE
            await conn.execute(
                ITEM,
                {
                    "item": "tea",
                    "start": now - timedelta(days=10),
                    "end": now + timedelta(days=10),
                    "stock": units + 10,
                    "units": units,
                },
            )
            await conn.execute(
                CATALOGUE_CLAIM,
                [
                    {"id": kid, "item": "tea", "customer": f"cust-{kid.hex[:6]}", "at": at}
                    for kid, at in [
                        *((k, now - timedelta(minutes=20)) for k in catalogue),
                        *((k, now) for k in catalogue_live),
                    ]
                ],
            )

        expected_rewards = VOUCHERS + CLAIMS_24H + HELD_24H + CATALOGUE
        expected_ops = CLAIMS_12H + CLAIMS_24H + HELD_12H + HELD_24H

        async def all_done() -> object:
            for service in services:
                await _assert_ready(service)
            async with engine.connect() as conn:
                left = {
                    "outbox": await conn.scalar(sa.text("SELECT count(*) FROM outbox")),
                    "vouchers": await conn.scalar(
                        sa.text("SELECT count(*) FROM vouchers WHERE expired_at IS NULL")
                    ),
                    "claims": await conn.scalar(
                        sa.text(
                            "SELECT count(*) FROM guarantee_claims WHERE escalated_at IS NULL"
                            " OR (filed_at <= :cut AND overdue_at IS NULL)"
                        ),
                        {"cut": now - timedelta(hours=24)},
                    ),
                    "held": await conn.scalar(
                        sa.text(
                            "SELECT count(*) FROM compensations WHERE escalated_at IS NULL"
                            " OR (created_at <= :cut AND overdue_at IS NULL)"
                        ),
                        {"cut": now - timedelta(hours=24)},
                    ),
                    "catalogue": await conn.scalar(
                        sa.text("SELECT count(*) FROM catalogue_claims WHERE state = 'requested'")
                    ),
                }
            # What must stay: one live voucher, claim and held compensation each (never
            # escalated), and the live catalogue claims.
            settled = {"outbox": 0, "vouchers": 1, "claims": 1, "held": 1}
            settled["catalogue"] = LIVE_CATALOGUE
            return True if left == settled else left

        await wait_until(all_done, timeout=150, interval=0.5)
        # Several more passes of both instances over books with nothing due; then count.
        await asyncio.sleep(3)
        for service in services:
            await _assert_ready(service)

        async with engine.connect() as conn:
            expired = set(
                (
                    await conn.execute(
                        sa.text("SELECT voucher_id FROM vouchers WHERE expired_at IS NOT NULL")
                    )
                ).scalars()
            )
            claims = {
                r.claim_id: (r.escalated_at is not None, r.overdue_at is not None)
                for r in await conn.execute(
                    sa.text("SELECT claim_id, escalated_at, overdue_at FROM guarantee_claims")
                )
            }
            held = {
                r.compensation_id: (r.escalated_at is not None, r.overdue_at is not None)
                for r in await conn.execute(
                    sa.text("SELECT compensation_id, escalated_at, overdue_at FROM compensations")
                )
            }
            states = {
                r.claim_id: (r.state, r.reason)
                for r in await conn.execute(
                    sa.text("SELECT claim_id, state, reason FROM catalogue_claims")
                )
            }
            units_claimed = await conn.scalar(
                sa.text("SELECT units_claimed FROM catalogue_items WHERE item_id = 'tea'")
            )
            audit = [
                (r.tbl, r.row_id, r.by_role)
                for r in await conn.execute(sa.text("SELECT tbl, row_id, by_role FROM job_audit"))
            ]
        assert expired == set(vouchers)
        assert claims == {
            **{c: (True, False) for c in claims_12h},
            **{c: (True, True) for c in claims_24h},
            **{c: (False, False) for c in claims_live},
        }
        assert held == {
            **{h: (True, False) for h in held_12h},
            **{h: (True, True) for h in held_24h},
            **{h: (False, False) for h in held_live},
        }
        assert states == {
            **{k: ("cancelled", "points_timeout") for k in catalogue},
            **{k: ("requested", None) for k in catalogue_live},
        }
        assert units_claimed == LIVE_CATALOGUE, "stock returned once per cancelled claim"
        # Every UPDATE of a due row: one per job that applies to it (two for rows both
        # escalated and overdue), none for rows not due, whichever instance made it.
        updates = Counter((tbl, row_id) for tbl, row_id, _ in audit)
        assert updates == Counter(
            {
                **{("vouchers", str(v)): 1 for v in vouchers},
                **{("guarantee_claims", str(c)): 1 for c in claims_12h},
                **{("guarantee_claims", str(c)): 2 for c in claims_24h},
                **{("compensations", str(h)): 1 for h in held_12h},
                **{("compensations", str(h)): 2 for h in held_24h},
                **{("catalogue_claims", str(k)): 1 for k in catalogue},
            }
        ), "a due row updated more than once per job, or a row not due updated"
        by_instance = Counter(role for _, _, role in audit)
        assert set(by_instance) == set(roles), f"both instances did job work: {by_instance}"

        rewards_out = await read_topic(apache_kafka, topics["rewards"], expected_rewards, 30)
        ops_out = await read_topic(apache_kafka, topics["ops"], expected_ops, 30)
        records = [orjson.loads(r.value) for r in [*rewards_out, *ops_out] if r.value]
        by_id = {e["event_id"]: e for e in records}
        duplicates = len(records) - len(by_id)
        subjects = Counter(
            (
                e["type"],
                e["data"].get("voucher_id")
                or e["data"].get("claim_id")
                or e["data"].get("compensation_id")
                or e["data"].get("subject_id")
                or e["data"].get("debit_id"),
            )
            for e in by_id.values()
        )
        wanted = Counter(
            [
                *(("voucher.expired", str(v)) for v in vouchers),
                *(("claim.escalated", str(c)) for c in [*claims_12h, *claims_24h]),
                *(("compensation.escalated", str(h)) for h in [*held_12h, *held_24h]),
                *(("review.overdue", str(x)) for x in [*claims_24h, *held_24h]),
                *(("points.debit_reversal_requested", str(k)) for k in catalogue),
            ]
        )
        assert subjects == wanted, "one event per due row, by distinct event id"
        assert len(by_id) == expected_rewards + expected_ops
        # Ids are derived from the row, so a row handled twice shows as a second outbox
        # row with the same id: the relays published exactly one row per event.
        published = [await _published(s) for s in services]
        assert sum(published) == expected_rewards + expected_ops, published
        print(
            f"\nrows updated per instance and table: {Counter((r, t) for t, _, r in audit)};"
            f" relayed per instance: {published}; duplicates on topics: {duplicates}"
        )
    finally:
        for service in services:
            service.kill()
        await engine.dispose()
        await _drop_roles(rewards_db, roles)


async def _drop_roles(admin_url: str, roles: list[str]) -> None:
    """The roles are cluster-wide; the killed instances' sessions may take a moment to end."""
    engine = create_engine(admin_url, pool_size=1)
    try:
        for role in roles:
            for _ in range(20):
                try:
                    async with engine.begin() as conn:
                        await conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
                        await conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
                    break
                except sa.exc.DBAPIError:
                    await asyncio.sleep(0.25)
    finally:
        await engine.dispose()
