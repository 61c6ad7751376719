"""The learned labelers' classifier: a small, strongly weight-decayed MLP, its threshold and metrics.

Labelled jailbreak and refusal data come from few prompts and templates; a bigger or
looser model fits those templates (0.93 held-out accuracy either way) while transferring
worse, so the MLP is small and decayed hard. Training holds out a validation part grouped
by prompt and picks the threshold that maximizes validation accuracy there (learned.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refusaldata.labelers.features import DEFAULT_FEATURE_SET


@dataclass(frozen=True)
class TrainSettings:
    """The classifier's hyperparameters (stored in the card)."""

    hidden: int = 16
    epochs: int = 20
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    validation_fraction: float = 0.2
    seed: int = 0
    balance_classes: bool = True
    feature_set: str = DEFAULT_FEATURE_SET


def fit(x: np.ndarray, y: np.ndarray, settings: TrainSettings) -> dict[str, np.ndarray]:
    """A one-hidden-layer MLP trained full-batch with AdamW on class-weighted BCE."""
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    hidden = torch.nn.Linear(x.shape[1], settings.hidden)
    output = torch.nn.Linear(settings.hidden, 1)
    for layer in (hidden, output):
        torch.nn.init.xavier_uniform_(layer.weight, generator=generator)
        torch.nn.init.zeros_(layer.bias)
    positives = float(y.sum())
    pos_weight = (len(y) - positives) / max(positives, 1.0) if settings.balance_classes else 1.0
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
    params = [*hidden.parameters(), *output.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    batch = 256
    for _ in range(settings.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch):
            index = order[start:start + batch]
            logits = output(torch.relu(hidden(inputs[index]))).squeeze(-1)
            loss = loss_fn(logits, targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {"hidden.weight": hidden.weight.detach().numpy().copy(),
            "hidden.bias": hidden.bias.detach().numpy().copy(),
            "output.weight": output.weight.detach().numpy().copy(),
            "output.bias": output.bias.detach().numpy().copy()}


def predict(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Scores in [0, 1]: the classifier's probability that a row is unsafe."""
    hidden = np.maximum(x @ weights["hidden.weight"].T + weights["hidden.bias"], 0.0)
    logits = (hidden @ weights["output.weight"].T + weights["output.bias"])[:, 0]
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    """accuracy, precision, recall, f1 and counts for 0/1 arrays."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": int(len(truth)), "positives": int(truth.sum()), "accuracy": float((truth == predicted).mean()),
            "precision": precision, "recall": recall, "f1": f1}


def best_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The threshold (score >= threshold is unsafe) with the highest accuracy.

    Any threshold in (previous candidate, best candidate] classifies alike; the midpoint
    of that gap is returned, so scores a little off the validation ones fall on the same side.
    """
    candidates = np.unique(np.concatenate([[0.5], scores]))
    accuracies = [((scores >= t) == truth.astype(bool)).mean() for t in candidates]
    best = int(np.argmax(accuracies))
    if best == 0:
        return float(candidates[0])
    return float((candidates[best - 1] + candidates[best]) / 2)


def group_split(groups: list, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of validation rows: whole groups, about `fraction` of the groups."""
    distinct = sorted(set("" if g is None else str(g) for g in groups))
    rng = np.random.default_rng(seed)
    chosen = set(rng.permutation(len(distinct))[: max(1, round(fraction * len(distinct)))].tolist())
    held = {distinct[i] for i in chosen}
    return np.array([("" if g is None else str(g)) in held for g in groups])
