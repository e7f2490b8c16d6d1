"""`strata history <ns>/<name>`: the time line orders events from sources of mixed precision."""

from __future__ import annotations

from strata.cli.image_history import timeline


def test_a_withdrawal_in_the_same_second_as_a_finished_build_comes_after_it() -> None:
    # The build job's times are epoch numbers with a fraction; a withdrawal's time comes from
    # the API as an ISO string to the second. The job finished at 100.7; the withdrawal, made
    # after it, in the same second, reads 100 (1970-01-01T00:01:40Z).
    jobs = [{"id": 1, "kind": "build", "state": "succeeded", "requested_by": "alice",
             "created_at": 99.2, "finished_at": 100.7, "result_nvr": "hello-1-2",
             "result_digest": "sha256:b"}]
    builds = [{"nvr": "hello-1-1", "digest": "sha256:a", "created_at": 50.0,
               "created_by": "admin",
               "withdrawn": {"at": "1970-01-01T00:01:40Z", "by": "releng",
                             "reason": "superseded"}}]
    names = [e["event"] for e in timeline([], jobs, builds, {})]
    assert names == ["candidate-registered", "build-queued", "build-succeeded",
                     "candidate-withdrawn"], names


def test_events_seconds_apart_keep_their_time_order_whatever_the_source() -> None:
    jobs = [{"id": 1, "kind": "build", "state": "failed", "requested_by": "alice",
             "created_at": 10.0, "finished_at": 12.5, "error": "RUN failed"}]
    events = [{"at": "1970-01-01T00:00:11Z", "event": "approved", "actor": "rita"}]
    names = [e["event"] for e in timeline(events, jobs, [], {})]
    assert names == ["build-queued", "approved", "build-failed"], names
