"""`refusaldata train`: LoRA adapters from SFT sets (supervised) and pairs sets (DPO, NCA, ...).

The names load lazily: importing a torch-free submodule (loss_names, which the CLI reads
at start-up) must not import torch through this package.
"""

__all__ = ["LOSSES", "TrainResult", "result_row", "train_adapter"]


def __getattr__(name: str):
    if name in __all__:
        from refusaldata.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'refusaldata.train' has no attribute '{name}'")
