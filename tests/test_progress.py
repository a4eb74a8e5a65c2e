"""Progress for logs: plain lines about every 30 s naming the stage, the iteration, the time spent
and the stage's ETA; a terminal keeps the tqdm bar."""
from __future__ import annotations

import io

import pytest

from blindsr.errors import STOP_REQUESTED
from blindsr.progress import LogLines, StoppableBar, progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_name_the_stage_and_its_eta():
    clock, out = FakeClock(), io.StringIO()
    lines = LogLines(30, "photo x2", [("estimate kernelgan", 10), ("sr zssr", 20)], file=out, clock=clock)
    for _ in range(30):
        clock.now += 4.0  # 4 s per unit
        lines.update(1)
    printed = out.getvalue().splitlines()
    # A line at 32, 64, 96 s (the first update at or after each 30-s mark).
    assert len(printed) == 3
    # 32 s: 8 of the estimate's 10 units, 2 left at 4 s each.
    assert printed[0] == "photo x2 | estimate kernelgan: 8/10 it (80%), 32 s elapsed, stage ETA 8 s"
    # 64 s: 16 units done, so 6 of the SR stage's 20, which began at 40 s: 24 s for 6 units.
    assert printed[1] == "photo x2 | sr zssr: 6/20 it (30%), 1 min 04 s elapsed, stage ETA 56 s"
    assert printed[2] == "photo x2 | sr zssr: 14/20 it (70%), 1 min 36 s elapsed, stage ETA 24 s"


def test_a_later_stage_rates_its_iterations_without_its_set_up():
    """A photo's SR stage first spent 11 s setting up (the kernel's refinement, SR's own set-up),
    then ran 1 s per iteration: its first line must not extrapolate the set-up over 600
    iterations (a batch log once showed an ETA of hours for a stage of seconds)."""
    clock, out = FakeClock(), io.StringIO()
    lines = LogLines(1600, "photo x2", [("estimate kernelgan", 1000), ("sr zssr", 600)], file=out, clock=clock)
    for _ in range(20):
        clock.now += 1.0
        lines.update(50)  # KernelGAN reports every 50 iterations: 20 s in all
    clock.now += 11.0
    lines.update(1)  # 31 s: the first SR iteration, after the set-up
    clock.now += 30.0
    lines.update(30)  # 61 s: 31 SR iterations done, the last 30 at 1 s each; 569 left
    printed = out.getvalue().splitlines()
    assert printed == ["photo x2 | sr zssr: 1/600 it (0%), 31 s elapsed, stage ETA unknown",
                       "photo x2 | sr zssr: 31/600 it (5%), 1 min 01 s elapsed, stage ETA 9 min 29 s"]


def test_no_line_before_the_interval_and_one_stage_by_default():
    clock, out = FakeClock(), io.StringIO()
    lines = LogLines(100, "batch", unit="image", every=30.0, file=out, clock=clock)
    clock.now += 29.0
    lines.update(3)
    assert out.getvalue() == ""
    clock.now += 1.0
    lines.set_postfix_str("1 failed")
    lines.update(1)
    assert out.getvalue() == "batch: 4/100 image (4%), 30 s elapsed, stage ETA 12 min 00 s, 1 failed\n"


def test_a_stop_request_raises_at_the_next_update_unless_told_not_to():
    lines = LogLines(10, "t", file=io.StringIO())
    quiet = LogLines(10, "t", file=io.StringIO(), stoppable=False)
    STOP_REQUESTED.set()
    try:
        quiet.update(1)
        with pytest.raises(KeyboardInterrupt):
            lines.update(1)
    finally:
        STOP_REQUESTED.clear()


def test_a_terminal_gets_the_bar_and_a_log_the_lines(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(progress_bar(10, "t"), LogLines)
    monkeypatch.setattr("sys.stderr", Terminal())
    with progress_bar(10, "t") as bar:
        assert isinstance(bar, StoppableBar)


def test_a_batch_image_logs_its_stages_when_stderr_is_not_a_terminal(tmp_path, rng, monkeypatch, capsys):
    """Each image of a batch run by an executor reports its own stages in a log."""
    import numpy as np
    from PIL import Image

    from blindsr.batch import ImageTask, process
    from tests.conftest import batch_config, textured_image

    monkeypatch.setattr("blindsr.progress.LOG_EVERY_S", 0.0)  # a line at every update
    source = tmp_path / "photo.png"
    Image.fromarray((textured_image(rng, 64, 64) * 255).astype(np.uint8)).save(source)
    config = batch_config("estimator.iterations=4", "estimator.restarts=1", "sr=zssr", "sr.max_iters=3",
                          "sr.crop_size=16")
    outcome = process(ImageTask(str(source), str(tmp_path / "out" / "photo"), "photo", config, "test"))
    assert outcome.status == "done", outcome
    lines = capsys.readouterr().err.splitlines()
    assert "photo x2 | estimate kernelgan: 4/4 it (100%)" in "\n".join(lines)
    assert any(line.startswith("photo x2 | sr zssr: 3/3 it (100%)") for line in lines)


def test_task_lines_only_where_no_bar_shows_the_work(monkeypatch):
    from blindsr.progress import task_lines

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    monkeypatch.setattr("blindsr.progress.LOG_EVERY_S", 0.0)
    update = task_lines("im_1 x2", [("estimate kernelgan", 5)])
    update(5)
    assert log.getvalue().startswith("im_1 x2 | estimate kernelgan: 5/5 it (100%)")
    assert task_lines("im_1 x2", [("estimate gt", 0)]) is None  # nothing to count
    monkeypatch.setattr("sys.stderr", Terminal())
    assert task_lines("im_1 x2", [("estimate kernelgan", 5)]) is None  # the run's bar shows it


def test_eval_tasks_and_group_estimates_log_their_stages(tmp_path, rng, monkeypatch, capsys):
    """An evaluation's tasks and a batch's shared-kernel estimate, run by an executor into a log,
    report their own iterations (eval's bar counts only finished tasks)."""
    import numpy as np
    from PIL import Image

    from blindsr.batch import plan_tasks
    from blindsr.config import group_schemas
    from blindsr.datasets import load_benchmark
    from blindsr.evaluation import TableTask, run_table_task
    from blindsr.groups import plan_groups, process_group
    from tests.conftest import batch_config, textured_image

    monkeypatch.setattr("blindsr.progress.LOG_EVERY_S", 0.0)  # a line at every update
    for folder, size in (("gt", 128), ("lr_x2", 64)):
        (tmp_path / "bench" / folder).mkdir(parents=True)
        Image.fromarray((textured_image(rng, size, size) * 255).astype(np.uint8)).save(
            tmp_path / "bench" / folder / "im_1.png")
    entry = load_benchmark(tmp_path / "bench", 2)[0]
    schemas = group_schemas()
    common = {"entry": entry, "scale": 2, "estimator": schemas["estimator"]["kernelgan"](iterations=4, restarts=1),
              "kernel_dir": str(tmp_path / "kernels"), "device": "cpu", "seed": 0}
    estimated = run_table_task(TableTask(sr=None, result=str(tmp_path / "k.json"), **common))
    assert "error" not in estimated, estimated
    sr = schemas["sr"]["zssr"](max_iters=3, crop_size=16)
    assert "error" not in run_table_task(TableTask(sr=sr, result=str(tmp_path / "sr.json"), **common))
    err = capsys.readouterr().err
    assert "im_1 x2 | estimate kernelgan: 4/4 it (100%)" in err and "im_1 x2 | sr zssr: 3/3 it (100%)" in err

    src = tmp_path / "folder"
    for i in range(2):
        (src / f"shot{i}.png").parent.mkdir(exist_ok=True)
        Image.fromarray((textured_image(rng, 64, 64) * 255).astype(np.uint8)).save(src / f"shot{i}.png")
    config = batch_config("input=in", "output=out", "estimator.restarts=1", "estimator.group_iterations=3")
    tasks, _ = plan_tasks(src, tmp_path / "out", config)
    _, groups = plan_groups(tasks, "folder", src.resolve(), (tmp_path / "out").resolve())
    outcome = process_group(groups[0])
    assert outcome.status == "done", outcome
    assert f"shared kernel of {groups[0].label} x2 | estimate kernelgan: 3/3 it (100%)" in capsys.readouterr().err
