"""Claims between chains computing the same step (pipeline/tracking/cache.py): tickets, not start times, decide
which chain computes, whatever order the runs' rows reach the store in."""

from __future__ import annotations

import threading
import time

import pytest
from mlflow.entities import RunStatus

from pipeline.contract import CLAIM_TICKET_TAG, FINGERPRINT_TAG, STEP_TAG
from pipeline.tracking import cache
from pipeline.tracking.cache import earlier_claim, take_ticket

STALE_S = 600.0
FINGERPRINT = "f" * 16


def open_claim(client, start_time: int | None = None) -> str:
    """A step run opened as main opens it: RUNNING, with the step and fingerprint tags."""
    tags = {STEP_TAG: "tune", FINGERPRINT_TAG: FINGERPRINT}
    return client.create_run("0", start_time=start_time, tags=tags).info.run_id


def claim(client, run_id: str, since_ms: int = 0) -> str | None:
    """What a chain decides for its opened run: the run to wait for, or None to compute."""
    args = (client, "0", "tune", FINGERPRINT, run_id)
    return earlier_claim(*args, take_ticket(*args, STALE_S), STALE_S, since_ms)


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_lone_claim_computes_with_ticket_one(client):
    run_id = open_claim(client)
    assert claim(client, run_id) is None
    assert client.get_run(run_id).data.tags[CLAIM_TICKET_TAG] == "1"


def test_a_run_that_started_earlier_but_reached_the_store_later_steps_aside(client):
    # The race the start-time order lost: B looks first and sees nobody, so it computes; A's row, started a second
    # before B's, arrives after B decided. Ordered by start time A would compute too; by ticket it waits for B.
    late = open_claim(client, start_time=now_ms())
    assert claim(client, late) is None
    early = open_claim(client, start_time=now_ms() - 1000)
    assert claim(client, early) == late
    assert client.get_run(early).data.tags[CLAIM_TICKET_TAG] == "2"


def test_the_second_of_two_open_claims_takes_the_next_ticket_and_waits(client):
    first, second = open_claim(client), open_claim(client)  # both opened before either took a ticket
    args = [(client, "0", "tune", FINGERPRINT, run_id) for run_id in (first, second)]
    tickets = [take_ticket(*arg, STALE_S) for arg in args]
    assert tickets == [1, 2]
    decisions = [earlier_claim(*arg, ticket, STALE_S, 0) for arg, ticket in zip(args, tickets, strict=True)]
    assert decisions == [None, first]


def test_equal_tickets_go_to_the_lower_run_id(client):
    first, second = open_claim(client), open_claim(client)
    for run_id in (first, second):
        client.set_tag(run_id, CLAIM_TICKET_TAG, "1")
    lower, higher = sorted([first, second])
    assert earlier_claim(client, "0", "tune", FINGERPRINT, higher, 1, STALE_S, 0) == lower
    assert earlier_claim(client, "0", "tune", FINGERPRINT, lower, 1, STALE_S, 0) is None


def test_a_claim_waits_for_one_still_taking_its_ticket(client):
    other, mine = open_claim(client), open_claim(client)
    client.set_tag(mine, CLAIM_TICKET_TAG, "1")
    timer = threading.Timer(0.5, client.set_tag, (other, CLAIM_TICKET_TAG, "1"))
    timer.start()
    started = time.monotonic()
    decision = earlier_claim(client, "0", "tune", FINGERPRINT, mine, 1, STALE_S, 0, poll_s=0.05)
    timer.join()
    assert time.monotonic() - started >= 0.4  # it waited for the ticket instead of deciding without it
    assert decision == (other if other < mine else None)


def test_a_claim_that_never_takes_a_ticket_is_ignored_after_the_wait(client, monkeypatch):
    monkeypatch.setattr(cache, "TICKET_WAIT_S", 0.2)
    open_claim(client)  # its process died between opening the run and taking a ticket
    mine = open_claim(client)
    assert claim(client, mine) is None


def test_a_claim_older_than_the_wait_is_presumed_dead(client):
    dead = open_claim(client, start_time=now_ms() - int(STALE_S * 1000) - 60_000)
    client.set_tag(dead, CLAIM_TICKET_TAG, "1")
    mine = open_claim(client)
    assert claim(client, mine) is None  # without this, main would wait claim_wait_s and step aside again, forever


def test_a_run_that_finished_the_work_since_the_chain_looked_is_reused(client):
    looked = now_ms()
    done = open_claim(client)
    client.set_tag(done, CLAIM_TICKET_TAG, "1")
    client.set_terminated(done, RunStatus.to_string(RunStatus.FINISHED))
    mine = open_claim(client)
    assert claim(client, mine, since_ms=looked) == done
    client.delete_run(mine)
    # one that finished before the chain looked was offered for reuse already (or the step is forced): computed here
    assert claim(client, open_claim(client), since_ms=now_ms() + 1000) is None


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_an_ended_claim_does_not_hold_anyone_back(client, status):
    ended = open_claim(client)
    client.set_tag(ended, CLAIM_TICKET_TAG, "1")
    client.set_terminated(ended, status)
    assert claim(client, open_claim(client)) is None
