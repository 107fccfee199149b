"""Same params twice -> identical split files, synthetic and augmented images, features, metrics and weights;
a `dvc repro` after a successful run is a no-op."""
import pytest

from tests.conftest import tree_digest
from tests.pipeline_support import CANDIDATE, dvc, outputs


@pytest.mark.slow
def test_rerunning_every_stage_reproduces_every_output_then_repro_is_a_noop(smoke_project):
    project = smoke_project
    first, synthetic = outputs(project), tree_digest(project / "data" / "synthetic")
    for stage in ("split", "synthesize", "augment", f"features@{CANDIDATE}", f"train@{CANDIDATE}"):
        forced = dvc("repro", "--force", "--single-item", stage, cwd=project)
        assert forced.returncode == 0 and "Running stage" in forced.stdout, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert outputs(project) == first and tree_digest(project / "data" / "synthetic") == synthetic
    again = dvc("repro", f"train@{CANDIDATE}", cwd=project)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert "up to date" in dvc("status", f"train@{CANDIDATE}", cwd=project).stdout
