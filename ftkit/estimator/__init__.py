"""Memory, parameter and time estimates for a run, from the model's ``config.json`` alone.

``estimate(config, gpus=N, gpu_memory_gb=M)`` predicts the peak memory of one device (GiB) before any
weight is downloaded, broken down into what takes it, for each phase of a run (loading, training,
generation at evaluation), says which phase peaks, and gives a verdict: fits, tight, or does not fit
with the first setting to change. Its parts:

* ``devices``: the device table and the constants of the model (units, margins, CPU calibration);
* ``states``: model states: base weights by storage type, adapters, gradients, optimizer states, ZeRO;
* ``activations``: what autograd keeps, walked per layer from what trains; ``method_terms``: what
  each method adds (``MethodSpec.memory``);
* ``phases``: loading and generation peaks;
* ``timing``: time per step from FLOPs;
* ``suggest``: what to change when a run does not fit;
* ``result``: the ``Estimate`` and how it reads (table, verdict, dict).

Importing this package, and calling it, imports no torch.
"""
from __future__ import annotations

from .activations import korthikanti_layer, saved_per_token
from .core import WHAT_IF, estimate, predicted_peak_mb
from .method_terms import activation_terms, method_terms, saved_activation_bytes
from .devices import (CPU_RUNTIME_MB, CUDA_CONTEXT_MB, DEVICES, FIT_MARGIN, GB, MB, TIGHT_MARGIN, Device, GiB,
                      MiB, lookup)
from .result import Estimate
from .suggest import suggestions

__all__ = ["estimate", "suggestions", "predicted_peak_mb", "Estimate", "Device", "DEVICES", "GB", "MB", "GiB",
           "MiB", "FIT_MARGIN", "TIGHT_MARGIN", "CUDA_CONTEXT_MB", "CPU_RUNTIME_MB", "lookup", "WHAT_IF",
           "activation_terms", "method_terms", "saved_activation_bytes", "saved_per_token", "korthikanti_layer"]
