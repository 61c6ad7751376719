"""How well a model's own hidden states tell harmful prompts from benign ones: a ceiling for alignment.

A linear probe (L2-regularized logistic regression) reads the model's hidden state at the
last prompt token, under the chat template exactly as generation sees the prompt, one probe
per layer. It is fitted on the train split of the chosen data sets (harmful against benign or
look-alike prompts, the classes weighted equally) and scored on the test split of the
evaluation data sets: per layer, the share of harmful prompts it flags (what a refusal rate
could reach) and of benign prompts it flags (the over-refusal that comes with it), with
Wilson intervals, and their difference with Newcombe's interval. The best layer and the
penalty are chosen on a held-out quarter of the train prompts (by prompt-id hash), never on
the scored prompts; the layer's probe is then refitted on all train prompts. If a linear
readout of the student cannot tell two prompts apart, no LoRA recipe on it is likely to
refuse one and answer the other: the figure says, before training, how far a recipe can go.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from refusaldata import io, keys, prompts
from refusaldata.errors import BackendError, InputError, NotFoundError
from refusaldata.models import cache_dir
from refusaldata.queries import sql_text
from refusaldata.runs import now
from refusaldata.store import Store

# Penalties (on standardized features, per unit of total class weight) tried on the held-out part.
PENALTIES = (0.01, 0.1, 1.0)
SELECTION_BUCKETS = 4  # one in this many train prompts (by prompt-id hash) chooses layer and penalty
BATCH_SIZE = 16
# How the kept hidden states were read (the last prompt token, float32): part of their cache key.
HIDDEN_STATE_READER = "last-prompt-token-float32-v1"
Z = 1.959964


@dataclass(frozen=True)
class Prompts:
    """The probe's prompts: texts, harmful labels, and which fit, select and score."""

    texts: list[str]
    harmful: np.ndarray
    fit: np.ndarray
    select: np.ndarray
    scored: np.ndarray


def parse_layers(spec: str | None, layers: int) -> list[int]:
    """Layer numbers from '4,8,16' or '10-20' (0 is the embeddings, `layers` the last decoder
    layer's output); None: every layer. A number out of range is an InputError."""
    if spec is None or not spec.strip():
        return list(range(layers + 1))
    chosen: set[int] = set()
    for part in spec.split(","):
        bounds = part.strip().split("-")
        try:
            low, high = (int(bounds[0]), int(bounds[-1])) if 0 < len(bounds) <= 2 else (None, None)
        except ValueError:
            low = high = None
        if low is None or low > high:
            raise InputError(f"--layers: '{part.strip()}' is not a layer number or a range such as 10-20")
        for layer in (low, high):
            if not 0 <= layer <= layers:
                raise InputError(f"--layers: layer {layer} is out of range; this model has layers 0-{layers} "
                                 "(0: the embeddings)")
        chosen.update(range(low, high + 1))
    return sorted(chosen)


def load_prompts(store: Store, datasets: list[str], eval_datasets: list[str]) -> Prompts:
    """The fitting and scored prompts of the data sets; an InputError names what a class lacks."""
    stored = set(prompts.list_prompts(store).column("dataset").to_pylist())
    missing = [name for name in dict.fromkeys([*datasets, *eval_datasets]) if name not in stored]
    if missing:
        held = ", ".join(sorted(stored)) or "none"
        raise NotFoundError(f"no data set '{missing[0]}' in the store (it holds: {held})")
    con = store.connect(["prompts"])
    try:
        rows = con.sql(sql_text("separability_prompts"),
                       params={"datasets": datasets, "eval_datasets": eval_datasets}).to_arrow_table().to_pydict()
    finally:
        con.close()
    harmful = np.array(rows["harmful"], dtype=bool)
    scored = np.array(rows["evaluated"], dtype=bool)
    train = np.array(rows["fitted"], dtype=bool) & ~scored
    bucket = np.array([int(pid[8:16], 16) % SELECTION_BUCKETS == 0 for pid in rows["prompt_id"]], dtype=bool)
    select, fit = train & bucket, train & ~bucket
    where = {"fit": (fit, f"the train split of {', '.join(datasets)}"),
             "select": (select, f"the held-out quarter of the train split of {', '.join(datasets)}"),
             "score": (scored, f"the test split of {', '.join(eval_datasets)}")}
    for mask, place in where.values():
        for wanted, kind in ((True, "harmful"), (False, "benign")):
            if not (mask & (harmful == wanted)).any():
                raise InputError(f"no {kind} prompts in {place}: the probe needs harmful and benign prompts "
                                 "(add a data set of the other kind with --dataset)")
    return Prompts(rows["text"], harmful, fit, select, scored)


def hidden_states(model: str, adapter: str | None, texts: list[str], layers: list[int],
                  progress: Callable[[str], None] = lambda line: None) -> np.ndarray:
    """(prompts, layers, hidden) float32: each chosen layer's state at the last prompt token,
    the prompt rendered by the chat template with the generation prompt, as generation runs it.

    Kept under the cache (`<cache>/hidden_states`), keyed by the model folder's fingerprint,
    the adapter's hash, the layers and the rendered prompts in order: a second probe of the
    same prompts and layers reads them instead of running the model (a hub id, which has no
    folder to fingerprint, is never kept)."""
    from refusaldata.generate import Prompt
    from refusaldata.generate.chat import LocalModel

    local = LocalModel.load(model, adapter, None)
    rendered = local.render([Prompt(str(i), text) for i, text in enumerate(texts)])
    path = _cache_path(local, layers, rendered)
    cached = _read_cached(path, (len(texts), len(layers)))
    if cached is not None:
        progress(f"hidden states: {len(texts)} prompts read from {path}")
        return cached
    states = _run_model(local, rendered, layers, progress)
    if path is not None:
        # Keeping them only saves time: a cache that cannot be written costs the next probe, not this one.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with io.atomic_path(path, BackendError) as staging, open(staging, "wb") as sink:
                np.save(sink, states)
        except (OSError, BackendError) as exc:
            progress(f"hidden states not kept: {exc}")
    return states


def _cache_path(local, layers: list[int], rendered: list[str]) -> Path | None:
    """Where the states of these prompts are kept; None for a hub id (no folder fingerprint
    says which weights it resolved to)."""
    if local.fingerprint is None:
        return None
    identity = keys.canonical_json({"model": local.name, "fingerprint": local.fingerprint, "layers": layers,
                                    "adapter_sha256": local.adapter.sha256 if local.adapter else None,
                                    "reader": HIDDEN_STATE_READER})
    return cache_dir() / "hidden_states" / f"{io.sha256_parts([identity, *rendered])[:24]}.npy"


def _read_cached(path: Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The kept states, or None where there are none or the file is not whole (then they are recomputed)."""
    if path is None or not path.is_file():
        return None
    try:
        states = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return states if states.ndim == 3 and states.shape[:2] == shape and states.dtype == np.float32 else None


def _run_model(local, rendered: list[str], layers: list[int], progress: Callable[[str], None]) -> np.ndarray:
    """The forward passes of `hidden_states`, through the decoder only (no LM head). The
    token prefix every prompt shares (the template's system turn) runs once and its key/value
    cache serves every batch: causal attention makes the states after it the same, and it is
    half of a short prompt's tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        causal = AutoModelForCausalLM.from_pretrained(local.path, dtype=torch.float32, use_safetensors=True,
                                                      trust_remote_code=False)
    except OSError as exc:
        raise BackendError(f"cannot load model '{local.name}': {exc}") from None
    if local.adapter is not None:
        from peft import PeftModel

        try:
            causal = PeftModel.from_pretrained(causal, str(local.adapter.path), use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load adapter {local.adapter.path}: {exc}") from None
    causal.eval()
    decoder = causal.get_base_model() if local.adapter is not None else causal
    decoder = getattr(decoder, decoder.base_model_prefix)
    ids = local.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    # The shared prefix stops before the shortest prompt's last token: that token is read.
    shared = min(len(os.path.commonprefix(ids)), min(len(row) for row in ids) - 1)
    tails = [row[shared:] for row in ids]
    order = sorted(range(len(tails)), key=lambda i: len(tails[i]))
    out = np.zeros((len(ids), len(layers), decoder.config.hidden_size), dtype=np.float32)
    pad = local.tokenizer.pad_token_id if local.tokenizer.pad_token_id is not None else 0
    # Layers above the deepest chosen one are never run (the last layer's state is read after the final norm).
    if max(layers) < decoder.config.num_hidden_layers:
        decoder.layers = decoder.layers[:max(layers) + 1]
    with torch.inference_mode():
        prefix = decoder(input_ids=torch.tensor([ids[0][:shared]]), use_cache=True).past_key_values if shared else None
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            width = max(len(tails[i]) for i in rows)
            # Right-padded after the prefix, so every position counts as in generation; the last real token is read.
            input_ids = torch.tensor([tails[i] + [pad] * (width - len(tails[i])) for i in rows])
            mask = torch.tensor([[1] * (shared + len(tails[i])) + [0] * (width - len(tails[i])) for i in rows])
            cache = None
            if prefix is not None:
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(len(rows))
            states = decoder(input_ids=input_ids, attention_mask=mask, past_key_values=cache,
                             use_cache=cache is not None, output_hidden_states=True).hidden_states
            last = torch.tensor([len(tails[i]) - 1 for i in rows])
            picked = torch.stack([states[layer][torch.arange(len(rows)), last] for layer in layers], dim=1)
            out[rows] = picked.float().numpy()
            progress(f"hidden states: {min(start + BATCH_SIZE, len(order))}/{len(order)} prompts")
    return out


def fit_probes(x: np.ndarray, y: np.ndarray, penalties: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]]:
    """One (mean, scale, weights with the intercept last) per penalty: a logistic regression
    fitted by Newton's method on standardized features, the two classes weighted equally;
    `penalty` x the total weight is the L2 strength (the intercept is not penalized).

    The penalty is the same in every direction, so the weights lie in the span of the
    standardized rows: Newton runs in that span's coordinates (the SVD's U·S, at most one per
    prompt against one per hidden unit), every penalty at once, in float64 on torch's threads
    (NumPy's BLAS pool spins on a busy machine; MKL's batched Cholesky does not)."""
    import torch

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = torch.from_numpy(((x - mean) / scale).astype(np.float64))
    u, s, vh = torch.linalg.svd(z, full_matrices=False)
    f = torch.cat([u * s, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    target = torch.from_numpy(y.astype(np.float64))
    positives = float(y.sum())
    weight = torch.where(target > 0, len(y) / (2 * positives), len(y) / (2 * (len(y) - positives)))
    ridge = torch.tensor(penalties, dtype=torch.float64)[:, None] * torch.full((f.shape[1],), float(len(y)),
                                                                                 dtype=torch.float64)
    ridge[:, -1] = 0.0
    diagonal = torch.diag_embed(ridge + 1e-9)
    w = torch.zeros(len(penalties), f.shape[1], dtype=torch.float64)
    for _ in range(50):
        p = torch.sigmoid((w @ f.T).clamp(-30, 30))
        gradient = (weight * (p - target)) @ f + ridge * w
        hessian = (f.T * (weight * p * (1 - p))[:, None, :]) @ f + diagonal
        step = torch.cholesky_solve(gradient[..., None], torch.linalg.cholesky(hessian))[..., 0]
        w -= step
        if step.abs().max() < 1e-6:
            break
    weights = torch.cat([w[:, :-1] @ vh, w[:, -1:]], dim=1).numpy()
    return [(mean, scale, row) for row in weights]


def flags(probe: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The probe's verdicts: True where it calls the prompt harmful."""
    mean, scale, w = probe
    return ((x - mean) / scale) @ w[:-1] + w[-1] > 0


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval of k/n (as sql/mine_macros.sql computes it)."""
    p = k / n
    center = p + Z**2 / (2 * n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    # Rounding can put a bound a hair past p at 0 or 1: the interval always holds its estimate.
    return max(0.0, min(p, (center - half) / (1 + Z**2 / n))), min(1.0, max(p, (center + half) / (1 + Z**2 / n)))


def newcombe(p1: float, interval1: tuple[float, float], p2: float,
             interval2: tuple[float, float]) -> tuple[float, float]:
    """Newcombe's hybrid score 95% interval of p1 − p2 from the two Wilson intervals."""
    (l1, u1), (l2, u2) = interval1, interval2
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _separation(verdicts: np.ndarray, harmful: np.ndarray) -> float:
    return float(verdicts[harmful].mean() - verdicts[~harmful].mean())


def probe_layers(states: np.ndarray, data: Prompts, layers: list[int]) -> list[dict]:
    """One row per layer: the selection figure (probe fitted on the fit part, scored on the
    held-out part, best penalty), and the probe refitted on all train prompts scored on the
    evaluation prompts; `best` marks the layer with the highest selection figure."""
    train = data.fit | data.select
    rows = []
    for index, layer in enumerate(layers):
        x = states[:, index]
        selection, penalty = max(
            (_separation(flags(probe, x[data.select]), data.harmful[data.select]), -c)
            for c, probe in zip(PENALTIES, fit_probes(x[data.fit], data.harmful[data.fit], PENALTIES), strict=True))
        probe = fit_probes(x[train], data.harmful[train], [-penalty])[0]
        verdicts = flags(probe, x[data.scored])
        truth = data.harmful[data.scored]
        n_harmful, n_benign = int(truth.sum()), int((~truth).sum())
        k_harmful, k_benign = int(verdicts[truth].sum()), int(verdicts[~truth].sum())
        harmful_interval, benign_interval = wilson(k_harmful, n_harmful), wilson(k_benign, n_benign)
        harmful_rate, benign_rate = k_harmful / n_harmful, k_benign / n_benign
        low, high = newcombe(harmful_rate, harmful_interval, benign_rate, benign_interval)
        rows.append({
            "layer": layer, "penalty": -penalty, "selection_separation": selection,
            "fit_prompts": int(train.sum()), "harmful_prompts": n_harmful, "benign_prompts": n_benign,
            "harmful_flagged": k_harmful, "benign_flagged": k_benign,
            "harmful_rate": harmful_rate, "harmful_rate_low": harmful_interval[0],
            "harmful_rate_high": harmful_interval[1],
            "benign_rate": benign_rate, "benign_rate_low": benign_interval[0], "benign_rate_high": benign_interval[1],
            "separation": harmful_rate - benign_rate, "separation_low": low, "separation_high": high,
        })
    best = max(range(len(rows)), key=lambda i: (rows[i]["selection_separation"], -rows[i]["layer"]))
    for i, row in enumerate(rows):
        row["best"] = i == best
    return rows


def evaluate(store: Store, model: str, adapter: str | None = None, datasets: list[str] | None = None,
             eval_datasets: list[str] | None = None, layers: str | None = None,
             progress: Callable[[str], None] = lambda line: None) -> pa.Table:
    """Probe every chosen layer of `model` (under `adapter`) and store the rows in the
    separability table (one partition per probe: model, adapter, data sets, layers).
    `datasets`: fit on their train split (default: every data set in the store);
    `eval_datasets`: score on their test split (default: `datasets`). Inputs are checked,
    and a bad one raised, before the model's weights load; nothing is stored on failure."""
    import torch
    from transformers import AutoConfig

    from refusaldata.generate.chat import Adapter, model_label
    from refusaldata.generate.transformers_backend import torch_threads
    from refusaldata.models import resolve_model

    if not datasets:
        datasets = sorted(set(prompts.list_prompts(store).column("dataset").to_pylist()))
        if not datasets:
            raise InputError("the store holds no prompts: import harmful and benign prompt sets first")
    datasets = list(dict.fromkeys(datasets))
    eval_datasets = list(dict.fromkeys(eval_datasets or datasets))
    data = load_prompts(store, datasets, eval_datasets)
    path = resolve_model(model)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except OSError as exc:
        raise BackendError(f"cannot load the config of model '{model}': {exc}") from None
    chosen = parse_layers(layers, config.num_hidden_layers)
    adapter_sha = Adapter.load(adapter).sha256 if adapter else None
    # The forward passes and the probes' solver alike: two threads on a busy 2-core machine wait on each other.
    torch.set_num_threads(torch_threads())
    states = hidden_states(model, adapter, data.texts, chosen, progress)
    rows = probe_layers(states, data, chosen)
    label = model_label(model, Path(path) if Path(path).is_dir() else None)
    probe_id = keys.digest(keys.canonical_json({
        "model": label, "adapter_sha256": adapter_sha, "datasets": datasets, "eval_datasets": eval_datasets,
        "layers": chosen}))
    created = now()
    table = pa.Table.from_pylist([{"probe_id": probe_id, "model": label, "adapter": adapter,
                                   "datasets": ",".join(datasets), "eval_datasets": ",".join(eval_datasets),
                                   **row, "created_at": created} for row in rows])
    store.replace("separability", table, where=f"separability of {model}")
    return table


def best_row(store: Store, model: str | None = None) -> dict | None:
    """The best layer of the latest probe of `model` without an adapter (any model where None),
    or None where the store has none (stores made before the table existed included)."""
    con = store.connect(["separability"])
    try:
        rows = con.sql(sql_text("separability_best"), params={"model": model}).to_arrow_table().to_pylist()
    finally:
        con.close()
    return rows[0] if rows else None
