"""What a subclass defines stays; what the caller passes wins (resilient_session._subclassing)."""

from __future__ import annotations

import inspect
import pickle

import pytest
import requests
import responses

from resilient_session import CircuitBreaker, ResilientSession, RetryPolicy
from resilient_session._subclassing import defined_by_subclass, inherits_from_requests
from resilient_session.adapter import DEFAULT_TIMEOUT

URL = "https://api.example.com/v1/items"


class Declares(ResilientSession):
    timeout = 10
    base_url = "https://api.example.com/v1"
    integration = "legacy"
    request_id_header = None
    raise_for_status = True


def test_class_attributes_of_a_subclass_stay() -> None:
    session = Declares()
    assert session.timeout == 10
    assert session.base_url == "https://api.example.com/v1"
    assert session.integration == "legacy"
    assert session.request_id_header is None
    assert session.raise_for_status is True
    # Nothing copied onto the instance: changing the class later is seen, as with any class attribute.
    assert "timeout" not in vars(session)


def test_arguments_passed_win_even_when_equal_to_the_default() -> None:
    session: ResilientSession = Declares(timeout=DEFAULT_TIMEOUT, request_id_header="X-Request-ID")
    assert session.timeout is DEFAULT_TIMEOUT
    assert session.request_id_header == "X-Request-ID"
    assert session.base_url == "https://api.example.com/v1"  # not passed: the class's


def test_attributes_set_before_super_init_stay() -> None:
    breaker = CircuitBreaker()

    class SetsFirst(ResilientSession):
        def __init__(self) -> None:
            self.timeout = 7
            self.retry = 1
            self.breaker = breaker
            self.deadline = 4
            super().__init__()

    session = SetsFirst()
    assert session.timeout == 7
    assert session.retry.total == 1
    assert session.adapters["https://"].max_retries.total == 1  # type: ignore[attr-defined]
    assert session.breaker is breaker
    assert session.deadline == 4.0


def test_a_class_value_hiding_one_of_our_properties_is_checked_and_used() -> None:
    class Shadows(ResilientSession):
        retry = 0  # type: ignore[assignment]
        deadline = 5

    session = Shadows()
    assert session._retry.total == 0
    assert session.adapters["https://"].max_retries.total == 0  # type: ignore[attr-defined]
    assert session._deadline == 5.0

    class SetsFirstToo(Shadows):
        def __init__(self) -> None:
            self.deadline = 2  # an instance attribute: the class's 5 no longer applies to it
            super().__init__()

    assert SetsFirstToo().deadline == 2
    assert SetsFirstToo()._deadline == 2.0

    class Wrong(ResilientSession):
        deadline = -1

    with pytest.raises(ValueError, match="deadline"):
        Wrong()


def test_a_mixin_after_ours_keeps_what_its_init_set() -> None:
    class Mixin(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.timeout = 9

    class Combined(ResilientSession, Mixin):  # type: ignore[misc]
        pass

    assert Combined().timeout == 9
    assert Combined(timeout=2).timeout == 2


def test_an_argument_beats_an_attribute_set_before_super_init() -> None:
    class SetsFirst(ResilientSession):
        def __init__(self, **kwargs: object) -> None:
            self.timeout = 7
            self.deadline = 4
            super().__init__(**kwargs)  # type: ignore[arg-type]

    session = SetsFirst(timeout=3, deadline=None)
    assert session.timeout == 3
    assert session.deadline is None
    assert SetsFirst().timeout == 7


def test_plain_sessions_are_unchanged() -> None:
    session = ResilientSession()
    assert session.timeout == DEFAULT_TIMEOUT
    assert session.request_id_header == "X-Request-ID"
    assert isinstance(session.retry, RetryPolicy)
    fresh = ResilientSession.__new__(ResilientSession)
    assert not defined_by_subclass(fresh, "timeout", own=ResilientSession)
    # requests.Session's and our own class attributes are never taken for a subclass's.
    assert not defined_by_subclass(fresh, "__attrs__", own=ResilientSession)
    assert not defined_by_subclass(fresh, "tracing", own=ResilientSession)
    assert defined_by_subclass(Declares.__new__(Declares), "timeout", own=ResilientSession)


def test_signature_and_pickling_unchanged() -> None:
    parameters = inspect.signature(ResilientSession).parameters
    assert parameters["timeout"].default == (3.05, 30)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    copy = pickle.loads(pickle.dumps(Declares(timeout=3)))
    assert copy.timeout == 3
    assert copy.base_url == "https://api.example.com/v1"


def test_prepare_request_goes_through_a_mixin_after_ours() -> None:
    seen: list[str] = []

    class Tags(requests.Session):
        def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
            seen.append(str(request.url))
            return super().prepare_request(request)

    class Combined(ResilientSession, Tags):
        pass

    assert not inherits_from_requests(Combined, ResilientSession, "prepare_request")
    assert inherits_from_requests(ResilientSession, ResilientSession, "prepare_request")
    Combined(base_url="https://api.example.com/v1").prepare_request(requests.Request("GET", "items"))
    assert seen == [URL]


@responses.activate
def test_from_config_on_a_subclass_builds_the_subclass() -> None:
    responses.get(URL, json={})

    class FromFile(ResilientSession):
        timeout = 10

    session = FromFile.from_config({"integrations": {"api": {"base_url": "https://api.example.com/v1"}}})
    assert isinstance(session, FromFile)
    assert session.get("items").status_code == 200
    assert responses.calls[0].request.url == URL
