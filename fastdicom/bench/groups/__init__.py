"""Benchmark groups. Each module has ``build(plan) -> list[Task]``; ``fastdicom bench`` and the
thin pytest wrappers in ``benches/`` both use them."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from ..runner import Impl, Task

__all__ = ["GROUPS", "build_group", "ours"]

#: every group, in report order
GROUPS = ("scan", "read", "pixels", "frame", "volume", "ingest")


def build_group(name: str, plan: Any) -> list[Task]:
    """The tasks of group ``name`` for a :class:`fastdicom.bench.datagen.Plan`."""
    if name not in GROUPS:
        raise ValueError(f"unknown benchmark group {name!r}; choose from {', '.join(GROUPS)}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.build(plan)


def ours(impls: list[Impl], missing: dict[str, str], label: str,
         factory: Callable[[], Callable[[], Any]], threads: int = 1, **kw: Any) -> bool:
    """Add a fastdicom impl built by ``factory``; when the feature does not exist yet (import
    or attribute error), record ``label`` as ``not available: ...`` instead."""
    try:
        fn = factory()
    except (ImportError, AttributeError, NotImplementedError) as exc:
        missing[label] = f"not available: {type(exc).__name__}: {exc}"
        return False
    impls.append(Impl(label, fn, kind="ours", threads=threads, **kw))
    return True


def peer(impls: list[Impl], missing: dict[str, str], name: str, label: str,
         fn: Callable[[], Any], **kw: Any) -> bool:
    """Add a peer impl if the peer ``name`` is installed, else record why it is missing."""
    from ..peers import available
    ok, why = available(name)
    if not ok:
        missing[label] = why
        return False
    impls.append(Impl(label, fn, kind="peer", peer=name, **kw))
    return True
