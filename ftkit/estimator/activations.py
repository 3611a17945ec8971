"""Activation memory: the tensors autograd keeps for backward, walked layer by layer from what trains.

For each transformer block the walk follows the residual stream and whether it needs a gradient yet
(nothing before the first trainable weight does: a frozen embedding feeding frozen layers keeps nothing).
It counts, per token:

* a norm: its input in fp32 (RMSNorm upcasts; LayerNorm keeps its input and two statistics) when the
  input needs a gradient; its normalised output when its own weight trains;
* a linear layer: its input only when its weight trains (autograd needs the input for the weight's
  gradient and nothing for a frozen weight); what an adapter on it keeps comes from the method's spec
  (``MethodSpec.memory.per_adapter``): an input shared by q, k and v is counted once;
* attention: q, k, v and the output when any of them needs a gradient (SDPA/flash also a log-sum-exp
  per head and token, eager attention the a x s scores and, with attention dropout, their mask). The
  output is also o_proj's input: the same storage, counted once;
* the MLP: the activation's input, and with gating its output and the up branch;
* dropout masks where dropout is on; the loss keeps the fp32 log-softmax of the logits.

Checked against the tensors autograd saves on CPU (``saved_tensors_hooks``) for every registered method
on a tiny Llama and on MiniLM (``tests/test_activations.py``). Architectures the walk does not describe
(T5, phi3small) use the per-layer formula of Korthikanti et al. (2022) with this model's widths.
"""
from __future__ import annotations

from typing import Any, Optional

from .. import shapes as S
from ..methods._memory import ActivationContext, MemoryModel, Saved

_ATTN_IN = ("q_proj", "k_proj", "v_proj", "qkv_proj", "query", "key", "value")
_MLP_IN = ("gate_proj", "up_proj", "gate_up_proj", "fc1", "wi", "wi_0", "wi_1")
_GATED = ("llama", "mistral", "qwen2", "phi3", "gemma", "gemma2")
WALKED = _GATED + ("bert",)


def _role(m: S.Module) -> Optional[str]:
    name = m.name
    if m.kind == "norm":
        if "post_attention_layernorm" in name or name.endswith("attention.output.LayerNorm"):
            return "norm2"
        if "pre_feedforward_layernorm" in name:
            return "norm2b"
        if "post_feedforward_layernorm" in name:
            return "norm3"
        if name.endswith("output.LayerNorm"):
            return "norm_out"
        return "norm1"
    if m.kind != "linear":
        return None
    if m.suffix in _ATTN_IN:
        return "attn_in"
    if m.suffix == "o_proj" or name.endswith("attention.output.dense"):
        return "attn_out"
    if m.suffix in _MLP_IN or name.endswith("intermediate.dense"):
        return "mlp_in"
    if m.suffix in ("down_proj", "fc2") or name.endswith("output.dense"):
        return "mlp_out"
    return None


class Walk:
    """The bytes per token one micro-batch keeps, accumulated while walking the model."""

    def __init__(self, shapes: S.Shapes, memory: MemoryModel, options: Any, ctx: ActivationContext,
                 trained: set, adapted: dict, seq: int, fused: bool):
        self.s, self.mem, self.options, self.ctx = shapes, memory, options, ctx
        self.trained, self.adapted, self.seq, self.fused = trained, adapted, seq, fused
        cfg = shapes.config
        self.attn_drop = float(cfg.get("attention_dropout", cfg.get("attention_probs_dropout_prob", 0.0)) or 0.0)
        self.hid_drop = float(cfg.get("hidden_dropout_prob", cfg.get("resid_pdrop", 0.0)) or 0.0)
        self.rms = shapes.model_type != "bert"
        self.attn_bytes = ctx.act_bytes
        if self.attn_drop > 0 and ctx.mask_bytes != 1 and fused:
            # CPU: SDPA with dropout runs its math path (eager's saves), which upcasts 16-bit inputs to fp32
            self.fused, self.attn_bytes = False, 4
        self.weight_bytes = 0.0  # bytes adapters keep that scale with weights (not per token)

    def norm(self, m: Optional[S.Module], grad: bool) -> tuple[float, bool]:
        if m is None:
            return 0.0, grad
        trains, a, h = m.name in self.trained, self.ctx.act_bytes, m.d_out
        if self.rms:
            kept = (4 * h + 4 if grad else 0.0) + (h * a if trains else 0.0)
        else:
            kept = h * a + 8 if grad or trains else 0.0
        return kept, grad or trains

    def linears(self, mods: list, grad: bool, input_saved: bool = False) -> tuple[float, bool]:
        """Bytes kept by linear layers reading one input, and whether their output needs a gradient."""
        kept, raw, out = 0.0, False, grad
        for m in mods:
            if m.name in self.trained:
                raw, out = True, True
            if m.name in self.adapted:
                saved: Saved = self.mem.per_adapter(m, self.options, self.ctx, input_grad=grad)
                kept += saved.extra
                self.weight_bytes += saved.weights
                raw, out = raw or saved.raw_input, True
        if raw and not input_saved and mods:
            kept += mods[0].d_in * self.ctx.act_bytes
        return kept, out

    def dropout(self, width: int, p: float, grad: bool) -> float:
        return width * self.ctx.mask_bytes if p > 0 and grad else 0.0

    def eager(self, attn_in: list, grad: bool, prefix: int) -> float:
        """Bytes per token eager attention keeps: q for k's gradient, k for q's, v and the softmax's output for
        the scores' gradient, the (dropped) probabilities for v's; the scores span the prefix's keys too."""
        s, a = self.s, self.attn_bytes
        mask_bytes = self.ctx.mask_bytes if self.attn_bytes == self.ctx.act_bytes else self.attn_bytes

        def needs(*suffixes: str) -> bool:
            return grad or any((m.name in self.trained or m.name in self.adapted) and m.suffix in suffixes + ("qkv_proj",)
                               for m in attn_in)

        nq, nk, nv = needs("q_proj", "query"), needs("k_proj", "key") or bool(prefix), needs("v_proj", "value") or bool(prefix)
        q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim * (1 + prefix / self.seq)
        drop, qk = int(self.attn_drop > 0), nq or nk
        kept = (q * a if nk else 0.0) + (kv * a if nq else 0.0) + (kv * a if qk else 0.0)
        probs = (a + mask_bytes * drop if qk else 0.0) + (a if nv and (drop or not qk) else 0.0)
        return kept + s.heads * (self.seq + prefix) * probs

    def block(self, mods: list, grad: bool) -> tuple[float, bool]:
        s, a = self.s, self.ctx.act_bytes
        by = {}
        for m in mods:
            by.setdefault(_role(m), []).append(m)
        one = lambda role: (by.get(role) or [None])[0]  # noqa: E731
        kept = 0.0
        pre_norm = self.rms
        if pre_norm:
            k, g = self.norm(one("norm1"), grad)
            kept += k
        else:
            g = grad
        k, attn_g = self.linears(by.get("attn_in", []), g)
        kept += k
        prefix = self.mem.kv_tokens(self.options) if self.mem.kv_tokens else 0
        attn_g = attn_g or bool(prefix)
        q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
        if attn_g and self.fused:  # SDPA keeps q, k, v, its output (o_proj's input: the same storage), lse
            kept += (2 * q + 2 * kv * (1 + prefix / self.seq)) * a + s.heads * 4
            kept += (self.seq + prefix) * a if prefix else 0.0  # the mask over the prefix's keys (one per sequence)
        elif attn_g:  # eager: what each matmul keeps depends on which of q, k, v needs a gradient
            kept += self.eager(by.get("attn_in", []), grad, prefix)
        k, o_g = self.linears(by.get("attn_out", []), attn_g, input_saved=attn_g and self.fused)
        kept += k
        if not pre_norm:  # BERT: dropout, residual, LayerNorm after each sub-layer
            kept += self.dropout(s.hidden, self.hid_drop, o_g)
            k, g = self.norm(one("norm2"), grad or o_g)
            kept += k
        else:
            g = grad or o_g
            k, g = self.norm(one("norm2b") or one("norm2"), g)
            kept += k
        k, mlp_g = self.linears(by.get("mlp_in", []), g)
        kept += k
        gated = s.model_type in _GATED
        if mlp_g:
            kept += (3 if gated else 1) * s.intermediate * a
        down = by.get("mlp_out", [])
        k, d_g = self.linears(down, mlp_g)
        kept += k
        if not pre_norm:
            kept += self.dropout(s.hidden, self.hid_drop, d_g)
            k, out = self.norm(one("norm_out"), g or d_g)
            return kept + k, out
        return kept, g or d_g

    def blocks(self, first: int, grad: bool) -> list[float]:
        s = self.s
        per = []
        for i in range(s.num_blocks):
            prefix = f"{s.blocks}.{i}."
            kept, grad = self.block([m for m in s.modules if m.name.startswith(prefix)], grad)
            per.append(kept if i >= first else 0.0)
        return per

    def head(self, grad: bool) -> float:
        """The final norm, the head's input when it trains, and the loss's fp32 log-softmax."""
        s = self.s
        final = next((m for m in s.norms if not m.name.startswith(s.blocks + ".") and "embed" not in m.name), None)
        kept, g = self.norm(final, grad)
        heads = [m for m in s.modules if m.kind == "linear" and not m.name.startswith(s.blocks + ".")]
        if s.model_kind in ("causal_lm", "seq2seq"):
            k, _ = self.linears([m for m in heads if m.suffix == "lm_head"], g)
            return kept + k + s.vocab * 4 + 8
        return kept


def embeddings_grad(shapes: S.Shapes, trained: set, checkpointing: bool, prompt: bool) -> bool:
    """Whether the residual stream needs a gradient from the first block on."""
    if checkpointing or prompt:  # enable_input_require_grads; virtual tokens that train
        return True
    # an embedding that trains, or the embeddings' own norm (BERT's embeddings.LayerNorm under LN tuning)
    return any(m.name in trained for m in shapes.embeddings) or any(
        m.name in trained for m in shapes.norms if not m.name.startswith(shapes.blocks + ".") and "embed" in m.name)


def saved_per_token(shapes: S.Shapes, memory: MemoryModel, options: Any, ctx: ActivationContext,
                    trained: set, adapted: dict, seq: int, fused: bool, first: int, prompt: bool,
                    checkpointing: bool = False) -> tuple[list[float], float, float]:
    """(bytes per token kept by each block, by the head and loss, bytes kept per weight) for the walked
    architectures."""
    walk = Walk(shapes, memory, options, ctx, trained, adapted, seq, fused)
    grad = embeddings_grad(shapes, trained, checkpointing, prompt)
    emb = 8.0 if any(m.name in trained for m in shapes.embeddings) else 0.0  # the token ids
    if shapes.model_type == "bert" and grad:  # embeddings' LayerNorm (input and statistics) and dropout
        emb += shapes.hidden * ctx.act_bytes + 8 + walk.dropout(shapes.hidden, walk.hid_drop, True)
    per = walk.blocks(first, grad)
    any_grad = grad or any(per) or bool(adapted) or bool(trained)
    return per, emb + walk.head(any_grad or True), walk.weight_bytes


def korthikanti_layer(shapes: S.Shapes, seq: int, act_bytes: int, fused: bool, cross: bool = False) -> float:
    """Bytes per token of one layer for the architectures the walk does not describe (all linears' inputs)."""
    h, a = shapes.hidden, shapes.heads
    kv, q = shapes.kv_heads * shapes.head_dim, shapes.heads * shapes.head_dim
    gated = shapes.model_type == "phi3small" or (
        shapes.model_type == "t5" and str(shapes.config.get("feed_forward_proj", "")).startswith("gated"))
    n = 1 + int(cross)
    e = n * (h + q + 2 * kv + 2 * q) + h + (3 * shapes.intermediate if gated else shapes.intermediate) + shapes.intermediate
    if not fused:
        e += n * a * seq
    return e * act_bytes + 4 * h * (2 + int(cross))
