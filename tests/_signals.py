"""A Future that a stop signal hits inside its wait, at the moment CPython's
``threading.Condition.wait`` turns it into RuntimeError("cannot release un-acquired lock")."""
from __future__ import annotations


def future_stopped_after_release(stop):
    """A pending Future whose ``result()`` wait calls ``stop()`` just after its condition
    let go of its lock (the moment a stop signal can land in, in CPython's
    ``threading.Condition.wait``)."""
    from concurrent.futures import Future
    f = Future()
    release = f._condition._release_save

    def release_save():
        state = release()
        stop()
        return state
    f._condition._release_save = release_save
    return f
