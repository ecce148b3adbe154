"""SIGINT and SIGTERM while ``fastdicom ingest`` starts up.

The job's own handlers (``fastdicom.ingest._StopOnSignals``) are set once its arguments are
read, after numpy and pyarrow are imported: about 0.4 s after the process starts.  A signal
in that time killed the process with no JSON line on stdout, although a script may stop a
job at any moment.  ``install()`` runs first thing in ``fastdicom/__init__.py`` and, in the
``fastdicom ingest`` command only, sets handlers that write the interrupted JSON line and
exit 130 (SIGINT) or 143 (SIGTERM) at once: nothing has been written to the index yet.
Standard library only, and nothing imported that the interpreter has not already loaded.
"""
import os
import signal
import sys

# this process is the ``fastdicom ingest`` command (decided by install(): sys.argv[0] is
# "-m" only while ``python -m`` imports the package)
_CLI = False
_CODES = {signal.SIGINT: ("SIGINT", 130), signal.SIGTERM: ("SIGTERM", 143)}
MESSAGE = "interrupted before the job started: nothing was written"


def _command(argv: list):
    """The subcommand of a ``fastdicom`` command line (its arguments after the program): the
    first that is not an option (the command's own options take no value)."""
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def _module_run(orig: list):
    """``(module, its arguments)`` when the interpreter command line ``orig``
    (``sys.orig_argv``) runs a module with ``-m`` (also ``-mfastdicom``, ``-Bm fastdicom``,
    after ``-X opt`` / ``-W arg``), else None."""
    i = 1
    while i < len(orig):
        a = orig[i]
        if a in ("-", "--") or not a.startswith("-"):
            return None                 # a script, stdin
        if a.startswith("--"):          # long options; one of them takes a value
            i += 2 if a == "--check-hash-based-pycs" else 1
            continue
        for j in range(1, len(a)):
            c = a[j]
            if c in "mcWX":             # the options that take a value: the rest or the next
                val, nxt = (a[j + 1:], i + 1) if a[j + 1:] else \
                    (orig[i + 1] if i + 1 < len(orig) else None, i + 2)
                if c == "m":
                    return (val, orig[nxt:]) if val else None
                if c == "c":
                    return None
                i = nxt
                break
        else:
            i += 1
    return None


def is_ingest_cli() -> bool:
    """This process is ``fastdicom ingest ...`` (the console script) or ``python -m
    fastdicom ingest ...``."""
    argv = getattr(sys, "argv", None) or []     # (an embedded interpreter may have none)
    if not argv:
        return False
    if argv[0] == "-m":
        # while ``python -m`` imports the package, sys.argv[0] is "-m" and the command line
        # is in sys.orig_argv
        run = _module_run(list(getattr(sys, "orig_argv", ())))
        return run is not None and run[0] in ("fastdicom", "fastdicom.__main__") and \
            _command(run[1]) == "ingest"
    return os.path.basename(argv[0]) == "fastdicom" and _command(argv[1:]) == "ingest"


def is_cli() -> bool:
    """:func:`install` found this process to be the ``fastdicom ingest`` command."""
    return _CLI


def _stop(signum, frame):
    name, code = _CODES[signum]
    # os.write, not print: the signal may land while the main thread is in a print
    for fd, text in ((2, f"fastdicom ingest: {MESSAGE} ({name})\n"),
                     (1, '{"error": "interrupted", "signal": "%s", "message": "%s"}\n'
                      % (name, MESSAGE))):
        try:
            os.write(fd, text.encode())
        except OSError:
            pass
    os._exit(code)


def install() -> None:
    """Set the start-up handlers when this process is ``fastdicom ingest`` (not over a
    signal the caller ignores, as with ``nohup``); idempotent."""
    global _CLI
    if _CLI or not is_ingest_cli():
        return
    _CLI = True
    try:
        for sig in _CODES:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _stop)
    except ValueError:      # not the main thread
        pass


def finished() -> None:
    """The command is over: its JSON line is next (or written).  In the ``fastdicom ingest``
    process, SIGINT and SIGTERM are ignored from now on: the process only exits (its
    threads are done), and a signal would add a second JSON line or turn the command's exit
    code into a kill."""
    if not _CLI:
        return
    try:
        for sig in _CODES:
            signal.signal(sig, signal.SIG_IGN)
    except ValueError:      # not the main thread
        pass

