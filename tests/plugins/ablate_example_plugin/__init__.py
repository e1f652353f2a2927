"""An ablate plug-in that lives outside the package (as a user's would): one module registering a SwiGLU
projector (LLaMA's gated MLP, vision width -> LM width) and one YAML, ``conf/projector/swiglu.yaml``, in its
own config folder (``CONF_DIR``, added to Hydra's search path).  Load it with ``plugins=[ablate_example_plugin]``
(or an ``ablate.plugins`` entry point); ``projector=swiglu`` then composes, validates, trains and lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.registry import PROJECTORS

CONF_DIR = Path(__file__).resolve().parent / "conf"


def build_swiglu(cfg: Any, in_dim: int, out_dim: int) -> Any:
    """``W_down(silu(W_gate x) * W_up x)`` with ``projector.hidden_mult * out_dim`` hidden units."""
    import torch
    from torch import nn

    class SwiGLU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden = int(cfg.hidden_mult) * out_dim
            self.gate = nn.Linear(in_dim, hidden, bias=False)
            self.up = nn.Linear(in_dim, hidden, bias=False)
            self.down = nn.Linear(hidden, out_dim, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.down(nn.functional.silu(self.gate(x)) * self.up(x))

    return SwiGLU()


PROJECTORS.register("swiglu", f"{__name__}:build_swiglu")
