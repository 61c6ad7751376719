"""Training losses: the DPO family of pair losses, as TRL defines them.

Each loss takes a `PairScores` (summed reply log-probabilities of the chosen and the
rejected completion under the policy and under the reference, and their token counts)
and `PairOptions`, and returns one loss per pair. The definitions follow TRL 1.16 so
numbers are comparable with runs made there:

- DPOTrainer `loss_type`: sigmoid (our `dpo`; with --label-smoothing it is cDPO),
  hinge, ipo (per-token averaged log-ratios, as TRL does), exo_pair, nca_pair (our
  `nca`), robust, bco_pair, sppo_hard, apo_zero, apo_down, sigmoid_norm;
- CPOTrainer `loss_type="simpo"` with `cpo_alpha=0` (`simpo`): reference-free, average
  log-probabilities, margin `simpo_gamma`;
- ORPOTrainer (`orpo`): the chosen reply's NLL minus β·logσ(log odds ratio) of the
  average log-probabilities. TRL averages the NLL over every chosen token of a batch;
  here it is each pair's mean token NLL (the same for one pair or equal lengths), so the
  loss stays one value per pair like the others.

TRL's batch-level losses (aot, aot_unpaired: sorted across the batch) and discopop are
not offered: they mix pairs, and the step losses here are sums over pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refusaldata.train.loss_names import PAIR_LOSS_NAMES


@dataclass(frozen=True)
class PairScores:
    """Summed reply log-probabilities per pair, and reply token counts (float tensors)."""

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor | None
    reference_rejected: torch.Tensor | None
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor

    @property
    def chosen_logratio(self) -> torch.Tensor:
        return self.policy_chosen - self.reference_chosen

    @property
    def rejected_logratio(self) -> torch.Tensor:
        return self.policy_rejected - self.reference_rejected

    @property
    def margin(self) -> torch.Tensor:
        """Δ: the chosen log-ratio minus the rejected one (DPO's implicit reward margin / β)."""
        return self.chosen_logratio - self.rejected_logratio

    @property
    def chosen_average(self) -> torch.Tensor:
        return self.policy_chosen / self.chosen_tokens.clamp(min=1.0)

    @property
    def rejected_average(self) -> torch.Tensor:
        return self.policy_rejected / self.rejected_tokens.clamp(min=1.0)


@dataclass(frozen=True)
class PairOptions:
    """β, label smoothing ε (robust, exo_pair, cDPO) and SimPO's margin γ."""

    beta: float = 0.1
    label_smoothing: float = 0.0
    simpo_gamma: float = 0.5


def dpo_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """−(1−ε)logσ(βΔ) − ε·logσ(−βΔ): DPO, and cDPO when ε > 0 (TRL "sigmoid")."""
    logits = o.beta * s.margin
    return -(1 - o.label_smoothing) * F.logsigmoid(logits) - o.label_smoothing * F.logsigmoid(-logits)


def nca_pair_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """−logσ(r_c) − ½logσ(−r_c) − ½logσ(−r_r), r = β·(policy − reference) log-ratio.

    Unlike DPO it scores each completion against the reference on its own, so the
    chosen likelihood cannot fall as long as the rejected one falls faster.
    """
    chosen, rejected = o.beta * s.chosen_logratio, o.beta * s.rejected_logratio
    return -F.logsigmoid(chosen) - 0.5 * F.logsigmoid(-chosen) - 0.5 * F.logsigmoid(-rejected)


def hinge_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """max(0, 1 − βΔ) (SLiC)."""
    return torch.relu(1 - o.beta * s.margin)


def ipo_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """(Δ̄ − 1/(2β))², Δ̄ from log-ratios averaged per reply token (TRL's normalization)."""
    average = (s.chosen_logratio / s.chosen_tokens.clamp(min=1.0)
               - s.rejected_logratio / s.rejected_tokens.clamp(min=1.0))
    return (average - 1 / (2 * o.beta)) ** 2


def robust_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """(−(1−ε)logσ(βΔ) + ε·logσ(−βΔ)) / (1 − 2ε): DPO unbiased under label noise ε (rDPO)."""
    logits = o.beta * s.margin
    return (-(1 - o.label_smoothing) * F.logsigmoid(logits)
            + o.label_smoothing * F.logsigmoid(-logits)) / (1 - 2 * o.label_smoothing)


def exo_pair_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """KL(softmax over the pair of βΔ ‖ [1−ε, ε]) (EXO-pref, needs ε > 0)."""
    logits = o.beta * s.margin
    epsilon = torch.tensor(o.label_smoothing, dtype=logits.dtype, device=logits.device)
    return (torch.sigmoid(logits) * (F.logsigmoid(logits) - torch.log1p(-epsilon))
            + torch.sigmoid(-logits) * (F.logsigmoid(-logits) - torch.log(epsilon)))


def bco_pair_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """−logσ(β·r_c) − logσ(−β·r_r), r the log-ratios (BCO on pairs)."""
    return -F.logsigmoid(o.beta * s.chosen_logratio) - F.logsigmoid(-o.beta * s.rejected_logratio)


def sppo_hard_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """(r_c − 1/(2β))² + (r_r + 1/(2β))² (SPPO with hard win probabilities)."""
    return (s.chosen_logratio - 0.5 / o.beta) ** 2 + (s.rejected_logratio + 0.5 / o.beta) ** 2


def apo_zero_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """1 − σ(β·r_c) + σ(β·r_r): raise chosen, lower rejected (APO-zero)."""
    return 1 - torch.sigmoid(o.beta * s.chosen_logratio) + torch.sigmoid(o.beta * s.rejected_logratio)


def apo_down_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """σ(β·r_c) + 1 − σ(β·(r_c − r_r)): lower both, rejected more (APO-down)."""
    return torch.sigmoid(o.beta * s.chosen_logratio) + 1 - torch.sigmoid(o.beta * s.margin)


def sigmoid_norm_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """−logσ(β·Δ̄): DPO on log-ratios averaged per reply token."""
    average = (s.chosen_logratio / s.chosen_tokens.clamp(min=1.0)
               - s.rejected_logratio / s.rejected_tokens.clamp(min=1.0))
    return -F.logsigmoid(o.beta * average)


def simpo_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """−(1−ε)logσ(β(ā_c − ā_r) − γ) − ε·logσ(−(…)), ā the average log-probabilities; no reference."""
    logits = o.beta * (s.chosen_average - s.rejected_average - o.simpo_gamma / o.beta)
    return -(1 - o.label_smoothing) * F.logsigmoid(logits) - o.label_smoothing * F.logsigmoid(-logits)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − eˣ) for x < 0, stable on both sides of −log 2 (as TRL's ORPO computes it)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(s: PairScores, o: PairOptions) -> torch.Tensor:
    """−ā_c − β·logσ(log odds(ā_c) − log odds(ā_r)): SFT on chosen plus the odds-ratio term; no reference."""
    chosen, rejected = s.chosen_average, s.rejected_average
    log_odds = (chosen - rejected) - (_log1mexp(chosen) - _log1mexp(rejected))
    return -chosen - o.beta * F.logsigmoid(log_odds)


PairLoss = Callable[[PairScores, PairOptions], torch.Tensor]

# --loss name -> loss; TRL's name where it differs: dpo = sigmoid, nca = nca_pair.
PAIR_LOSSES: dict[str, PairLoss] = {
    "dpo": dpo_loss, "nca": nca_pair_loss, "ipo": ipo_loss, "simpo": simpo_loss, "orpo": orpo_loss,
    "hinge": hinge_loss, "robust": robust_loss, "exo_pair": exo_pair_loss, "bco_pair": bco_pair_loss,
    "sppo_hard": sppo_hard_loss, "apo_zero": apo_zero_loss, "apo_down": apo_down_loss,
    "sigmoid_norm": sigmoid_norm_loss,
}
if tuple(PAIR_LOSSES) != PAIR_LOSS_NAMES:
    raise ImportError("refusaldata.train.loss_names.PAIR_LOSS_NAMES must name PAIR_LOSSES in order")
# Losses that never look at the reference model: its forward pass is skipped.
REFERENCE_FREE = frozenset({"simpo", "orpo"})
# Losses that read --label-smoothing, and the range each accepts.
SMOOTHED = {"dpo": (0.0, 0.5), "robust": (0.0, 0.5), "exo_pair": (0.0, 0.5), "simpo": (0.0, 0.5)}
