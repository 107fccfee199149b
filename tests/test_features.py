"""features@'s extraction: chunks decoded ahead in a thread give exactly what one batch in memory gives."""
import numpy as np
from PIL import Image

from facemask.core.model import build_classifier, feature_extractor
from facemask.core.resize import load_batch
from facemask.pipeline import features


def test_extract_in_overlapped_chunks_equals_predicting_all_images_at_once(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(11):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(paths[-1])
    extractor = feature_extractor(build_classifier("MobileNetV2", 32, None))
    monkeypatch.setattr(features, "CHUNK", 4)  # three chunks, the last one short
    chunked = features.extract(extractor, paths, 32, 4, "test")
    np.testing.assert_array_equal(chunked, extractor.predict(load_batch(paths, 32), batch_size=4, verbose=0))
