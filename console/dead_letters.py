"""Dead letters per consumer group: read from `<group>.dlq`, fixed and replayed.

The same steps as `loyalty dlq replay` (tooling.cli_kafka): the dead letter is found by its
place in the dlq topic, the fixed event must pass the contracts, a `payload_conflict` needs a
new event id, and the replay goes to the topic named in its `dlq.original.topic` header with
a `replay.of` header. Dead letters span every merchant, so only an admin key of the group's
service may see or replay them.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.sessions import SERVICES
from console.web import back_to, posted_form, render, signed_in
from shared.contracts.topics import dead_letter_topic
from tooling.cli_env import CommandError, bootstrap_servers
from tooling.cli_events import (
    Message,
    check_events,
    event_id_of,
    original_topic,
    select_dead_letter,
)
from tooling.cli_kafka import publish_events, read_whole_topic

router = APIRouter()


def _bootstrap(request: Request) -> str:
    configured: str | None = request.app.state.bootstrap_servers
    return bootstrap_servers(configured)


def _pretty(value: bytes | None) -> str:
    try:
        return orjson.dumps(orjson.loads(value or b""), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return (value or b"").decode(errors="replace")


def letter_view(message: Message) -> dict[str, Any]:
    return {
        "partition": message.partition,
        "offset": message.offset,
        "where": message.where,
        "code": message.header("dlq.error.code"),
        "message": message.header("dlq.error.message"),
        "original": (
            f"{message.header('dlq.original.topic')}[{message.header('dlq.original.partition')}]"
            f"@{message.header('dlq.original.offset')}"
        ),
        "event_id": event_id_of(message.value),
        "payload": _pretty(message.value),
    }


def _group(request: Request) -> str:
    group = request.query_params.get("group", "points")
    return group if group in SERVICES else "points"


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters(request: Request) -> HTMLResponse:
    session = signed_in(request)
    group = _group(request)
    context: dict[str, Any] = {"group": group, "groups": SERVICES, "letters": []}
    if not session.is_admin(group):
        context["problem"] = f"dead letters of {group} need an admin key of the {group} service"
        return render(request, "dead_letters.html", context, status=403)
    try:
        found = await read_whole_topic(_bootstrap(request), dead_letter_topic(group), patience=15)
    except (CommandError, KafkaError) as exc:
        context["problem"] = f"cannot read {dead_letter_topic(group)}: {exc}"
        return render(request, "dead_letters.html", context, status=502)
    context["letters"] = [
        letter_view(m) for m in sorted(found, key=lambda m: -(m.timestamp_ms or 0))
    ]
    return render(request, "dead_letters.html", context)


@router.post("/dead-letters/{group}/{partition}/{offset}/replay")
async def replay(request: Request, group: str, partition: int, offset: int) -> Response:
    session = signed_in(request)
    form = await posted_form(request)
    back = f"/dead-letters?group={group if group in SERVICES else 'points'}"
    if group not in SERVICES or not session.is_admin(group):
        return back_to(back, session, f"Refused: replaying needs an admin key of {group}.")
    bootstrap = _bootstrap(request)
    try:
        letters = await read_whole_topic(bootstrap, dead_letter_topic(group), patience=15)
        letter = select_dead_letter(letters, offset=offset, partition=partition)
        events = check_events(form.get("event", ""), "the fixed event")
        if len(events) != 1:
            raise CommandError("a replay publishes exactly one event")
        conflict = letter.header("dlq.error.code") == "payload_conflict"
        if conflict and event_id_of(letter.value) == str(events[0].event.event_id):
            raise CommandError(
                "this dead letter reused an event id with other content; "
                "the fixed event needs a new event_id"
            )
        placed = await publish_events(
            bootstrap, events, original_topic(letter), [("replay.of", letter.where.encode())]
        )
    except (CommandError, KafkaError) as exc:
        return back_to(back, session, f"Not replayed: {exc}")
    topic, part, off = placed[0]
    return back_to(
        back,
        session,
        f"Replayed {letter.where} as {events[0].event.event_id} to {topic}[{part}]@{off}.",
    )
