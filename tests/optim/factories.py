"""One factory per optimizer class, for tests that must cover every class."""

from __future__ import annotations

import adamlab.optim as O

FACTORIES = {
    "SGD": lambda ps, **kw: O.SGD(ps, lr=kw.pop("lr", 0.05), momentum=0.9, **kw),
    "SGD-nesterov": lambda ps, **kw: O.SGD(ps, lr=kw.pop("lr", 0.05), momentum=0.9, nesterov=True, **kw),
    "Adagrad": lambda ps, **kw: O.Adagrad(ps, **{"lr": 0.05, **kw}),
    "RMSprop": lambda ps, **kw: O.RMSprop(ps, **{"lr": 0.01, "centered": True, "momentum": 0.5, **kw}),
    "Adam": lambda ps, **kw: O.Adam(ps, **{"lr": 0.01, **kw}),
    "Adam-amsgrad-adamw": lambda ps, **kw: O.Adam(
        ps, **{"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "decoupled_weight_decay": True, **kw}
    ),
    "Adamax": lambda ps, **kw: O.Adamax(ps, **{"lr": 0.01, **kw}),
    "SSD": lambda ps, **kw: O.SSD(ps, **{"lr": 0.01, **kw}),
    "MSSD": lambda ps, **kw: O.MSSD(ps, **{"lr": 0.01, **kw}),
    "SVAG": lambda ps, **kw: O.SVAG(ps, **{"lr": 0.05, **kw}),
    "MSVAG": lambda ps, **kw: O.MSVAG(ps, **{"lr": 0.05, **kw}),
    "MSSDVA": lambda ps, **kw: O.MSSDVA(ps, **{"lr": 0.01, **kw}),
    "Dissected-ssdva": lambda ps, **kw: O.Dissected(
        ps, **{"lr": 0.01, "direction": "sign", "variance_adaptation": True, "use_momentum": False, **kw}
    ),
    "TemporalAveraging": lambda ps, **kw: O.TemporalAveraging(O.Adam(ps, **{"lr": 0.01, **kw}), beta=0.9),
}
