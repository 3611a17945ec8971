"""``Module`` and ``Shapes``: a model's parameter-holding modules, described without torch."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

from .parts import SAVED_HEADS, is_head
from .peft_targets import default_targets

@dataclass(frozen=True)
class Module:
    """One module that holds parameters, named as ``model.named_modules()`` names it."""

    name: str
    kind: str  # "linear", "embedding", "norm" or "other"
    cls: str  # class name as transformers builds it ("Linear", "LlamaRMSNorm", "LayerNorm", ...)
    d_in: int  # linear: in_features; embedding: num_embeddings; norm/other: size
    d_out: int  # linear: out_features; embedding: embedding_dim; norm/other: size
    bias: bool = False
    tied: bool = False  # weight shared with the input embedding: no parameter of its own
    numel_override: Optional[int] = None  # "other" modules: their parameter count

    @property
    def suffix(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def weight_numel(self) -> int:
        if self.numel_override is not None:
            return self.numel_override
        if self.kind == "norm":
            return self.d_out
        return self.d_in * self.d_out

    @property
    def numel(self) -> int:
        return (0 if self.tied else self.weight_numel) + (self.d_out if self.bias else 0)

    def parameters(self) -> list[tuple[str, int]]:
        out = [] if self.tied else [(f"{self.name}.weight", self.weight_numel)]
        if self.bias:
            out.append((f"{self.name}.bias", self.d_out))
        return out


@dataclass
class Shapes:
    """Every parameter-holding module of one model with one task head, plus its size facts."""

    model_type: str
    model_kind: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    modules: list[Module]
    num_labels: int = 0
    tied: bool = False
    max_positions: int = 0
    decoder_layers: int = 0  # encoder-decoder models: layers of the decoder (``layers`` is the encoder's)
    blocks: str = ""  # name of the stack of transformer blocks (the longest ModuleList)
    num_blocks: int = 0
    special_ids: tuple[int, ...] = ()
    config: dict = field(default_factory=dict, repr=False)

    # ---- views ----------------------------------------------------------------------------------------
    @property
    def linears(self) -> list[Module]:
        return [m for m in self.modules if m.kind == "linear"]

    @property
    def norms(self) -> list[Module]:
        return [m for m in self.modules if m.kind == "norm"]

    @property
    def embeddings(self) -> list[Module]:
        return [m for m in self.modules if m.kind == "embedding"]

    @property
    def is_encoder_decoder(self) -> bool:
        return self.decoder_layers > 0

    @property
    def total_layers(self) -> int:
        return self.layers + self.decoder_layers

    def parameters(self) -> list[tuple[str, int]]:
        """(name, numel) of every parameter, tied weights counted once, as ``named_parameters()`` gives them."""
        return [p for m in self.modules for p in m.parameters()]

    @property
    def total(self) -> int:
        return sum(m.numel for m in self.modules)

    def module(self, name: str) -> Optional[Module]:
        return next((m for m in self.modules if m.name == name), None)

    @property
    def output_head(self) -> Optional[str]:
        """Name of the module peft's ``all-linear`` leaves out: the LM head, or the seq-cls head."""
        if self.model_kind in ("causal_lm", "seq2seq"):
            return "lm_head"
        if self.model_kind == "seq_cls":
            return next((h for h in ("score", "classifier") if self.module(h)), None)
        return None

    def head_modules(self) -> list[Module]:
        """The task head modules peft trains in full for this model kind (modules_to_save)."""
        names = SAVED_HEADS.get(self.model_kind, ())
        return [m for m in self.modules if m.name in names]

    def head_params(self) -> int:
        return sum(m.numel for m in self.head_modules())

    # ---- peft's target matching -------------------------------------------------------------------------
    def resolve(self, targets: Union[None, str, Iterable[str]], mapping: Optional[str] = "LORA") -> Any:
        """What ftkit hands peft as ``target_modules``: the user's, peft's default, else "all-linear"."""
        if targets:
            return targets
        if mapping is None:
            return None
        return default_targets(mapping, self.model_type) or "all-linear"

    def all_linear_names(self) -> set[str]:
        """The suffixes peft's ``all-linear`` expands to: every linear layer's last name but the output head."""
        names = {m.suffix for m in self.linears}
        head = self.output_head
        if head:
            names.discard(head)
        return names

    def matches(self, name: str, targets: Union[str, Iterable[str]]) -> bool:
        """peft's ``check_target_module_exists`` for a module name."""
        if isinstance(targets, str):
            if targets == "all-linear":
                targets = self.all_linear_names()
            else:
                return re.fullmatch(targets, name) is not None
        return any(name == t or name.endswith("." + t) for t in targets)

    def targeted(self, targets: Union[str, Iterable[str]], kinds: tuple[str, ...] = ("linear",),
                 skip_heads: bool = True) -> list[Module]:
        """Modules of ``kinds`` that ``targets`` selects, in model order. Heads peft saves in full are skipped."""
        saved = set(SAVED_HEADS.get(self.model_kind, ())) if skip_heads else set()
        return [m for m in self.modules
                if m.kind in kinds and m.name.split(".")[0] not in saved and self.matches(m.name, targets)]

    def linear_gcd(self) -> int:
        """gcd of all linear widths outside the task heads (what VB-LoRA and C3A default sizes divide)."""
        from math import gcd

        found = 0
        for m in self.linears:
            if not is_head(m.name):
                found = gcd(found, gcd(m.d_in, m.d_out))
        return found or 1

    def linear_pattern_names(self) -> list[str]:
        """Full names of every linear layer outside the task heads."""
        return [m.name for m in self.linears if not is_head(m.name)]


# ---- reading config.json -----------------------------------------------------------------------------
