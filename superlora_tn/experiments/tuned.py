"""Learning rates chosen by the tuning protocol, per task and method (the shipped defaults).

Generated from the committed tuning records ``docs/experiments/<task>_tuning.csv`` by
:func:`superlora_tn.experiments.protocol.choices` (``tests/test_experiments_protocol.py`` checks
that this table equals the choice recomputed from the CSV). Methods absent here run at the task's
default rate for their kind.
"""

from __future__ import annotations

TUNED_RATES: dict[str, dict[str, float]] = {}
