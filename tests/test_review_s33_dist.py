"""Session 33's fixes of data-parallel training and its launchers (graphc train/bench --ranks,
python -m bench.data_parallel, the start-up handshake, the trainer's batch split); each test
failed before its fix."""
from __future__ import annotations

import json
import math
import graphc.distributed as dist


# ---- the handshake: equal NaN settings agree ------------------------------------------------
def _as_a_rank_receives(facts):
    """facts after the JSON round trip the handshake sends them through (each rank gets its
    own float('nan') objects)."""
    return json.loads(json.dumps(facts, sort_keys=True, default=str))


def test_ranks_holding_the_same_nan_setting_agree():
    """Ranks whose settings both hold NaN (checkpoint_meta={"best_val": nan}, a best value
    not yet measured) were refused: `ranks disagree on settings.best_val: rank 0 has NaN,
    rank 1 has NaN` (NaN == NaN is False). Now equal NaNs agree, in lists and nested dicts
    too, and a NaN against a number still differs."""
    facts = {"settings": {"best_val": math.nan, "history": [1.0, math.nan],
                          "runs": [{"val": math.nan}]}, "steps": 3}
    rank0, rank1 = _as_a_rank_receives(facts), _as_a_rank_receives(facts)
    assert dist._first_difference(rank0, rank1) is None
    other = _as_a_rank_receives({**facts, "settings": {**facts["settings"], "best_val": 1.5}})
    path, mine, theirs = dist._first_difference(rank0, other)
    assert path == "settings.best_val" and math.isnan(mine) and theirs == 1.5
    other = _as_a_rank_receives({**facts, "settings": {**facts["settings"],
                                                       "history": [1.0, 2.0]}})
    path, mine, theirs = dist._first_difference(rank0, other)
    assert path == "settings.history" and theirs == [1.0, 2.0]
    assert dist._first_difference({"n": 1}, {"n": 1.0}) is None  # as before
