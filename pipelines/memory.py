"""How the loading process hands freed memory back to the system (glibc and Arrow; best effort
elsewhere)."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional

M_ARENA_MAX = -8


def _libc() -> Optional[ctypes.CDLL]:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def lean_allocators() -> None:
    """Have freed memory go back to the system instead of staying with the thread that freed it.

    glibc gives each thread that allocates an arena of its own, which keeps what was freed in
    it (a per-thread high-water mark), and Arrow's default pool (jemalloc) keeps freed memory
    too. A nightly runs a thread per provider plus Rafay's and Bronto's request threads: one
    arena and the system pool take about 40 MB off its peak for the same work. Call first
    thing, before any thread exists (later, the arenas already made stay).
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_ARENA_MAX, 1)
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def trim() -> None:
    """Return the memory the loads freed to the system before the models need theirs."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
