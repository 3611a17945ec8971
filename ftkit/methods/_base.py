"""What a fine-tuning method is: a name, typed options, what it trades, and how to apply it.

Nothing here imports torch or peft: ``apply`` functions import them when
they run, so the config, the form and the advisor stay light.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Literal, Optional, Union

from ..compiler_env import compiler_env_kept
from ..schema import Options, field
from ..shapes.parts import HEAD_NAMES  # noqa: F401  (classic head names, trained alongside adapters)

#: The model heads ftkit trains. Each maps to one peft ``TaskType``.
MODEL_KINDS = ("causal_lm", "seq2seq", "seq_cls", "token_cls", "qa")
PEFT_TASK_TYPE = {
    "causal_lm": "CAUSAL_LM",
    "seq2seq": "SEQ_2_SEQ_LM",
    "seq_cls": "SEQ_CLS",
    "token_cls": "TOKEN_CLS",
    "qa": "QUESTION_ANS",
}
#: Training values that depend on the method, by kind; a spec's own ``defaults`` override them.
#: They apply wherever the user (or a preset) has not set the field: form, CLI and API alike.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"training.learning_rate": 2e-5},
    "adapter": {"training.learning_rate": 2e-4},
    "prompt": {"training.learning_rate": 1e-2},
}


@dataclass
class BuildContext:
    """What a method may need to know about the model it is applied to."""

    model_kind: str
    model_type: str  # transformers' config.model_type, e.g. "llama", "bert"
    quantized: bool = False
    total_steps: int = 0
    gradient_checkpointing: bool = False
    tokenizer: Any = None
    #: set by methods that need a hook at every optimizer step (AdaLoRA)
    on_step: Optional[Callable[[Any, int], None]] = None
    #: training.adapter_dtype: "float32" (peft upcasts adapters on a 16-bit base) or "base" (keep its dtype)
    adapter_dtype: str = "float32"


@dataclass(frozen=True)
class Trades:
    """What a method trades, in the advisor's words. Levels: lowest < low < medium < high."""

    memory: str  # memory for weights + gradients + optimizer, relative to full fine-tuning
    params: str  # trainable share
    speed: str  # step time relative to full fine-tuning
    note: str = ""  # one line on quality or caveats


@dataclass(frozen=True)
class MethodSpec:
    name: str
    title: str
    family: str
    summary: str
    options: type[Options]
    apply: Callable[[Any, Any, BuildContext], Any]
    trades: Trades
    kind: Literal["full", "adapter", "prompt"] = "adapter"
    model_kinds: frozenset[str] = frozenset(MODEL_KINDS)
    mergeable: bool = True
    quantized_base: bool = True  # can train on a 4/8-bit base
    implies_bits: Optional[int] = None  # QLoRA: quantize the base to this many bits unless set
    zero3: bool = True  # works with DeepSpeed ZeRO-3 parameter partitioning
    barely_learns: bool = False  # loss hardly moves in a few steps; tests check parameters instead
    needs_cuda: bool = False  # peft's implementation only runs on a CUDA (or XPU) device
    peft_type: Optional[str] = None
    why_not: dict[str, str] = dc_field(default_factory=dict)  # model kind -> reason it is refused
    #: trainable parameters on a model described from its config (``ftkit.shapes.Shapes``), counted as peft
    #: counts them: ``params(shapes, options, ctx) -> int``; None when it cannot be known before training
    params: Optional[Callable[[Any, Any, BuildContext], int]] = None
    #: what the method keeps for backward beyond its parameters (``ftkit.methods._memory.MemoryModel``);
    #: None: LoRA's kind (its adapted layers' inputs, a rank-r intermediate, dropout masks when on)
    memory: Optional[Any] = None
    #: step time relative to what its FLOPs say (DoRA renormalises each adapted weight every step)
    slowdown: float = 1.0
    #: config paths -> the value this method usually trains with (e.g. its learning rate), over KIND_DEFAULTS
    defaults: dict[str, Any] = dc_field(default_factory=dict)

    @property
    def training_defaults(self) -> dict[str, Any]:
        """Every config value this method sets when the user has not: its kind's, then its own."""
        return {**KIND_DEFAULTS.get(self.kind, {}), **self.defaults}

    def refuses(self, model_kind: str) -> Optional[str]:
        """The reason this method cannot train ``model_kind``, or None."""
        if model_kind in self.model_kinds:
            return None
        return self.why_not.get(model_kind) or (
            f"{self.title} does not support {model_kind} models in peft; "
            f"it supports {', '.join(sorted(self.model_kinds))}"
        )


# ---- shared option fields -------------------------------------------------

Targets = Optional[Union[list[str], str]]


def targets_field(what: str = "adapters") -> Any:
    return field(
        None,
        f"Module names (or a regex, or 'all-linear') that get {what}. Empty: peft's default for the "
        "architecture, else all linear layers.",
    )


class AdapterOptions(Options):
    """Options every adapter method shares."""

    target_modules: Targets = targets_field()
    modules_to_save: Optional[list[str]] = field(
        None, "Extra modules trained in full and saved with the adapter (e.g. an embedding).", advanced=True
    )


# ---- helpers used by apply functions --------------------------------------


def resolve_targets(targets: Targets, ctx: BuildContext, mapping_name: str) -> Any:
    """peft's per-architecture default when it knows the model, else all linear layers."""
    if targets:
        return targets
    from peft.utils import constants

    mapping = getattr(constants, mapping_name, {})
    return mapping.get(ctx.model_type) or "all-linear"


def peft_apply(
    config_class: str,
    *,
    targets_mapping: Optional[str] = "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING",
    fixed: Optional[dict] = None,
    extra: Optional[Callable[[Any, Any, BuildContext], dict]] = None,
    own: tuple[str, ...] = (),
) -> Callable[[Any, Any, BuildContext], Any]:
    """An ``apply`` that builds ``peft.<config_class>`` from the options and wraps the model.

    ``fixed`` holds values the method pins (``use_dora=True`` for DoRA); ``extra``
    computes values from the options, model or run (``total_step`` for AdaLoRA);
    ``own`` names options that ``extra`` consumes instead of peft.
    """

    def apply(model: Any, options: Any, ctx: BuildContext) -> Any:
        import peft

        kwargs = options.model_dump(exclude_none=True, exclude=set(own))
        if targets_mapping is not None and "target_modules" in type(options).model_fields:
            kwargs["target_modules"] = resolve_targets(options.target_modules, ctx, targets_mapping)
        kwargs.update(fixed or {})
        if extra is not None:
            kwargs.update(extra(options, model, ctx))
        config = getattr(peft, config_class)(task_type=PEFT_TASK_TYPE[ctx.model_kind], **kwargs)
        if ctx.quantized:
            model = peft.prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=ctx.gradient_checkpointing
            )
        with warnings.catch_warnings(), compiler_env_kept():
            # peft reads transformers' deprecated alias; the user cannot act on it
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return peft.get_peft_model(model, config, autocast_adapter_dtype=ctx.adapter_dtype == "float32")

    return apply
