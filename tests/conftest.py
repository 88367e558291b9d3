from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings as hypothesis_settings
from threadpoolctl import threadpool_limits

from tests.harness import Bot, stop_all_actors

# As in the bot itself (supervisor.run): BLAS capped process-wide (OpenMP is capped
# per thread by prob_up and run_training), so tests never oversubscribe two cores.
_thread_cap = threadpool_limits(limits=1)
hypothesis_settings.register_profile("ci", max_examples=200, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=100, deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _no_actor_survives_a_test() -> Iterator[None]:
    yield
    stop_all_actors()


@pytest.fixture
def bots() -> Iterator[list[Bot]]:
    """Bots a test made (append them): stopped after the test, even a failed one."""
    made: list[Bot] = []
    yield made
    for bot in made:
        bot.stop()
