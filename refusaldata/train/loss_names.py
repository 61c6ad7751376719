"""The pair losses' names, importable without torch: the CLI lists them in --help at start-up.

losses.py defines the losses themselves under exactly these names (checked on import).
"""

# --loss name; TRL's name where it differs: dpo = sigmoid, nca = nca_pair.
PAIR_LOSS_NAMES = ("dpo", "nca", "ipo", "simpo", "orpo", "hinge", "robust", "exo_pair", "bco_pair", "sppo_hard",
                   "apo_zero", "apo_down", "sigmoid_norm")
