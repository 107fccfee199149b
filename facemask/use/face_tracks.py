"""Keep one id per face across video frames, and steady its label: IoU matching, averaged probabilities."""
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from facemask.core import CLASSES
from facemask.use.detect import iou


@dataclass
class Track:
    """One face followed over frames: its last box and the probabilities of its last `smooth` frames."""

    id: int
    box: tuple
    history: deque
    missed: int = 0
    labels: Counter = field(default_factory=Counter)  # smoothed label of each frame it was seen in

    def probabilities(self) -> np.ndarray:
        """The mean class probabilities over the frames in `history`."""
        return np.mean(self.history, axis=0)


class Tracker:
    """Matches each frame's face boxes to the tracks of earlier frames, greedily by IoU.

    A box overlapping no live track (IoU under `min_iou`) starts a new track; a track unmatched for
    more than `max_missed` frames in a row ends.
    """

    def __init__(self, smooth: int = 5, min_iou: float = 0.3, max_missed: int = 15):
        self.smooth, self.min_iou, self.max_missed = smooth, min_iou, max_missed
        self.live: list[Track] = []
        self.ended: list[Track] = []
        self._next_id = 1

    def update(self, boxes, probabilities) -> list[Track]:
        """The track of each box (same order), after adding this frame's probabilities to it."""
        candidates = np.asarray(boxes, np.float64).reshape(-1, 4)
        pairs = sorted(((float(overlap), t, b) for t, track in enumerate(self.live)
                        for b, overlap in enumerate(iou(track.box, candidates))), reverse=True)
        matched, used_tracks = {}, set()
        for overlap, t, b in pairs:
            if overlap >= self.min_iou and t not in used_tracks and b not in matched:
                matched[b] = self.live[t]
                used_tracks.add(t)
        for t, track in enumerate(self.live):
            track.missed = 0 if t in used_tracks else track.missed + 1
        self.ended += [track for track in self.live if track.missed > self.max_missed]
        self.live = [track for track in self.live if track.missed <= self.max_missed]
        tracks = []
        for b, (box, p) in enumerate(zip(boxes, probabilities, strict=True)):
            track = matched.get(b)
            if track is None:
                track = Track(self._next_id, tuple(box), deque(maxlen=self.smooth))
                self._next_id += 1
                self.live.append(track)
            track.box = tuple(box)
            track.history.append(np.asarray(p, dtype=np.float64))
            track.labels[CLASSES[int(np.argmax(track.probabilities()))]] += 1
            tracks.append(track)
        return tracks

    def faces_per_class(self) -> dict[str, int]:
        """How many tracks (faces) there were, each counted once under the label it had most often."""
        counts = Counter(track.labels.most_common(1)[0][0] for track in self.ended + self.live)
        return {label: counts[label] for label in CLASSES}
