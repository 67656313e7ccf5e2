"""``TemporalAveraging``: a bias-corrected EMA of the parameters around any optimizer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from adamlab import functional as F
from adamlab.optim.validation import check_unit_interval


class TemporalAveraging(Optimizer):
    r"""Wrap ``optimizer`` and keep the temporal average of Kingma & Ba (2015), sec. 7.2.

    After each inner step:

    .. math::
        \bar\theta_t = \beta \bar\theta_{t-1} + (1-\beta)\theta_t, \qquad
        \hat\theta_t = \bar\theta_t / (1 - \beta^t)

    ``with averaging.averaged(): evaluate(model)`` swaps :math:`\hat\theta` into the parameters and
    restores the live weights afterwards, also on an exception. ``param_groups`` are the inner
    optimizer's (LR schedulers work on either), and ``state_dict()`` holds both the inner state and
    the averages. The average costs one extra buffer per parameter.
    """

    def __init__(self, optimizer: Optimizer, beta: float = 0.999) -> None:
        check_unit_interval("beta", beta)
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        super().__init__(params, {})
        self.optimizer = optimizer
        self.beta = beta
        self.param_groups = optimizer.param_groups
        self.defaults = optimizer.defaults

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.optimizer.step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["average"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                state["average"].copy_(F.temporal_average(state["average"], p, beta=self.beta))
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "optimizer"):
            self.optimizer.add_param_group(param_group)
        else:  # during Optimizer.__init__
            super().add_param_group(param_group)

    def averages(self) -> dict[Tensor, Tensor]:
        """The bias-corrected averages :math:`\\hat\\theta_t`, keyed by parameter (params never stepped are left out)."""
        out = {}
        for p, state in self.state.items():
            if state:
                out[p] = F.debiased_average(state["average"], F.bias_correction(self.beta, state["step"]))
        return out

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """Context manager: parameters hold their averages inside, their live values again after."""
        live = {}
        with torch.no_grad():
            for p, avg in self.averages().items():
                live[p] = p.detach().clone()
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in live.items():
                    p.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "averaging": super().state_dict(), "beta": self.beta}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["optimizer"])
        super().load_state_dict(state_dict["averaging"])
        self.param_groups = self.optimizer.param_groups  # keep sharing the inner optimizer's groups
        self.beta = state_dict["beta"]
