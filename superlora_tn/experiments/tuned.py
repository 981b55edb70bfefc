"""Learning rates chosen by the tuning protocol, per task and method (the shipped defaults).

Generated from the committed tuning records ``docs/experiments/<task>_tuning.csv`` by
:func:`superlora_tn.experiments.protocol.choices` (``tests/test_experiments_protocol.py`` checks
that this table equals the choice recomputed from the CSV). Methods absent here run at the task's
default rate for their kind.
"""

from __future__ import annotations

TUNED_RATES: dict[str, dict[str, float]] = {
    "digits": {
        "head only": 0.316228,
        "biases only": 0.03,
        "LoRA r=1": 0.03,
        "LoRA r=2": 0.03,
        "LoRA r=4": 0.03,
        "LoRA r=8": 0.03,
        "LoKr r=1": 0.0948683,
        "LoNKr r=1": 0.0948683,
        "LoTR r=4": 0.03,
        "SuperLoRA 2-D G=1 r=1": 0.0948683,
        "SuperLoRA 2-D G=L r=1": 0.0948683,
        "SuperLoRA 3-D G=1 r=4": 0.0948683,
        "SuperLoRA 3-D G=L r=4": 0.03,
        "SuperLoRA 4-D G=1 r=4": 0.03,
        "SuperLoRA 4-D G=L r=4": 0.03,
        "SuperLoRA 3-D G=1 r=16": 0.03,
        "SuperLoRA 3-D G=L r=8": 0.03,
        "SuperLoRA 2-D G=1 r=1 ff=0.5": 0.0948683,
        "SuperLoRA 2-D G=1 r=1 ff=0.1": 0.3,
        "SuperLoRA 2-D G=1 r=1 ff=0.01": 0.0948683,
        "SuperLoRA 3-D G=1 r=2 ff=0.5": 0.03,
        "SuperLoRA 3-D G=1 r=2 ff=0.1": 0.0948683,
        "SuperLoRA 3-D G=1 r=2 ff=0.01": 0.0948683,
        "SuperLoRA 4-D G=1 r=2 ff=0.5": 0.0948683,
        "SuperLoRA 4-D G=1 r=2 ff=0.1": 0.03,
        "SuperLoRA 4-D G=1 r=2 ff=0.01": 0.03,
        "SuperLoRA 3-D G=1 r=1 ff=0.01": 0.03,
        "SuperLoRA 4-D G=1 r=1 ff=0.01": 0.03,
        "SuperLoRA 3-D G=1 r=4 shuffled": 0.0948683,
        "full FT (adapted W)": 0.01,
        "random subspace d=21": 1.0,
        "random subspace d=116": 1.0,
        "random subspace d=364": 0.316228,
        "random subspace d=4064": 0.0316228,
        "random subspace d=32768": 0.00316228,
    },
    "diffusion": {
        "LoRA r=1": 0.0316228,
        "LoRA r=2": 0.0316228,
        "LoRA r=4": 0.0316228,
        "SuperLoRA 2-D G=1 r=1": 0.0316228,
        "SuperLoRA 3-D G=1 r=16": 0.0316228,
        "SuperLoRA 4-D G=1 r=1 ff=0.01": 0.0316228,
        "full FT (adapted W)": 0.00316228,
        "random subspace d=33": 0.1,
        "random subspace d=1024": 0.0316228,
        "random subspace d=8192": 0.1,
        "random subspace d=65536": 0.01,
        "random subspace d=262144": 0.00316228,
    },
}
