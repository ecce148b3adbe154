"""A Ctrl-C that lands in a wait on worker threads reaches the caller as KeyboardInterrupt.

CPython's ``threading.Condition.wait`` (under ``Future.result`` and ``Executor.map``) turns a
KeyboardInterrupt that lands just after it released its lock into RuntimeError("cannot
release un-acquired lock").  ``scan``, ``scan_batches``, ``find_series`` and ``load_series``
wait on worker threads; they raise the KeyboardInterrupt itself."""
from __future__ import annotations

import pytest

import fastdicom
import fastdicom.batch as B
import fastdicom.series as S
from fastdicom.testing import write_ct_series

from _signals import future_stopped_after_release  # noqa: E402


def _interrupt():
    raise KeyboardInterrupt


def _stopped_wait_before(real):
    """``real``, after a wait on a Future that a Ctrl-C hits after the lock's release."""
    def call(*args, **kwargs):
        future_stopped_after_release(_interrupt).result()
        return real(*args, **kwargs)
    return call


@pytest.fixture
def stack(tmp_path):
    write_ct_series(tmp_path / "s", 4, 8, 8)
    return tmp_path / "s"


def test_the_standard_library_turns_the_interrupt_into_a_runtime_error():
    """(what the functions below guard against; on a CPython that raises the
    KeyboardInterrupt itself the guard is a no-op)"""
    with pytest.raises(BaseException) as info:
        future_stopped_after_release(_interrupt).result()
    assert info.type is KeyboardInterrupt or (
        info.type is RuntimeError and isinstance(info.value.__context__, KeyboardInterrupt))


@pytest.mark.parametrize("call", ["scan", "scan_batches", "scan_batches_later",
                                  "find_series", "load_series"])
def test_an_interrupted_wait_raises_keyboard_interrupt(stack, monkeypatch, call):
    if call in ("scan", "scan_batches"):
        monkeypatch.setattr(B, "checked_workers", _stopped_wait_before(B.checked_workers))
    elif call == "scan_batches_later":
        # the wait inside the generator, after its first batch was yielded
        real = B._bounded_map

        def bounded(*args, **kwargs):
            it = real(*args, **kwargs)
            yield next(it)
            future_stopped_after_release(_interrupt).result()
            yield from it
        monkeypatch.setattr(B, "_bounded_map", bounded)
    else:
        monkeypatch.setattr(S, "checked_limits", _stopped_wait_before(S.checked_limits))
    with pytest.raises(KeyboardInterrupt):
        if call == "scan":
            fastdicom.scan(stack, workers=2)
        elif call.startswith("scan_batches"):
            for _ in fastdicom.scan_batches(stack, workers=2, batch_size=1):
                pass
        elif call == "find_series":
            fastdicom.find_series(stack)
        else:
            fastdicom.load_series(stack)


def test_a_call_made_while_handling_ctrl_c_keeps_its_own_errors(stack, monkeypatch):
    """A call from an ``except KeyboardInterrupt`` block (to save what is there before
    exiting) that fails with a RuntimeError of its own raises that error, not the
    KeyboardInterrupt the block was handling."""
    def broken(*args, **kwargs):
        raise RuntimeError("its own error")
    monkeypatch.setattr(S, "checked_limits", broken)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        with pytest.raises(RuntimeError, match="its own error"):
            fastdicom.find_series(stack)


def test_a_generator_left_early_closes_cleanly(stack):
    it = fastdicom.scan_batches(stack, workers=2, batch_size=1)
    first = next(it)
    assert first.num_rows == 1
    it.close()                    # GeneratorExit passes through the guard
    assert sum(b.num_rows for b in fastdicom.scan_batches(stack, batch_size=2)) == 4
