"""Training SIGKILLed mid-run resumes from its last checkpoint on the next `dvc repro` and ends exactly
as an uninterrupted run: same history, metrics and weights, logged into one MLflow run. The candidate
is two seeds' models averaged; the kill comes in the second one's fine-tune."""
import os
import signal
import sqlite3
import time

import numpy as np
import pytest

from facemask.core.stage import run
from facemask.pipeline.checkpoint import Checkpoint
from tests.pipeline_support import CANDIDATE, CHECKPOINTS, SMOKE, checkpoint_state, dvc, dvc_popen, outputs

TARGET = f"train@{CANDIDATE}"


def _runs(project) -> list[tuple]:
    with sqlite3.connect(project / "mlflow.db") as db:
        return db.execute("select run_uuid, status from runs").fetchall()


@pytest.mark.slow
def test_sigkilled_training_resumes_and_matches_an_uninterrupted_run(smoke_project, tmp_path):
    project = smoke_project
    uninterrupted, runs_before = outputs(project), _runs(project)
    # An edit to the stage's code (a comment) makes `dvc repro` run train@ again, as new params would.
    with open(project / "stages" / "train.py", "a") as code:
        code.write("# edited\n")

    log = tmp_path / "killed.log"
    process = dvc_popen(project, "repro", TARGET, log=log)
    deadline = time.monotonic() + 300
    while (state := checkpoint_state(project)).get("phase") != "fine_tune":  # the last member, past its head phase
        assert process.poll() is None, f"training ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert state["epoch"] < SMOKE[CANDIDATE][2]["fine_tune_epochs"]
    assert not (project / "models" / "candidates" / CANDIDATE / "model.keras").exists()

    resumed = dvc("repro", TARGET, cwd=project)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "seed 1337: trained before the interruption" in resumed.stdout
    assert f"seed 7: resuming after fine_tune epoch {state['epoch']}" in resumed.stdout
    assert outputs(project) == uninterrupted
    assert not (project / CHECKPOINTS).exists()
    new_runs = [run for run in _runs(project) if run not in runs_before]
    assert [status for _, status in new_runs] == ["FINISHED"]  # the killed and the resumed attempt: one run


def test_a_kill_while_saving_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    Checkpoint(tmp_path, "inputs-1").save({"epoch": 1}, model=[np.ones(3)])

    def killed(path, **arrays):
        with open(path, "wb") as half_written:
            half_written.write(b"PK\x03\x04")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        Checkpoint(tmp_path, "inputs-1").save({"epoch": 2}, model=[np.zeros(3)])
    monkeypatch.undo()
    resumed = Checkpoint(tmp_path, "inputs-1")
    assert resumed.state["epoch"] == 1 and (resumed.arrays("model")[0] == 1).all()


def test_a_checkpoint_from_other_inputs_or_unreadable_is_not_resumed(tmp_path):
    Checkpoint(tmp_path, "inputs-1").save({"epoch": 5})
    other = Checkpoint(tmp_path, "inputs-2")
    assert other.state == {} and other.unusable
    (tmp_path / "checkpoint.npz").write_bytes(b"garbage")
    broken = Checkpoint(tmp_path, "inputs-1")
    assert broken.state == {} and broken.unusable


def test_ctrl_c_in_a_stage_is_one_line_and_exit_status_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        run(interrupted, "train")
    assert exit_.value.code == 130
    assert capsys.readouterr().err == ("train: interrupted; run `dvc repro` again to finish "
                                       "(training resumes from its last checkpoint)\n")
