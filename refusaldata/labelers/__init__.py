"""Every labeler, by name (registry.py says which exist, what each takes and which is the default).

Refusal labelers: `ngram` (ngram.py, the default: a shipped n-gram model over prompt and
response), `hybrid` (hybrid.py: the rules where they are sure, the shipped cue model of
cue_model.py elsewhere) and `rules` (rules.py: the SQL lexicon alone). Unsafe-content
labelers: `unsafe` (unsafe.py, the shipped judge), `judge` (generative.py: Llama Guard 3,
HarmBench or WildGuard in its published prompt format, formats.py). Trained in the store:
`learned:NAME` (learned.py: MiniLM embeddings of embed.py with features.py or
learned_refusal.py, classifier.py, cards.py). ngram_model.py is the n-gram model both
shipped models are.

Stages (refusaldata/label.py, compare, mine, ...) import from here; nothing here imports them.
"""
