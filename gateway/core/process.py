"""Child processes that end with the process that started them.

A process killed by SIGKILL (the out-of-memory killer, ``kill -9``, a container runtime) runs no
clean-up code, so its helpers must notice by themselves: otherwise they are re-parented to init
and keep their memory and ports. On Linux the kernel does it for us (``PR_SET_PDEATHSIG``); a
thread that watches the parent pid covers the other systems and the rare case the kernel signal
cannot be set.

The kernel's "parent" is the *thread* that started the child: start children from a long-lived
thread (the main thread or the event loop's), not from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["exit_with_parent", "parent_death_signal", "set_parent_death_signal"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _prctl() -> Any:
    """libc's ``prctl``, or None off Linux. Loaded before any fork: loading a library in a
    forked child of a threaded process can deadlock."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def set_parent_death_signal(signum: int, prctl: Any = None) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only).
    Returns whether the request was accepted."""
    prctl = prctl or _prctl()
    return prctl is not None and int(prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0


def parent_death_signal(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child (even a non-Python program)
    gets ``signum`` when the process starting it dies. The signal survives ``exec``. The parent
    may die between the fork and the request; then the child is already orphaned and exits."""
    parent = os.getpid()
    prctl = _prctl()

    def request() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return request


def _watch_parent(parent: int, interval: float) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def exit_with_parent(parent: int, *, interval: float = 0.5) -> None:
    """Make this process exit as soon as ``parent`` (its parent when started) is gone, however
    it died: SIGKILL from the kernel on Linux, a watching daemon thread everywhere."""
    set_parent_death_signal(signal.SIGKILL)
    # The parent may have died before the request above: the kernel would never signal then.
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, interval), name="parent-watch", daemon=True).start()
