"""Training rows: read a set from the store, render it through the chat template, batch it.

A training sequence is the chat-template rendering of (user prompt, assistant reply)
as token ids plus `start`, the index of the reply's first token. Only tokens from
`start` on carry loss: the reply and the assistant's end-of-turn token, never the
system prompt, the user turn or the `assistant` header. The prompt and the reply are
tokenized separately, so the prompt's tokens are exactly those a generator sees after
`apply_chat_template(..., add_generation_prompt=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import torch

from refusaldata.errors import BackendError, InputError, NotFoundError
from refusaldata.io import sha256_text
from refusaldata.queries import sql_text
from refusaldata.store import Store
from refusaldata.train.losses import PAIR_LOSSES

SUPERVISED = "sft"
PAIRED = tuple(PAIR_LOSSES)


@dataclass(frozen=True)
class Sequence:
    """Token ids of prompt + reply; ids[start:] are the reply tokens that carry loss, each with `weight`."""

    ids: list[int]
    start: int
    weight: float = 1.0


@dataclass(frozen=True)
class Encoded:
    """A tokenized set: one tuple of sequences per example (1 for SFT, chosen+rejected for pairs)."""

    examples: list[tuple[Sequence, ...]]
    truncated: int
    dropped: int


def load_rows(store: Store, set_name: str, loss: str) -> tuple[str, pa.Table]:
    """The train-split rows of `set_name` and the table they come from ('sft' or 'pairs').

    A set name present in both tables is read from the one the loss needs.
    """
    table = SUPERVISED if loss == SUPERVISED else "pairs"
    con = store.connect(["sft", "pairs"])
    try:
        counts = {source: (total, train) for source, total, train in
                  con.sql(sql_text("train_set_tables"), params={"set_name": set_name}).fetchall()}
        if not any(total for total, _ in counts.values()):
            known = [row[0] for row in con.sql(sql_text("train_known_sets")).fetchall()]
            hint = (f" (known: {', '.join(known)})" if known
                    else " (the store has no sft or pairs sets; run build-sft or build-pairs)")
            raise NotFoundError(f"no set '{set_name}' in the sft or pairs tables of {store.root}{hint}")
        total, train = counts[table]
        if not total:
            other = "pairs" if table == SUPERVISED else "sft"
            needed = "a pair loss (--loss dpo, nca, ...)" if table == SUPERVISED else "--loss sft"
            raise InputError(f"set '{set_name}' is in the {other} table, which {needed} trains on; "
                             f"--loss {loss} needs a set in the {table} table")
        if not train:
            raise InputError(f"set '{set_name}' in the {table} table has {total} row(s) but none with split 'train'")
        query = "train_sft_rows" if table == SUPERVISED else "train_pair_rows"
        return table, con.sql(sql_text(query), params={"set_name": set_name}).to_arrow_table()
    finally:
        con.close()


def rows_digest(rows: pa.Table) -> str:
    """A content hash of the rows, so a changed set never resumes an old checkpoint."""
    return sha256_text("".join(name + "\x1f".join(map(str, rows.column(name).to_pylist()))
                               for name in rows.column_names))[:16]


def _end_of_turn(tokenizer) -> str:
    token = tokenizer.eos_token
    if not token:
        raise BackendError("the tokenizer has no eos token, so the end of the assistant's turn is unknown")
    return token


def _replies(tokenizer, prompts: list[str], replies: list[str]) -> tuple[list[str], list[str]]:
    """(rendered prompt up to the assistant header, rendered reply through its end-of-turn)."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise BackendError("the model's tokenizer has no chat template")
    users = [[{"role": "user", "content": prompt}] for prompt in prompts]
    heads = tokenizer.apply_chat_template(users, add_generation_prompt=True, tokenize=False)
    fulls = tokenizer.apply_chat_template(
        [user + [{"role": "assistant", "content": reply}] for user, reply in zip(users, replies)],
        tokenize=False)
    end = _end_of_turn(tokenizer)
    tails = []
    for head, full in zip(heads, fulls):
        if not full.startswith(head):
            raise BackendError("the chat template renders a conversation that does not start with its "
                               "generation prompt, so the assistant's reply cannot be masked")
        tail = full[len(head):]
        cut = tail.rfind(end)
        tails.append(tail[: cut + len(end)] if cut >= 0 else tail + end)
    return heads, tails


def encode(tokenizer, rows: pa.Table, table: str, max_length: int, retention_weight: float = 1.0,
           reply_tokens: int | None = None) -> Encoded:
    """Tokenize every row; replies are cut to fit `max_length`, rows with no room are dropped.

    SFT rows of kind 'retention' get `retention_weight`, every other sequence weight 1.
    `reply_tokens`: every reply is cut to its first that many tokens, end of turn dropped where
    cut: the opening decides a refusal, and a step on it costs a fraction of a whole reply.
    """
    prompts = rows.column("prompt").to_pylist()
    kinds = rows.column("kind").to_pylist() if "kind" in rows.column_names else [None] * rows.num_rows
    weights = [retention_weight if kind == "retention" else 1.0 for kind in kinds]
    reply_columns = ["target"] if table == SUPERVISED else ["chosen", "rejected"]
    per_column = []
    for column in reply_columns:
        heads, tails = _replies(tokenizer, prompts, rows.column(column).to_pylist())
        head_ids = tokenizer(heads, add_special_tokens=False)["input_ids"]
        tail_ids = tokenizer(tails, add_special_tokens=False)["input_ids"]
        if reply_tokens is not None:
            tail_ids = [tail[:reply_tokens] for tail in tail_ids]
        per_column.append(list(zip(head_ids, tail_ids)))
    examples, truncated, dropped = [], 0, 0
    for weight, parts in zip(weights, zip(*per_column)):
        sequences = []
        for head, tail in parts:
            room = max_length - len(head)
            if room < 1:
                break
            if len(tail) > room:
                truncated += 1
                tail = tail[:room]
            sequences.append(Sequence(head + tail, len(head), weight))
        if len(sequences) == len(parts):
            examples.append(tuple(sequences))
        else:
            dropped += 1
    if not examples:
        raise InputError(f"no training row fits --max-length {max_length}: every prompt alone is that long")
    return Encoded(examples, truncated, dropped)


@dataclass
class Batch:
    """Right-padded to the batch's longest sequence; loss_mask marks the reply tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, device: torch.device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device))


def collate(sequences: list[Sequence], pad_id: int) -> Batch:
    """Pad to the longest sequence in this batch (dynamic padding, never a fixed length)."""
    length = max(len(sequence.ids) for sequence in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    positions = torch.arange(length)
    lengths = torch.tensor([len(sequence.ids) for sequence in sequences])
    starts = torch.tensor([sequence.start for sequence in sequences])
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence.ids)] = torch.tensor(sequence.ids, dtype=torch.long)
    attention_mask = (positions < lengths[:, None]).long()
    loss_mask = (positions >= starts[:, None]) & (positions < lengths[:, None])
    return Batch(input_ids, attention_mask, loss_mask)
