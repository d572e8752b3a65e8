"""The ensemble's DETECTIONS tensor: one row block per frame, padded with frame index -1, read back whole."""

from __future__ import annotations

import numpy as np

from orchestrator.core.detections import Detections, ObjectClass
from orchestrator.inference.ensemble_contract import NO_FRAME, to_rows


def test_rows_keep_every_detection_of_every_frame() -> None:
    faces = Detections.build(
        np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 20, 20.5]]), [0.9, 0.8, 0.7], ObjectClass.FACE, [2, 0, 2]
    )
    plates = Detections.build(np.array([[0, 0, 10, 5]]), [0.6], ObjectClass.PLATE, 2)
    found = Detections.concat([faces, plates])
    rows = to_rows(found, batch=4)
    assert rows.shape == (4, 3, 7)  # frame 2 has three objects; frames 1 and 3 none
    assert (rows[1, :, 0] == NO_FRAME).all() and (rows[0, 1:, 0] == NO_FRAME).all()
    back = Detections.from_rows(rows)
    order = np.lexsort((back.scores, back.frame_index))
    expected = np.lexsort((found.scores, found.frame_index))
    np.testing.assert_array_equal(back.boxes[order], found.boxes[expected])
    np.testing.assert_array_equal(back.classes[order], found.classes[expected])
    np.testing.assert_array_equal(back.frame_index[order], found.frame_index[expected])


def test_no_detections_is_one_padding_row_per_frame() -> None:
    rows = to_rows(Detections(), batch=3)
    assert rows.shape == (3, 1, 7) and (rows[:, :, 0] == NO_FRAME).all()
    assert len(Detections.from_rows(rows)) == 0
