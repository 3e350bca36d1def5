"""Notifications from a real worker to real local servers: a Slack stand-in and an SMTP relay
with STARTTLS and AUTH.

A period-closed run gives one grouped digest per tenant, reason and channel, naming the
invoices and the replay command; a burst of 500 failures gives a handful of messages; and a
worker restarted under a redelivery of every failure sends nothing twice.
"""

from __future__ import annotations

import asyncio
import re
import time
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from adapters.notify import TITLES
from domain.errors import Reason, StageError
from domain.events import Envelope, Failure, Received, Stage
from domain.tenants import load_tenants
from streams.config import Settings
from streams.kafka.eventlog import read_topics
from streams.kafka.publish import Publisher
from streams.pipeline.notifications import summarize
from tests.conftest import dext_item
from tests.integration.helpers import (
    events_for,
    prepare,
    publish,
    sample_items,
    start_worker,
    stop_process,
    wait_terminal,
)
from tests.integration.test_notify_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    SlackReceiver,
    SmtpServer,
)
from tests.support import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

WINDOW = 4  # seconds: the digest window of the test tenants; a run's failures fit in it
SUBSCRIBED = {"auth", "period_closed", "duplicate", "currency_mismatch", "mapping_missing"}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[SlackReceiver, SmtpServer]]:
    with SlackReceiver() as slack, SmtpServer(tmp_path) as smtp:
        yield slack, smtp


def with_notify(settings: Settings, slack: SlackReceiver, smtp: SmtpServer) -> None:
    data = tomllib.loads(settings.tenants_file.read_text())
    email = smtp.config(to=["ap-team@acme.example"]).model_dump(mode="json", exclude_none=True)
    data["tenants"]["acme-uk"]["notify"] = {
        "digest_seconds": WINDOW,
        "slack_webhook_env": "T_SLACK_ACME",
        "email": email,
    }
    data["tenants"]["globex-us"]["notify"] = {
        "digest_seconds": WINDOW,
        "slack_webhook_env": "T_SLACK_GLOBEX",
    }
    settings.tenants_file.write_text(tomli_w.dumps(data))
    load_tenants(settings.tenants_file)  # valid as written


def failure_event(n: int, reason: Reason = Reason.AUTH) -> Envelope:
    item = dext_item(id=f"DX-B{n}", invoice_number=f"BURST-{n}", payee="Burst Supplies Ltd")
    received = Envelope.new(
        stage=Stage.RECEIVED, subject=f"acme-uk:DX-B{n}", data=Received(item=item), source="test"
    )
    err = StageError(reason, "Sage Intacct refused the sender ID (XL03000006).")
    return received.follow(Stage.FAILED, Failure.of(err, received))


async def publish_failures(settings: Settings, events: list[Envelope]) -> None:
    async with Publisher(settings, str(settings.kafka_url)) as publisher:
        await publisher.send_many([(ev, Stage.FAILED) for ev in events])


async def all_failures(settings: Settings) -> list[Envelope]:
    topic = settings.topic(Stage.FAILED)
    return [x.event async for x in read_topics(str(settings.kafka_url), [topic])]


def count_in(headline: str) -> int:
    found = re.search(r"(\d+) invoices? parked", headline)
    assert found, headline
    return int(found.group(1))


def test_digests_from_a_period_closed_run_a_burst_and_a_restart(
    isolated: Settings,
    servers: tuple[SlackReceiver, SmtpServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack, smtp = servers
    monkeypatch.setenv("T_SLACK_ACME", slack.url)
    monkeypatch.setenv("T_SLACK_GLOBEX", slack.url + "-globex")
    monkeypatch.setenv("T_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("T_SMTP_PASSWORD", SMTP_PASSWORD)
    with_notify(isolated, slack, smtp)
    # globex's webhook path does not exist on the receiver: 404 is a permanent error there,
    # so only acme-uk's Slack digests arrive; globex's are given up, never retried in a loop.
    harness = prepare(isolated)
    tenants = load_tenants(isolated.tenants_file)
    for tenant in tenants.all():
        harness.close_period(tenant, "2026-09")
    slack.fail_next = 2  # the first digest is refused twice: retried, not lost, not doubled

    # 1. A period-closed run: one digest per tenant, reason and channel.
    events = events_for(sample_items())
    worker = start_worker(isolated)
    try:
        asyncio.run(publish(isolated, events))
        terminal = asyncio.run(wait_terminal(isolated, {e.subject: 1 for e in events}, 180))
        groups: dict[str, list[Envelope]] = defaultdict(list)
        for key, (_, ev) in terminal.state.items():
            failure = ev.data
            told = isinstance(failure, Failure) and failure.reason.value in SUBSCRIBED
            if key.startswith("acme-uk:") and told:
                assert isinstance(failure, Failure)
                groups[failure.reason.value].append(ev)
        assert "period_closed" in groups and len(groups["period_closed"]) >= 2
        wait_until(
            lambda: len(smtp.messages) >= len(groups) and len(slack.messages) >= len(groups),
            within=60,
            what=f"{len(groups)} digests of acme-uk per channel",
        )
        time.sleep(2 * WINDOW)  # anything more would be a second message: there is none
        assert len(smtp.messages) == len(slack.messages) == len(groups)
        for reason, parked in groups.items():
            title = TITLES[Reason(reason)]
            (mail,) = [m for m in smtp.messages if m["Subject"].endswith(title)]
            (post,) = [p for p in slack.messages if title in p["text"].splitlines()[0]]
            assert count_in(mail["Subject"]) == count_in(post["text"]) == len(parked)
            body = mail.get_content()
            assert f"billstream replay --reason {reason} --tenant acme-uk" in body
            for ev in parked:
                s = summarize(ev)
                assert f"{s.supplier} · {s.number} · {s.amount}" in body, s
        post = next(p for p in slack.messages if "period is closed" in p["text"])
        assert "`billstream replay --reason period_closed --tenant acme-uk`" in post["text"]
        assert smtp.inbox.tls_seen and all(smtp.inbox.tls_seen)

        # 2. A burst of 500 failures: a handful of messages, every item in them.
        before_mail, before_slack = len(smtp.messages), len(slack.messages)
        burst = [failure_event(n) for n in range(500)]
        asyncio.run(publish_failures(isolated, burst))
        wait_until(
            lambda: sum(count_in(m["Subject"]) for m in smtp.messages[before_mail:]) >= 500,
            within=60,
            what="the burst's digests",
        )
        time.sleep(2 * WINDOW)
        new_mail, new_slack = smtp.messages[before_mail:], slack.messages[before_slack:]
        assert 1 <= len(new_mail) <= 3 and 1 <= len(new_slack) <= 3
        assert sum(count_in(m["Subject"]) for m in new_mail) == 500
        assert sum(count_in(p["text"]) for p in new_slack) == 500
        assert "BURST-499" in "".join(m.get_content() for m in new_mail)
    finally:
        stop_process(worker)

    # 3. A restart under redelivery: every failure so far arrives again (same events, same
    # ids), then one new failure. Only the new one is told.
    told_mail, told_slack = len(smtp.messages), len(slack.messages)
    worker = start_worker(isolated, "worker-restarted.log")
    try:
        again = asyncio.run(all_failures(isolated))
        assert len(again) >= 500 + sum(len(v) for v in groups.values())
        asyncio.run(publish_failures(isolated, again))
        sentinel = failure_event(10_000)
        asyncio.run(publish_failures(isolated, [sentinel]))
        wait_until(
            lambda: len(smtp.messages) > told_mail and len(slack.messages) > told_slack,
            within=90,
            what="the digest of the failure after the restart",
        )
        time.sleep(2 * WINDOW)
    finally:
        stop_process(worker)
    (mail,) = smtp.messages[told_mail:]
    (post,) = slack.messages[told_slack:]
    assert count_in(mail["Subject"]) == 1 and count_in(post["text"]) == 1
    assert "BURST-10000" in mail.get_content() and "BURST-10000" in post["text"]

    # Failing channels are logged (retried, or given up for globex's missing webhook) and
    # secrets never reach the worker's log.
    logs = "".join(p.read_text() for p in isolated.data_dir.glob("worker*.log"))
    assert "try 1 failed, retrying: Slack webhook of tenant acme-uk: HTTP 503" in logs
    assert "given up: Slack webhook of tenant globex-us: HTTP 404" in logs
    assert SlackReceiver.PATH.rsplit("/", 1)[-1] not in logs and SMTP_PASSWORD not in logs
