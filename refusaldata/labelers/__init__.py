"""Unsafe-content labelling: generative safety judges in their published prompt formats
(formats.py, generative.py) and a learned CPU labeler on MiniLM embeddings (embed.py,
learned.py). Both write the labels table's unsafe / score / categories / raw columns."""

from refusaldata.judge.generative import label_with_judge
from refusaldata.judge.learned import label_with_learned

__all__ = ["label_with_judge", "label_with_learned"]
