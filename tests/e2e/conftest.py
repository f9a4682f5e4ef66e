import pytest

from .harness import BackgroundLoop, start_stack
from .hostile import Poster, start_hostile_stack


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
