"""Progress of long stages: a tqdm bar on a terminal, plain lines in a log.

When stderr is not a terminal (a batch job, CI, ``nohup``), a bar would be silent, so the run
prints one line about every ``LOG_EVERY_S`` seconds instead, naming the stage, the iteration,
the time spent and the time the stage still needs at its current rate (in a stage after the
first, measured from the stage's first update: what ran before it - a kernel's refinement, SR's
set-up - is not per-iteration work, and extrapolated from one iteration it made a stage of
seconds look like hours):

    photo x2 | sr zssr: 300/600 it (50%), 12 s elapsed, stage ETA 12 s

Tasks that executors run (a batch's images, an evaluation's estimates and SR runs, a group's
shared kernel) print their own such lines in a log (``task_lines``).

Updates of a run's own progress also raise a pending Ctrl-C/SIGTERM (``raise_if_stopped``),
whichever form the display takes; the folder-level displays of ``batch`` and ``eval`` leave
stopping to their executors.
"""
from __future__ import annotations

import itertools
import sys
import time
from typing import Callable, Sequence, TextIO

from tqdm import tqdm

from blindsr.errors import raise_if_stopped

LOG_EVERY_S = 30.0
Stages = Sequence[tuple[str, int]]


class StoppableBar(tqdm):
    """A progress bar whose updates also raise a pending Ctrl-C/SIGTERM (``raise_if_stopped``)."""

    def update(self, n: float | None = 1) -> bool | None:
        raise_if_stopped()
        return super().update(n)


class LogLines:
    """The same interface as the bar (``update``, ``set_postfix_str``, ``close``, a context
    manager), writing a line to ``file`` at most every ``every`` seconds.

    Args:
        total: units of the whole run.
        desc: what runs (e.g. the image and the scale).
        stages: (name, units) of consecutive stages, so a line can say which one runs; one
            stage named after ``desc`` when omitted.
        every: seconds between lines (default ``LOG_EVERY_S``).
        stoppable: whether an update raises a pending stop request.
        file: where the lines go.
        clock: seconds since some origin (tests pass a fake one).
    """

    def __init__(self, total: int, desc: str, stages: Stages | None = None, unit: str = "it",
                 every: float | None = None, file: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, stoppable: bool = True) -> None:
        self.desc, self.unit = desc, unit
        self.every = LOG_EVERY_S if every is None else every
        self.stages = list(stages) if stages else [("", int(total))]
        self.ends = list(itertools.accumulate(units for _, units in self.stages))  # units done at each stage's end
        self.file = file if file is not None else sys.stderr
        self.clock = clock
        self.stoppable = stoppable
        self.n = 0
        self.postfix = ""
        self.start = self.clock()
        self.last_line = self.start
        self.stage_index = 0
        self.stage_first = 0  # units done when the current stage began
        self.rate_origin = (self.start, 0)  # (time, units done) the current stage's rate counts from

    def __enter__(self) -> "LogLines":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float | None = 1) -> None:
        if self.stoppable:
            raise_if_stopped()
        self.n += int(n or 0)
        now = self.clock()
        # A stage is current until an update goes past its end; the next one's rate counts from
        # that update.
        while self.stage_index < len(self.stages) - 1 and self.n > self.ends[self.stage_index]:
            self.stage_first = self.ends[self.stage_index]
            self.stage_index += 1
            self.rate_origin = (now, self.n)
        if now - self.last_line >= self.every:
            self.last_line = now
            print(self.line(now), file=self.file, flush=True)

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        """Nothing to tear down; the run's own output reports the end."""

    def line(self, now: float) -> str:
        name, units = self.stages[self.stage_index]
        done = self.n - self.stage_first
        left = max(units - done, 0)
        since, counted = self.rate_origin
        rated = self.n - counted
        eta = f"stage ETA {_duration((now - since) / rated * left)}" if rated else "stage ETA unknown"
        where = f"{self.desc} | {name}" if name else self.desc
        extra = f", {self.postfix}" if self.postfix else ""
        return (f"{where}: {done}/{units} {self.unit} ({100 * done / max(units, 1):.0f}%), "
                f"{_duration(now - self.start)} elapsed, {eta}{extra}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def on_terminal(file: TextIO | None = None) -> bool:
    file = file if file is not None else sys.stderr
    return bool(getattr(file, "isatty", lambda: False)())


def task_lines(desc: str, stages: Stages) -> Callable[[float | None], None] | None:
    """A task's own progress where no bar shows it - a batch's image, an evaluation's task, a
    group's estimate, run by an executor into a log - so that a log is never silent for minutes:
    ``LogLines`` over ``stages``; None on a terminal (the run's one bar counts the tasks there) or
    when the stages report no work."""
    total = sum(units for _, units in stages)
    if on_terminal() or not total:
        return None
    return LogLines(total, desc, stages).update


def progress_bar(total: int, desc: str, stages: Stages | None = None, unit: str = "it",
                 stoppable: bool = True) -> tqdm | LogLines:
    """One progress display per run: a tqdm bar on a terminal, ``LogLines`` otherwise."""
    if on_terminal():
        bar = StoppableBar if stoppable else tqdm
        return bar(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False, disable=not total,
                   file=sys.stderr)
    return LogLines(total, desc, stages, unit, stoppable=stoppable)
