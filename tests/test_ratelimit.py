"""RateLimit: the schedule, the learned and adaptive rates, on a store with a hand-moved clock; the Lua
twin of every op against the Python one, on a real ``redis-server``."""

from __future__ import annotations

import logging
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_session import InvalidConfigError, ResilientSession, registry
from resilient_session.config import load_config
from resilient_session.errors import QuotaExceededError
from resilient_session.policies import RateLimit
from resilient_session.policies.quota_headers import Quota
from resilient_session.policies.ratelimit import (
    _ACQUIRE,
    _LEARN,
    _RELEASE,
    _SNAPSHOT,
    CUBIC_BETA,
    CUBIC_C,
    CUBIC_PLATEAU,
    CUBIC_PLATEAU_SECONDS,
    rate_text,
)
from resilient_session.stores import MemoryStore, RedisStore, default_store
from resilient_session.stores.base import AtomicOp
from tests.test_redis_store import RedisServer

KEY = "api"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)  # a monotonic-like reading: exact sums to the microsecond


def limit(clock: Clock, **options: object) -> RateLimit:
    return RateLimit(store=MemoryStore(clock=clock), **options)  # type: ignore[arg-type]


# -- a slot given back ------------------------------------------------------------------------------


def test_a_slot_given_back_goes_to_the_next_caller(clock: Clock) -> None:
    policy = limit(clock, calls=2)  # a slot every 0.5 s
    assert policy.acquire(KEY).wait == 0
    cancelled = policy.acquire(KEY)
    assert cancelled.wait == pytest.approx(0.5)
    clock.now += 0.1
    assert policy.release(KEY, cancelled)
    assert policy.acquire(KEY).wait == pytest.approx(0.4)  # its slot, not the one after


def test_a_slot_with_later_ones_reserved_stays_spent(clock: Clock) -> None:
    policy = limit(clock, calls=2)
    policy.acquire(KEY)
    middle = policy.acquire(KEY)  # 0.5 s
    assert policy.acquire(KEY).wait == pytest.approx(1.0)
    assert not policy.release(KEY, middle)  # reusing it would put two calls in one interval
    fourth = policy.acquire(KEY)
    assert fourth.wait == pytest.approx(1.5)
    assert policy.release(KEY, fourth)  # the last one: given back
    assert policy.acquire(KEY).wait == pytest.approx(1.5)


def test_a_refused_slot_or_one_without_a_rate_gives_nothing_back(clock: Clock) -> None:
    policy = limit(clock, calls=1, max_wait=0.1)
    policy.acquire(KEY)
    refused = policy.acquire(KEY)
    assert not refused.granted
    assert not policy.release(KEY, refused)
    unlimited = limit(clock)
    assert not unlimited.release(KEY, unlimited.acquire(KEY))


def test_giving_back_a_slot_whose_time_passed_leaves_the_burst_as_it_was(clock: Clock) -> None:
    policy = limit(clock, calls=1, burst=2)
    slot = policy.acquire(KEY)  # burst: no wait
    clock.now += 10  # the schedule's mark is long past
    assert policy.release(KEY, slot)
    assert [policy.acquire(KEY).wait for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])


# -- refusals first ---------------------------------------------------------------------------------


def test_a_slot_beyond_the_wait_allowed_is_refused_and_nothing_is_reserved(clock: Clock) -> None:
    policy = limit(clock, calls=10)
    assert [policy.acquire(KEY, max_wait=0.25).wait for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    refused = policy.acquire(KEY, max_wait=0.25)
    assert not refused.granted
    assert refused.wait == pytest.approx(0.3)
    again = policy.acquire(KEY, max_wait=0.25)
    assert not again.granted and again.wait == pytest.approx(0.3)  # the refusal reserved nothing
    clock.now += 0.3
    assert policy.acquire(KEY, max_wait=0.0).granted


def test_max_wait_of_the_policy_bounds_every_wait(clock: Clock) -> None:
    policy = limit(clock, calls=1, max_wait=2.0)
    assert policy.acquire(KEY).granted
    assert policy.acquire(KEY, max_wait=100.0).wait == pytest.approx(1.0)
    assert policy.acquire(KEY, max_wait=100.0).wait == pytest.approx(2.0)
    assert not policy.acquire(KEY, max_wait=100.0).granted


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("calls", 0, ValueError),
        ("calls", -1, ValueError),
        ("calls", "ten", TypeError),
        ("per", 0, ValueError),
        ("burst", 0, ValueError),
        ("burst", 1.5, TypeError),
        ("headroom", 0, ValueError),
        ("headroom", 1.5, ValueError),
        ("max_wait", -1, ValueError),
        ("partition_header", "bad header", ValueError),
        ("learn", "yes", TypeError),
    ],
)
def test_options_are_checked(option: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=option):
        RateLimit(**{option: value})  # type: ignore[arg-type]


def test_the_upstream_holding_calls_back_refuses_what_cannot_wait(clock: Clock) -> None:
    policy = limit(clock)
    policy.learn_from(KEY, Quota(retry_after=5.0, source="retry-after"), 429)
    slot = policy.acquire(KEY, max_wait=1.0)
    assert not slot.granted
    assert slot.wait == pytest.approx(5.0) and slot.hold == pytest.approx(5.0)
    assert policy.acquire(KEY, max_wait=6.0).wait == pytest.approx(5.0)


# -- the schedule ---------------------------------------------------------------------------------


def test_calls_are_spaced_evenly_in_arrival_order(clock: Clock) -> None:
    policy = limit(clock, calls=100, per=60)
    waits = [policy.acquire(KEY).wait for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.6, 1.2, 1.8])


def test_a_burst_goes_at_once_then_the_rate_applies(clock: Clock) -> None:
    policy = limit(clock, calls=10, burst=3)
    assert [policy.acquire(KEY).wait for _ in range(5)] == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])
    clock.now += 10  # a quiet spell refills the burst, never more
    assert [policy.acquire(KEY).wait for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_without_any_quota_no_call_waits(clock: Clock) -> None:
    policy = limit(clock)
    assert all(policy.acquire(KEY).wait == 0 for _ in range(100))
    assert policy.state(KEY).rate is None


def test_keys_are_independent_and_a_partition_never_shows_its_value(clock: Clock) -> None:
    policy = limit(clock, calls=1, partition_header="X-API-Key")
    alice = policy.key_for("https://api.example.com/x", {"X-API-Key": "sk_live_alice"})
    bob = policy.key_for("https://api.example.com/y", {"X-API-Key": "sk_live_bob"})
    nobody = policy.key_for("https://api.example.com/y", {})
    assert len({alice, bob, nobody}) == 3
    assert "alice" not in alice and "sk_live" not in alice
    assert alice.startswith("https://api.example.com:443#")
    assert policy.acquire(alice).wait == 0 and policy.acquire(bob).wait == 0
    assert policy.new(name="stripe").key_for("https://other.example/", {}) == "stripe"


# -- learned ---------------------------------------------------------------------------------------


def test_a_learned_quota_lowers_a_static_one_but_never_raises_it(clock: Clock) -> None:
    policy = limit(clock, calls=10)
    policy.learn_from(KEY, Quota(limit=100, window=1, source="ietf"), 200)
    assert policy.state(KEY).rate == 10
    policy.learn_from(KEY, Quota(limit=4, window=1, source="ietf"), 200)
    assert policy.state(KEY).rate == pytest.approx(4 * 0.95)
    assert policy.acquire(KEY).wait == 0
    assert policy.acquire(KEY).wait == pytest.approx(1 / 3.8)


def test_learn_upwards_lets_the_upstream_raise_the_static_quota(clock: Clock) -> None:
    policy = limit(clock, calls=10, learn_upwards=True, headroom=1.0)
    policy.learn_from(KEY, Quota(limit=100, window=1, source="ietf"), 200)
    assert policy.state(KEY).rate == 100


def test_learn_false_ignores_the_headers(clock: Clock) -> None:
    policy = limit(clock, calls=10, learn=False)
    policy.learn_from(KEY, Quota(limit=1, window=1, remaining=0, reset=30, source="ietf"), 200)
    state = policy.state(KEY)
    assert state.rate == 10 and state.hold == 0


def test_x_ratelimit_without_a_window_learns_it_from_the_longest_reset(clock: Clock) -> None:
    policy = limit(clock, headroom=1.0)
    policy.learn_from(KEY, Quota(limit=60, remaining=59, reset=0.5, source="x-ratelimit"), 200)
    assert policy.state(KEY).rate == pytest.approx(120)  # never tighter than the truth
    policy.learn_from(KEY, Quota(limit=60, remaining=30, reset=60, source="x-ratelimit"), 200)
    assert policy.state(KEY).rate == pytest.approx(1)
    policy.learn_from(KEY, Quota(limit=60, remaining=29, reset=20, source="x-ratelimit"), 200)
    assert policy.state(KEY).rate == pytest.approx(1)


def test_nothing_left_holds_every_call_until_the_reset(clock: Clock) -> None:
    policy = limit(clock, calls=100)
    policy.learn_from(KEY, Quota(limit=100, window=60, remaining=0, reset=7, source="ietf"), 200)
    slots = [policy.acquire(KEY) for _ in range(3)]
    # The first call goes at the reset, the others follow at the rate, not all at once.
    assert [s.wait for s in slots] == pytest.approx([7.0, 7 + 60 / 95, 7 + 2 * 60 / 95])
    clock.now += 8
    assert policy.state(KEY).hold == 0


def _ietf(left: float, reset: float = 1.0, limit: float = 200, window: float = 1.0) -> Quota:
    return Quota(limit=limit, window=window, remaining=left, reset=reset, source="ietf")


def test_a_rounded_up_reset_holds_the_whole_second_while_no_window_start_was_seen(clock: Clock) -> None:
    policy = limit(clock)
    policy.learn_from(KEY, _ietf(150), 200)  # a window already under way: where it began is unknown
    clock.now += 0.3
    policy.learn_from(KEY, _ietf(0), 200)
    assert policy.state(KEY).hold == pytest.approx(1.0)


def test_nothing_left_holds_until_the_seen_windows_boundary_not_the_whole_rounded_second(
    clock: Clock,
) -> None:
    policy = limit(clock)
    start = clock.now
    policy.learn_from(KEY, _ietf(199), 200)  # a full window's count: the window began by now
    clock.now += 0.9
    policy.learn_from(KEY, _ietf(0), 200)  # "t=1": the reset is somewhere in the next second
    assert policy.state(KEY).hold == pytest.approx(0.1)
    clock.now += 0.01
    policy.learn_from(KEY, _ietf(0), 429)  # the echo of a call in flight: same boundary
    assert policy.state(KEY).hold == pytest.approx(0.09)
    clock.now = start + 1.0
    assert policy.acquire(KEY).wait == 0


def test_the_count_jumping_back_up_marks_a_new_windows_start(clock: Clock) -> None:
    policy = limit(clock)
    policy.learn_from(KEY, _ietf(120), 200)
    clock.now += 0.5
    policy.learn_from(KEY, _ietf(20), 200)
    clock.now += 0.25
    policy.learn_from(KEY, _ietf(23), 200)  # answers out of order: not a new window
    clock.now += 0.25
    start = clock.now
    policy.learn_from(KEY, _ietf(180), 200)  # more than half the limit back: a new window
    clock.now = start + 2.6  # three windows later, in the one from start + 2 to start + 3
    policy.learn_from(KEY, _ietf(0), 200)
    assert policy.state(KEY).hold == pytest.approx(0.4)


def test_a_boundary_outside_the_last_announced_second_is_not_believed(clock: Clock) -> None:
    policy = limit(clock)
    policy.learn_from(KEY, _ietf(59, limit=60, window=60), 200)
    clock.now += 10
    # 50 s to the boundary seen, but the upstream says 30: a sliding window, or another clock.
    policy.learn_from(KEY, _ietf(0, reset=30, limit=60, window=60), 200)
    assert policy.state(KEY).hold == pytest.approx(30)


def test_an_exact_reset_is_kept_as_it_is(clock: Clock) -> None:
    policy = limit(clock)
    policy.learn_from(KEY, _ietf(199), 200)
    clock.now += 0.2
    policy.learn_from(KEY, _ietf(0, reset=1.25), 200)  # not whole seconds: not a rounding
    assert policy.state(KEY).hold == pytest.approx(1.25)
    other = limit(clock)
    other.learn_from(KEY, Quota(limit=200, remaining=199, reset=1.0, source="x-ratelimit"), 200)
    clock.now += 0.2
    other.learn_from(KEY, Quota(limit=200, remaining=0, reset=1.0, source="x-ratelimit"), 200)
    assert other.state(KEY).hold == pytest.approx(1.0)  # no window stated: no boundary to use


def test_a_429_right_after_a_hold_cut_short_forgets_the_boundary(clock: Clock) -> None:
    policy = limit(clock, adaptive=False)
    policy.learn_from(KEY, _ietf(199), 200)
    clock.now += 0.9
    policy.learn_from(KEY, _ietf(0), 200)
    assert policy.state(KEY).hold == pytest.approx(0.1)
    clock.now += 0.15  # the hold has ended; a call sent 0.03 s after its end is told to hold again
    policy.learn_from(
        KEY, Quota(limit=200, window=1, remaining=0, reset=1, retry_after=1, source="ietf"), 429, 0.02
    )
    assert policy.state(KEY).hold == pytest.approx(1.0)  # the whole announced second
    clock.now += 1.5
    policy.learn_from(KEY, _ietf(0), 200)  # nothing left, no window start seen since
    assert policy.state(KEY).hold == pytest.approx(1.0)


def test_rounded_up_waits_echoed_by_calls_already_in_flight_do_not_lengthen_the_hold(clock: Clock) -> None:
    policy = limit(clock, adaptive=False)
    wait = Quota(retry_after=1.0, source="retry-after")
    policy.learn_from(KEY, wait, 429)
    for _ in range(5):
        clock.now += 0.02
        policy.learn_from(KEY, wait, 429, age=0.15)  # sent before the first 429 came back
    assert policy.state(KEY).hold == pytest.approx(0.9)  # the first answer's bound is the tightest
    clock.now += 0.01
    policy.learn_from(KEY, wait, 429)  # a call sent during the hold (a retry): a new answer
    assert policy.state(KEY).hold == pytest.approx(1.0)
    policy.learn_from(KEY, Quota(retry_after=1.5, source="retry-after"), 429, age=0.15)
    assert policy.state(KEY).hold == pytest.approx(1.5)  # an exact wait is no rounding: taken as said


# -- adaptive ----------------------------------------------------------------------------------------


def _send(policy: RateLimit, clock: Clock, rate: float, seconds: float) -> None:
    """Take slots as a caller sending *rate* calls/s (or as fast as allowed) for *seconds*."""
    end = clock.now + seconds
    while clock.now < end:
        slot = policy.acquire(KEY)
        clock.now += max(slot.wait, 1 / rate)


def test_a_429_lowers_the_rate_to_beta_times_what_was_sent_then_it_climbs_back(clock: Clock) -> None:
    policy = limit(clock)
    _send(policy, clock, 100, 2.0)
    assert policy.state(KEY).adaptive_rate is None  # off until the first throttle
    policy.learn_from(KEY, None, 429)
    after = policy.state(KEY).adaptive_rate
    assert after == pytest.approx(CUBIC_BETA * 100, rel=0.05)
    k = (100 * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3)
    clock.now += k / 2
    middle = policy.state(KEY).adaptive_rate
    assert middle is not None and after is not None and after < middle < 100
    clock.now += k / 2
    assert policy.state(KEY).adaptive_rate == pytest.approx(100, rel=0.05)


def test_after_a_429_the_rate_climbs_to_just_below_it_stays_there_then_probes_above(clock: Clock) -> None:
    policy = limit(clock)
    _send(policy, clock, 100, 2.0)
    thrown = clock.now
    policy.learn_from(KEY, None, 429)
    lowered = policy.state(KEY).adaptive_rate
    assert lowered is not None
    ceiling = lowered / CUBIC_BETA  # the rate the 429 came at
    k = (ceiling * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3)
    rates = []
    for elapsed in (
        k,
        k + CUBIC_PLATEAU_SECONDS / 2,
        k + CUBIC_PLATEAU_SECONDS,
        k + CUBIC_PLATEAU_SECONDS + 4,
    ):
        clock.now = thrown + elapsed
        rates.append(policy.state(KEY).adaptive_rate)
    assert rates[:3] == pytest.approx([CUBIC_PLATEAU * ceiling] * 3)
    assert rates[3] == pytest.approx(CUBIC_PLATEAU * ceiling + CUBIC_C * 4**3)


def test_429s_to_calls_sent_before_the_slow_down_are_its_echo(clock: Clock) -> None:
    policy = limit(clock)
    _send(policy, clock, 50, 2.0)
    policy.learn_from(KEY, None, 429)
    first = policy.state(KEY).adaptive_rate
    clock.now += 0.01
    for _ in range(10):
        policy.learn_from(KEY, None, 429, age=0.05)  # sent before the decrease
    assert policy.state(KEY).adaptive_rate == pytest.approx(first, rel=0.01)
    policy.learn_from(KEY, None, 429, age=0.0)  # sent after it: a new signal
    second = policy.state(KEY).adaptive_rate
    assert first is not None and second is not None and second < first


def test_a_429_before_any_measured_rate_holds_back_but_does_not_guess_a_rate(clock: Clock) -> None:
    policy = limit(clock)
    for _ in range(3):
        policy.acquire(KEY)
    clock.now += 0.01
    policy.learn_from(KEY, Quota(retry_after=1.0, source="retry-after"), 429)
    state = policy.state(KEY)
    assert state.adaptive_rate is None and state.hold == pytest.approx(1.0)


def test_adaptive_false_ignores_429s(clock: Clock) -> None:
    policy = limit(clock, adaptive=False)
    _send(policy, clock, 50, 1.0)
    policy.learn_from(KEY, None, 429)
    assert policy.state(KEY).rate is None


# -- log ----------------------------------------------------------------------------------------------


def test_one_warning_when_the_limit_is_first_reached_not_per_call(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    policy = limit(clock, calls=1, partition_header="Authorization")
    key = policy.key_for("https://api.example.com/", {"Authorization": "Bearer s3cret-token"})
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        for _ in range(20):
            policy.acquire(key, max_wait=5)
    warnings = [r for r in caplog.records if "rate limit" in r.getMessage()]
    assert len(warnings) == 1
    assert "https://api.example.com:443" in warnings[0].getMessage()
    assert "s3cret" not in caplog.text and "#" not in warnings[0].getMessage()
    clock.now += 120  # quiet for longer than the re-arm time: announced again
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        policy.acquire(key)
        policy.acquire(key)
    assert len([r for r in caplog.records if "rate limit" in r.getMessage()]) == 2


def test_rate_text() -> None:
    assert rate_text(None) == "unlimited"
    assert rate_text(5) == "5/s"
    assert rate_text(100 / 60) == "1.667/s"
    assert rate_text(0.5) == "30/min"
    assert rate_text(1 / 7200) == "0.5/h" or rate_text(1 / 7200) == "12/day"


# -- the Lua twins --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


QUOTA_OPS = st.one_of(
    st.tuples(
        st.just("acquire"),
        st.sampled_from([0.0, 2.0, 50.0]),
        st.sampled_from([1.0, 3.0]),
        st.sampled_from([0.0, 0.5, 60.0]),
        st.sampled_from([0.0, 1.0]),
        st.sampled_from([0.0, 0.3]),
    ),
    st.tuples(
        st.just("learn"),
        st.sampled_from([-1.0, 10.0, 1000.0]),
        st.sampled_from([-1.0, 1.0, 60.0]),
        st.sampled_from([-1.0, 0.5, 30.0]),
        st.sampled_from([-1.0, 1.0, 2.0, 1.5]),
        st.sampled_from([0.0, 1.0]),
        st.sampled_from([0.0, 0.2]),
        st.sampled_from([-1.0, 0.0, 5.0, 9.0, 999.0]),
    ),
    st.tuples(
        st.just("advance"),
        st.one_of(st.floats(min_value=0.0, max_value=10.0), st.sampled_from([0.25, 1.0])),
    ),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("release"), st.sampled_from([0.0, 1e-3, 0.5])),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(QUOTA_OPS, max_size=50))
def test_lua_and_python_quota_ops_agree(redis_server: RedisServer, ops: list[tuple[object, ...]]) -> None:
    clock = Clock()
    memory = MemoryStore(clock=clock)
    shared = RedisStore(redis_server.url, prefix=f"parity-{uuid.uuid4().hex}", clock=clock)
    last_mark = 0.0
    for op in ops:
        kind = op[0]
        if kind == "advance":
            clock.now += float(op[1])  # type: ignore[arg-type]
            continue
        call: tuple[AtomicOp, str, tuple[float, ...]]
        if kind == "release":
            # The last slot taken, given back (its mark as the acquire answered it), or a stale mark.
            call = (_RELEASE, "quota:k", (1.0, last_mark + float(op[1])))  # type: ignore[arg-type]
        elif kind == "acquire":
            call = (_ACQUIRE, "quota:k", tuple(float(x) for x in op[1:]))  # type: ignore[arg-type]
        elif kind == "learn":
            *learned, remaining = (float(x) for x in op[1:])  # type: ignore[arg-type]
            call = (_LEARN, "quota:k", (*learned, 0.95, remaining))
        else:
            call = (_SNAPSHOT, "quota:k", ())
        expected = memory.run(*call)
        actual = shared.run(*call)
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-6), (op, expected, actual)
        if kind == "acquire":
            last_mark = expected[4]
    assert not shared.degraded


def test_corrupt_quota_state_in_redis_is_treated_as_absent(redis_server: RedisServer) -> None:
    clock = Clock()
    store = RedisStore(redis_server.url, prefix=f"corrupt-{uuid.uuid4().hex}", clock=clock)
    store.client.hset(f"{store.prefix}:quota:{KEY}", mapping={"tat": "nan", "till": "1e400", "lrate": "abc"})
    policy = RateLimit(calls=10, store=store)
    assert policy.acquire(KEY).wait == 0
    assert policy.state(KEY).hold == 0
    assert not store.degraded


# -- the integrations file, the registry, check -------------------------------------------------------


def _document(**rate_limit: object) -> dict[str, object]:
    return {"integrations": {"api": {"base_url": "https://api.example.com/v1", "rate_limit": rate_limit}}}


def test_the_integrations_file_refuses_a_bad_rate_limit_table() -> None:
    with pytest.raises(InvalidConfigError) as info:
        load_config(_document(calls=0, burst="two", colour="red"))
    problems = "\n".join(info.value.problems)
    assert "integrations.api.rate_limit.calls: must be > 0, got 0" in problems
    assert "integrations.api.rate_limit.burst" in problems
    assert "integrations.api.rate_limit.colour: unknown key" in problems


def test_a_rate_limit_from_the_file_is_named_after_the_integration(tmp_path: Path) -> None:
    config = load_config(_document(calls=100, per=60, max_wait=5))["api"]
    assert config.rate_limit == RateLimit(calls=100, per=60, max_wait=5, store=config.rate_limit.store)  # type: ignore[union-attr]
    session = ResilientSession.from_integration(config)
    assert session.rate_limit is not None
    assert (session.rate_limit.name, session.rate_limit.calls, session.rate_limit.max_wait) == ("api", 100, 5)
    assert config.describe()["rate_limit"] == (
        "1.667/s static, burst 1; learned from the upstream's headers (lower only); adaptive after 429s; "
        "a call waits at most 5 s"
    )
    assert config.policy()["rate_limit"]["calls"] == 100
    assert "rate limit 5 s" in config.describe()["worst_case"]
    off = load_config(_document())["api"]
    assert off.rate_limit == RateLimit(store=off.rate_limit.store)  # type: ignore[union-attr]
    none = load_config({"integrations": {"api": {"base_url": "https://api.example.com/v1"}}})["api"]
    assert none.rate_limit is None and none.describe()["rate_limit"] == "off"


def test_registered_sessions_share_one_limit_named_after_the_integration() -> None:
    saved = registry.snapshot()
    try:
        item = registry.register(
            "quota-test", base_url="https://api.example.com/v1", rate_limit=RateLimit(calls=5)
        )
        made = [registry.session("quota-test") for _ in range(2)]
        limits = [s.rate_limit for s in made]
        assert all(lim is not None and lim.name == "quota-test" and lim.calls == 5 for lim in limits)
        assert item.options["rate_limit"].name == "quota-test"
        assert ResilientSession(integration="quota-test").rate_limit == limits[0]
        assert ResilientSession(integration="quota-test", rate_limit=False).rate_limit is None
    finally:
        registry.restore(saved)


def test_a_session_takes_true_false_and_refuses_other_values() -> None:
    assert ResilientSession(rate_limit=True).rate_limit == RateLimit(store=default_store())
    assert ResilientSession().rate_limit is None
    session = ResilientSession(rate_limit=RateLimit(calls=3))
    session.rate_limit = False
    assert session.rate_limit is None
    with pytest.raises(TypeError, match="rate_limit"):
        ResilientSession(rate_limit=5)  # type: ignore[arg-type]
    copied = pickle.loads(pickle.dumps(ResilientSession(rate_limit=RateLimit(calls=3))))
    assert copied.rate_limit is not None and copied.rate_limit.calls == 3


# -- under responses mocks ------------------------------------------------------------------------------


@responses.activate
def test_with_responses_mocks_the_quota_is_learned_and_a_refused_call_reaches_no_mock() -> None:
    url = "https://api.example.com/v1/items"
    responses.get(
        url,
        json={},
        headers={"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"},
    )
    session = ResilientSession(rate_limit=RateLimit(store=MemoryStore()), deadline=2.0)
    assert session.get(url).normalized.quota.remaining == 0  # type: ignore[attr-defined]
    with pytest.raises(QuotaExceededError) as caught:
        session.get(url)
    assert len(responses.calls) == 1
    assert caught.value.retry_after == pytest.approx(30, abs=0.5)


def test_check_prints_each_integrations_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resilient_session.cli import main

    path = tmp_path / "integrations.toml"
    path.write_text(
        '[integrations.crm]\nbase_url = "https://api.example.com/v1"\n'
        "[integrations.crm.rate_limit]\ncalls = 100\nper = 60\n"
        '[integrations.erp]\nbase_url = "https://erp.example.com"\n',
        encoding="utf-8",
    )
    assert main(["check", str(path)]) == 0
    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines() if "rate_limit" in line]
    assert [parts[1] for parts in lines] == [
        "1.667/s static, burst 1; learned from the upstream's headers (lower only); adaptive after 429s; "
        "a call waits at most 60 s",
        "off",
    ]
