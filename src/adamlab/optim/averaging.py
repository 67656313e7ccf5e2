"""``TemporalAveraging``: a bias-corrected EMA of the parameters around any optimizer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.optimizer import _get_scalar_dtype

from adamlab import functional as F
from adamlab.optim.validation import check_unit_interval

#: The averaging's keys in a param's entry of ``state_dict()["state"]`` (next to the inner optimizer's).
AVERAGE, AVERAGE_STEP = "temporal_average", "temporal_average_step"
#: The averaging's key in each entry of ``state_dict()["param_groups"]``.
BETA = "temporal_average_beta"


class TemporalAveraging(Optimizer):
    r"""Wrap ``optimizer`` and keep the temporal average of Kingma & Ba (2015), sec. 7.2.

    After each inner step, for every parameter that had a gradient (so was stepped):

    .. math::
        \bar\theta_t = \beta \bar\theta_{t-1} + (1-\beta)\theta_t, \qquad
        \hat\theta_t = \bar\theta_t / (1 - \beta^t)

    with :math:`t` that parameter's number of averaged steps. ``with averaging.averaged():
    evaluate(model)`` swaps :math:`\hat\theta` into the parameters and restores the live weights
    afterwards, also on an exception. The average costs one extra buffer per parameter.

    It is a ``torch.optim.Optimizer`` in full:

    - ``param_groups`` and ``defaults`` are the inner optimizer's (shared, so LR and momentum
      schedulers, ``add_param_group`` and ``zero_grad`` act on the inner optimizer);
    - ``state`` holds the averages (:data:`AVERAGE`, :data:`AVERAGE_STEP` per parameter);
    - ``state_dict()`` is ``{"state", "param_groups"}`` like any optimizer's: the inner optimizer's,
      with the averages added to each parameter's entry and ``beta`` to each group (:data:`BETA`).
      ``load_state_dict`` takes it back (and the older ``{"optimizer", "averaging", "beta"}`` layout);
      both run this object's state-dict hooks, and the inner optimizer's;
    - ``step()`` runs this object's step hooks and the global ones once, and the inner optimizer's
      own per-instance hooks once (the global hooks are not run a second time for the inner step);
    - ``copy.deepcopy`` and pickling keep ``optimizer`` and ``beta``.
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

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "optimizer": self.optimizer, "beta": self.beta}

    def __repr__(self) -> str:
        inner = "\n".join("    " + line for line in repr(self.optimizer).splitlines())
        return f"{type(self).__name__}(beta={self.beta},\n{inner}\n)"

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step (with the inner optimizer's own hooks), then the averages of the stepped params."""
        loss = _step_with_own_hooks(self.optimizer, closure)
        with torch.no_grad():
            for group in self.param_groups:
                self._init_group(group)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    state[AVERAGE_STEP] += 1
                    state[AVERAGE].copy_(F.temporal_average(state[AVERAGE], p, beta=self.beta))
        return loss

    def _init_group(self, group: dict[str, Any]) -> None:
        """Create the averages of the group's params with a grad (``torch.compile`` runs this eagerly)."""
        for p in group["params"]:
            if p.grad is not None and not self.state[p]:
                self.state[p][AVERAGE_STEP] = torch.zeros((), dtype=_get_scalar_dtype())
                self.state[p][AVERAGE] = torch.zeros_like(p, memory_format=torch.preserve_format)

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
            if isinstance(p, Tensor) and state:
                step = int(state[AVERAGE_STEP])
                out[p] = F.debiased_average(state[AVERAGE], F.bias_correction(self.beta, step))
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

    # -- state dicts: the Optimizer layout, with this object's hooks -------------------------------
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch._disable_dynamo
    def state_dict(self) -> dict[str, Any]:
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        inner = self.optimizer.state_dict()
        index: dict[int, int] = {}
        for p in self._params():
            index.setdefault(id(p), len(index))
        state = {key: dict(value) for key, value in inner["state"].items()}
        for p, value in self.state.items():
            if not isinstance(p, Tensor):  # an entry a hook put there: kept under its own key, as torch does
                state[p] = value
            elif value:
                state.setdefault(index[id(p)], {}).update(value)
        groups = [{**group, BETA: self.beta} for group in inner["param_groups"]]
        state_dict: dict[str, Any] = {"state": state, "param_groups": groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    @torch._disable_dynamo
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        if "optimizer" in state_dict and "averaging" in state_dict:
            state_dict = _from_old_layout(state_dict)
        ours: dict[Any, dict[str, Any]] = {}
        inner_state: dict[Any, dict[str, Any]] = {}
        extra: dict[Any, Any] = {}  # entries not keyed by a parameter index (a hook's): kept as they are
        for key, value in state_dict["state"].items():
            if not isinstance(key, int) or not isinstance(value, dict):
                extra[key] = value
                continue
            mine = {k: v for k, v in value.items() if k in (AVERAGE, AVERAGE_STEP)}
            rest = {k: v for k, v in value.items() if k not in mine}
            if mine:
                ours[key] = mine
            if rest:
                inner_state[key] = rest
        groups = [{k: v for k, v in group.items() if k != BETA} for group in state_dict["param_groups"]]
        betas = [group[BETA] for group in state_dict["param_groups"] if BETA in group]
        self.optimizer.load_state_dict({"state": inner_state, "param_groups": groups})
        self.param_groups = self.optimizer.param_groups  # keep sharing the inner optimizer's groups
        params = self._params()
        self.state = defaultdict(dict)
        self.state.update(extra)
        for key, value in ours.items():
            p = params[int(key)]
            step = value[AVERAGE_STEP]
            self.state[p] = {
                AVERAGE_STEP: torch.tensor(float(step), dtype=_get_scalar_dtype()),
                AVERAGE: value[AVERAGE].to(dtype=p.dtype, device=p.device),
            }
        if betas:
            check_unit_interval("beta", betas[0])
            self.beta = betas[0]
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)


def _step_with_own_hooks(optimizer: Optimizer, closure: Callable[[], Any] | None) -> Any:
    """``optimizer.step(closure)`` with its per-instance step hooks but not the global ones.

    The wrapper's own step already ran the global hooks; running them again for the inner step
    would fire every global hook twice per training step.
    """
    step = type(optimizer).step
    raw = getattr(step, "__wrapped__", None)
    if raw is None or not getattr(step, "hooked", False):
        return optimizer.step(closure)
    args: tuple[Any, ...] = (optimizer, closure)
    kwargs: dict[str, Any] = {}
    for pre_hook in optimizer._optimizer_step_pre_hooks.values():
        result = pre_hook(optimizer, args, kwargs)
        if result is not None:
            args, kwargs = result
    out = raw(*args, **kwargs)
    optimizer._optimizer_step_code()
    for post_hook in optimizer._optimizer_step_post_hooks.values():
        post_hook(optimizer, args, kwargs)
    return out


def _from_old_layout(state_dict: dict[str, Any]) -> dict[str, Any]:
    """``{"optimizer", "averaging", "beta"}`` (before the Optimizer layout) -> ``{"state", "param_groups"}``."""
    inner = state_dict["optimizer"]
    state = {key: dict(value) for key, value in inner["state"].items()}
    for key, value in state_dict["averaging"]["state"].items():
        if value:
            state.setdefault(key, {}).update({AVERAGE: value["average"], AVERAGE_STEP: value["step"]})
    groups = [{**group, BETA: state_dict["beta"]} for group in inner["param_groups"]]
    return {"state": state, "param_groups": groups}
