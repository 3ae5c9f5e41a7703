"""The Python API: each use case of the `dip` command as one function, over arrays and objects as well as files.

>>> import numpy as np
>>> import dip
>>> clean = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
>>> observation = dip.degrade(clean, "denoising", "25", seed=0)
>>> result = dip.restore(observation, arch="tiny", iterations=5)
>>> result.output.shape
(64, 64, 3)
>>> scores = dip.evaluate(result.output, observation)
>>> scores["protocol"], scores["psnr"] > 0
('rgb', True)
>>> bm = dip.baseline(observation, "tv")
>>> bm.output.shape == clean.shape
True

Each function also takes paths (an image file, an observation or run directory) and, given `out`, writes what the
matching `dip` command writes, so a notebook and a workflow job produce the same files. One module per use case:
`degrading`, `restoring` (one DIP fit), `restoring_batches` (fits run as one batch), `baseline_runs`, `combining`,
`evaluating`; `runs` holds what they share.
"""

from dip.api.baseline_runs import baseline
from dip.api.combining import COMBINED_OUTPUTS, combine
from dip.api.degrading import degrade
from dip.api.evaluating import evaluate, watched_column
from dip.api.restoring import FIT_OVERRIDES, restore
from dip.api.restoring_batches import BatchFit, restore_batch
from dip.api.runs import Restoration, check_same_observation, observation_digest

__all__ = [
    "COMBINED_OUTPUTS",
    "FIT_OVERRIDES",
    "BatchFit",
    "Restoration",
    "baseline",
    "check_same_observation",
    "combine",
    "degrade",
    "evaluate",
    "observation_digest",
    "restore",
    "restore_batch",
    "watched_column",
]
