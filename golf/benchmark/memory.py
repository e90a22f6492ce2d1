"""Peak memory: the process's (RSS, from the kernel) and, on a GPU, torch's CUDA allocator; and a watch over one
stretch of work (its own peak, by resetting the kernel's high-water mark, and its anonymous-memory peak, sampled).

RSS counts the pages of memory-mapped validation shards that were read (file-backed, 2 bytes a token, reclaimable by
the kernel); anonymous memory (RssAnon) is what the program allocated, but only sampling sees its peak, and the peak
of more samples is higher, so the kernel's exact high-water mark of RSS is the figure golf.bench judges by.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

import torch

_STATUS = "/proc/self/status"


def _status_bytes(*keys: str) -> dict[str, Optional[int]]:
    found: dict[str, Optional[int]] = {key: None for key in keys}
    try:
        with open(_STATUS, encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in found:
                    found[key] = int(value.split()[0]) * 1024  # the kernel writes kB
    except OSError:
        pass
    return found


def peak_rss_bytes() -> int:
    """The process's peak resident set since it started (ru_maxrss: kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _reset_rss_peak() -> bool:
    """Reset the kernel's VmHWM (Linux >= 4.0: write 5 to /proc/self/clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def release_free_memory() -> None:
    """Make RSS track live memory: hand back memory that is free but still resident (glibc's heap keeps it after large
    frees), and from now on serve every block of 64 KiB or more with its own mapping, returned to the kernel when
    freed (glibc otherwise raises that threshold as large blocks come and go, and keeps them). This changes allocation
    speed, so golf.bench measures memory in a process of its own."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@dataclass
class MemoryPeak:
    rss_start: int
    rss_peak: int  # peak RSS during the watch (kernel high-water mark when it could be reset, else sampled)
    anon_start: int
    anon_peak: int  # sampled peak of anonymous RSS
    cuda_peak: Optional[int]  # torch.cuda.max_memory_allocated during the watch, on a GPU

    @property
    def anon_growth(self) -> int:
        return max(self.anon_peak - self.anon_start, 0)

    @property
    def rss_growth(self) -> int:
        return max(self.rss_peak - self.rss_start, 0)


class MemoryWatch:
    """`with MemoryWatch(device) as watch: ...` then watch.peak. Samples /proc/self/status every `interval_s`."""

    def __init__(self, device: torch.device, interval_s: float = 0.002):
        self.device = device
        self.interval_s = interval_s
        self.peak: Optional[MemoryPeak] = None
        self._stop = threading.Event()
        self._max_rss = 0
        self._max_anon = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = _status_bytes("VmRSS", "RssAnon")
            self._max_rss = max(self._max_rss, now["VmRSS"] or 0)
            self._max_anon = max(self._max_anon, now["RssAnon"] or 0)
            time.sleep(self.interval_s)

    def __enter__(self) -> "MemoryWatch":
        release_free_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = _status_bytes("VmRSS", "RssAnon")
        self._rss_start, self._anon_start = start["VmRSS"] or 0, start["RssAnon"] or 0
        self._max_rss, self._max_anon = self._rss_start, self._anon_start
        self._hwm_reset = _reset_rss_peak()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._stop.set()
        self._thread.join()
        end = _status_bytes("VmRSS", "RssAnon", "VmHWM")
        self._max_rss = max(self._max_rss, end["VmRSS"] or 0)
        self._max_anon = max(self._max_anon, end["RssAnon"] or 0)
        rss_peak = end["VmHWM"] if self._hwm_reset and end["VmHWM"] else self._max_rss
        cuda_peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        self.peak = MemoryPeak(self._rss_start, max(rss_peak, self._max_rss), self._anon_start, self._max_anon,
                               cuda_peak)
