"""Helpers for the tests that start and signal whole process trees."""

import contextlib
import signal


@contextlib.contextmanager
def sigint_not_ignored():
    """Ctrl-C for a child as from a terminal: a shell's background job (``cmd &``) inherits
    SIGINT ignored — kept across exec, and Python then installs no KeyboardInterrupt handler —
    so for the Popen call the parent catches it instead (caught signals reset to default on
    exec). No ``preexec_fn``: forking with Python code to run is unsafe once JAX's threads exist."""
    old = signal.getsignal(signal.SIGINT)
    if old == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
