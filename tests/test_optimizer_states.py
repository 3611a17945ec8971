"""Optimizer states in the estimate against bitsandbytes' own state tensors, measured on CPU."""
from __future__ import annotations

import pytest

from ftkit.estimator.devices import OPTIMIZER_STATES


def _state_bytes(name: str, numel: int) -> float:
    """Bytes per parameter element of the distinct state tensors bitsandbytes keeps after one step."""
    torch = pytest.importorskip("torch")
    bnb = pytest.importorskip("bitsandbytes")
    p = torch.nn.Parameter(torch.randn(numel // 1024, 1024))
    opt = getattr(bnb.optim, name)([p], lr=1e-3)
    p.sum().backward()
    opt.step()
    seen = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes()
            for k, v in opt.state[p].items() if torch.is_tensor(v) and not k.startswith("qmap")}  # maps: shared
    return sum(seen.values()) / p.numel()


@pytest.mark.parametrize("optim,bnb_name", [("adamw_bnb_8bit", "AdamW8bit"), ("paged_adamw_8bit", "PagedAdamW8bit"),
                                            ("paged_adamw_32bit", "PagedAdamW32bit")])
def test_bitsandbytes_state_bytes_per_parameter(optim, bnb_name):
    states, per_state = OPTIMIZER_STATES[optim]
    assert states * per_state == pytest.approx(_state_bytes(bnb_name, 1 << 20), rel=0.01)


def test_optimizer_choices_move_the_estimate():
    from ftkit.config import RunConfig
    from ftkit.estimator import estimate

    def run(optim):
        return estimate(RunConfig.preset("phi3-mini-qlora").update({
            "method.name": "lora", "quantization.bits": None, "training.optimizer": optim}))

    plain, eight, paged8, paged32 = (run(o) for o in ("adamw_torch", "adamw_bnb_8bit", "paged_adamw_8bit",
                                                       "paged_adamw_32bit"))
    fp32_states = plain.breakdown["optimizer states"]
    assert eight.breakdown["optimizer states"] == pytest.approx(fp32_states * (1 + 4 / 256) / 4, rel=1e-6)
    assert paged32.breakdown["optimizer states"] == 0
    assert paged32.unified_breakdown["optimizer states (paged)"] == pytest.approx(fp32_states)
    assert paged8.unified_breakdown["optimizer states (paged)"] == pytest.approx(eight.breakdown["optimizer states"])
    assert paged32.peak_bytes < plain.peak_bytes
