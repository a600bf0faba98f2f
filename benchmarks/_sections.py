"""Sections of a check script, each with its own time budget: one failing is reported, not fatal."""
import math
import signal
import threading
import time
import traceback
from contextlib import contextmanager

import numpy as np


class SectionTimeout(Exception):
    """A section ran past its hard limit (its budget plus a grace period)."""


class Section:
    """A named part of a check: the rows it measured so far and the time it has left.

    Parameters
    ----------
    name : str
    budget : float
        Seconds. Work items ask :meth:`left` and stop starting new work
        once it is spent; past ``budget * 1.1 + 5`` s a ``SIGALRM``
        interrupts the section (between Python statements: a kernel that
        hangs is not interrupted).

    Attributes
    ----------
    rows : list of dict
        What the section measured, kept when it fails or times out.
    notes : list of str
        Sentences for the report (what was skipped, what was capped).
    """

    def __init__(self, name, budget):
        self.name, self.budget = name, float(budget)
        self.hard_limit = self.budget * 1.1 + 5
        self.rows, self.notes = [], []
        self.status, self.error, self.seconds = "not run", None, 0.0
        self._start = None

    def left(self):
        """Seconds of the budget left."""
        return self.budget - (time.monotonic() - self._start)

    def out_of_time(self, what):
        """``True`` (and a note saying ``what`` was skipped) when the budget is spent."""
        if self.left() > 0:
            return False
        self.notes.append(f"skipped for the time budget ({self.budget:.0f} s): {what}")
        return True

    def run(self, function, *args):
        """``function(self, *args)`` under the budget; the outcome lands in ``status``."""
        self._start = time.monotonic()
        try:
            with _hard_limit(self.hard_limit):
                function(self, *args)
            self.status = "ok" if all(r.get("ok", True) for r in self.rows) else "check failed"
        except SectionTimeout:
            self.status, self.error = "timeout", f"interrupted after {self.hard_limit:.0f} s"
        except Exception as exc:  # noqa: BLE001 - reported, the next section still runs
            self.status = "error"
            self.error = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc(limit=-4))
        self.seconds = time.monotonic() - self._start
        return self

    def as_dict(self):
        return {"status": self.status, "seconds": self.seconds, "budget_s": self.budget,
                "error": self.error, "notes": self.notes, "rows": self.rows}


@contextmanager
def _hard_limit(seconds):
    """Raise :class:`SectionTimeout` after ``seconds`` (main thread with SIGALRM only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def interrupt(signum, frame):
        raise SectionTimeout()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def compare(a, b):
    """How far two arrays (or tensors) are apart: ``{"bitwise": bool, "max_abs": float}``.

    NaN equals NaN (the weight history's rows that were not trained).
    """
    a, b = (np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64) for x in (a, b))
    if a.shape != b.shape:
        return {"bitwise": False, "max_abs": math.inf}
    bitwise = bool(np.array_equal(a, b, equal_nan=True))
    both = ~(np.isnan(a) & np.isnan(b))
    gap = np.abs(a[both] - b[both])
    return {"bitwise": bitwise, "max_abs": float(np.nan_to_num(gap.max(), nan=math.inf)) if gap.size else 0.0}


def compare_all(pairs):
    """:func:`compare` over ``{name: (a, b)}``: bitwise only if all are, the largest gap."""
    results = [compare(a, b) for a, b in pairs.values()]
    return {"bitwise": all(r["bitwise"] for r in results),
            "max_abs": max((r["max_abs"] for r in results), default=0.0)}


def status_table(sections):
    """Markdown: each section's outcome, time and budget."""
    lines = ["| section | status | seconds | budget (s) | notes |", "|---|---|---|---|---|"]
    for s in sections:
        notes = "; ".join(s.notes + ([s.error.splitlines()[0]] if s.error else []))
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.budget:.0f} | "
                     f"{notes.replace('|', '/') or '-'} |")
    return "\n".join(lines) + "\n"
