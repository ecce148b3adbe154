"""Stop signals raised as themselves.

A SIGINT (KeyboardInterrupt), or SIGTERM in ``fastdicom ingest`` (:class:`Terminated`), can
land inside the standard library's thread code and turn into another exception there:
``threading.Condition.wait`` (under ``Future.result`` and ``Executor.map``) raises
RuntimeError("cannot release un-acquired lock") when the signal lands just after the wait let
go of its lock, with the signal's exception as its context.  The functions that wait on
worker threads (``scan``, ``scan_batches``, ``find_series``, ``load_series``, ``ingest``)
raise the signal's own exception instead.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from typing import Optional


class Terminated(BaseException):
    """SIGTERM, raised in the main thread of ``fastdicom ingest`` (as SIGINT raises
    KeyboardInterrupt), so that the job stops as it does on Ctrl-C."""


STOPS = (KeyboardInterrupt, Terminated)


def stop_signal_in(exc: BaseException, outer: Optional[BaseException] = None
                   ) -> Optional[BaseException]:
    """The KeyboardInterrupt or :class:`Terminated` that ``exc`` was raised while handling,
    if any, short of ``outer`` (the exception the caller was handling: not this call's)."""
    e = exc.__context__
    for _ in range(16):         # (a bounded walk: contexts can form a cycle)
        if e is None or e is outer:
            return None
        if isinstance(e, STOPS):
            return e
        e = e.__context__
    return None


@contextlib.contextmanager
def raised_as_itself():
    """A block interrupted by a stop signal raises the signal's exception, whatever it
    turned into on the way out."""
    outer = sys.exc_info()[1]       # (a call from an except block: not its signal)
    try:
        yield
    except Exception as exc:
        stop = stop_signal_in(exc, outer)
        if stop is None:
            raise
        raise stop from None


def stops_as_themselves(fn):
    """:func:`raised_as_itself` around each call of ``fn`` (each step of a generator)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            with raised_as_itself():
                return (yield from fn(*args, **kwargs))
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with raised_as_itself():
            return fn(*args, **kwargs)
    return call
