"""emel/jit_notice.py: a cold Numba cache is announced once; cache hits and reruns are not."""

import io

import numpy as np
from numba import njit

from emel.jit_notice import MESSAGE, announce_compiles


def test_compiles_are_announced_once_and_counted():
    @njit(cache=False)
    def inner(x):
        return x * np.float32(3.0)

    @njit(cache=False)
    def outer(x):
        return inner(x) + np.float32(1.0)

    @njit(cache=False)
    def other(x):
        return x - 1

    buf = io.StringIO()
    with announce_compiles(buf.write) as notice:
        assert outer(np.float32(2.0)) == np.float32(7.0)  # outer compiles inner inside it
        after_first = notice.count
        assert other(5) == 4
        assert outer(np.float32(1.0)) == np.float32(4.0)  # compiled already: no event
    assert buf.getvalue() == MESSAGE
    assert after_first == 1 and notice.count == 2
    assert notice.seconds > 0
    assert "compiled 2 kernels" in notice.summary()


def test_nothing_compiled_says_nothing():
    @njit(cache=False)
    def f(x):
        return x + 1

    f(1)
    buf = io.StringIO()
    with announce_compiles(buf.write) as notice:
        assert f(2) == 3
    assert buf.getvalue() == "" and notice.count == 0 and notice.summary() == ""


def test_listener_is_removed_after_the_block():
    buf = io.StringIO()
    with announce_compiles(buf.write) as notice:
        pass

    @njit(cache=False)
    def g(x):
        return x * 2

    assert g(3) == 6
    assert notice.count == 0 and buf.getvalue() == ""
