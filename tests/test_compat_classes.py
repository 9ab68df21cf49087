"""resilient_session._compat.classes: the one place classes are made at run time."""

from __future__ import annotations

import threading

from urllib3 import HTTPConnectionPool

from resilient_session._compat.classes import with_mixin


def test_a_class_made_at_run_time_does_not_take_the_name_of_the_class_it_extends() -> None:
    class Mixin:
        pass

    made = with_mixin(Mixin, HTTPConnectionPool)
    assert made is with_mixin(Mixin, HTTPConnectionPool)
    assert made.__mro__[1:3] == (Mixin, HTTPConnectionPool)
    assert made.__name__ == made.__qualname__ == "HTTPConnectionPool+Mixin"
    assert made.__module__ == __name__
    assert with_mixin(Mixin, made) is made


def test_one_class_per_pair_even_when_threads_race() -> None:
    class Racing:
        pass

    made: list[type] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        made.append(with_mixin(Racing, HTTPConnectionPool))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(made) == 8 and len(set(made)) == 1
