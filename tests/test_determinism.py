"""Same params twice -> identical split files, augmented images, features, metrics and weights; a
`dvc repro` after a successful run is a no-op."""
import pytest

from tests.pipeline_support import BACKBONE, outputs, trained_project
from tests.test_dvc_pipeline import dvc


@pytest.mark.slow
def test_rerunning_every_stage_reproduces_every_output_then_repro_is_a_noop(tmp_path_factory):
    project = trained_project(tmp_path_factory)
    first = outputs(project)
    for stage in ("split", "augment", f"features@{BACKBONE}", f"train@{BACKBONE}"):
        forced = dvc("repro", "--force", "--single-item", stage, cwd=project)
        assert forced.returncode == 0 and "Running stage" in forced.stdout, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert outputs(project) == first
    again = dvc("repro", f"train@{BACKBONE}", cwd=project)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert "up to date" in dvc("status", f"train@{BACKBONE}", cwd=project).stdout
