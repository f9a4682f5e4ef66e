import shutil

import pytest

from .harness import BackgroundLoop, start_stack
from .hostile import Poster, start_hostile_stack
from .replicas import OwnRedis


@pytest.fixture(scope="session")
def bg():
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def stack(bg):
    """Two healthy emulated OpenAI clouds behind model groups `chat` and `embed`; shared by a module's tests,
    so tests using it must not leave faults behind."""
    s = start_stack(bg)
    yield s
    s.close()


@pytest.fixture
def make_stack(bg):
    """A fresh stack of one's own (for fault injection: breaker state must not leak between tests)."""
    made = []

    def make(**kw):
        s = start_stack(bg, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def hostile(bg):
    """Every deployment of the six emulated clouds alone in its own group, and a client that posts raw bodies."""
    stack = start_hostile_stack(bg)
    poster = Poster(stack)
    yield stack, poster
    poster.close()
    stack.close()


@pytest.fixture
def own_redis():
    """A redis-server of the test's own, on a free port, to stop and start again (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/services installs it)")
    server = OwnRedis()
    server.start()
    yield server
    server.cleanup()
