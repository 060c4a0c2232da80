"""The shipped sweeps: each records how it was made, and each headline comparison a page states holds in its runs.

Nothing is trained here: the tests read data/sweeps/*.json.
"""

import json
import statistics

import pytest

from batchcourse.sweeps import SWEEPS_DIR

SWEEP_FILES = sorted(SWEEPS_DIR.glob("*.json"))
# The least gap each claim states: a difference in points (accuracy counted in percent), or a multiple of the
# larger standard deviation over the seeds of the two sides.
CLAIMS = {
    "eval_batch_size_symptom": {"points": 10.0},
    "bn_small_batch_vs_gn": {"spreads": 3.0},
    "bn_small_batch_vs_no_norm": {"spreads": 3.0},
    "bn_allows_high_learning_rate": {"spreads": 3.0},
}
METRICS = {"test accuracy": 100.0, "test error %": -1.0}  # factor to points where larger is better


def headlines():
    for path in SWEEP_FILES:
        for index, headline in enumerate(json.loads(path.read_text()).get("headline", [])):
            yield pytest.param(path.name, headline, id=f"{path.stem}-{index}-{headline.get('claim')}")


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[path.stem for path in SWEEP_FILES])
def test_sweep_records_how_it_was_made(path):
    record = json.loads(path.read_text())
    assert {"assignment", "command", "measured_on", "machine", "seconds", "results"} <= set(record)
    assert record["command"].startswith("python3 tasks.py sweep ")


def test_both_effects_have_a_headline():
    claims = {headline["claim"] for _, headline in (param.values for param in headlines())}
    assert {"eval_batch_size_symptom", "bn_small_batch_vs_gn"} <= claims


@pytest.mark.parametrize("name, headline", list(headlines()))
def test_headline_gap_exceeds_the_stated_threshold(name, headline):
    assert headline["claim"] in CLAIMS, f"{name}: unknown claim {headline['claim']!r}: add its threshold here"
    assert headline["metric"] in METRICS, f"{name}: unknown metric {headline['metric']!r}"
    better, worse = headline["better"], headline["worse"]
    for side in (better, worse):
        assert isinstance(side["label"], str) and side["label"]
        assert len(side["runs"]) >= 3 and all(isinstance(value, (int, float)) for value in side["runs"])
    factor = METRICS[headline["metric"]]
    better_runs = [factor * value for value in better["runs"]]
    worse_runs = [factor * value for value in worse["runs"]]
    gap = statistics.fmean(better_runs) - statistics.fmean(worse_runs)
    threshold = CLAIMS[headline["claim"]]
    if "points" in threshold:
        assert gap > threshold["points"], f"{name}: {headline['claim']} gap {gap:.1f} points"
    else:
        spread = max(statistics.stdev(better_runs), statistics.stdev(worse_runs))
        assert gap > threshold["spreads"] * spread, f"{name}: {headline['claim']} gap {gap:.2f}, spread {spread:.2f}"
