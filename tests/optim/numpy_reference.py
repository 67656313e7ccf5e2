"""Independent float64 NumPy transcriptions of the papers' equations.

Written from the sources (Kingma & Ba 2015 Alg. 1 and 2; Balles & Hennig 2018 Alg. "Practical
implementation of M-SVAG"; seed 003 for SGD/AdaGrad/RMSProp; torch.optim's documented pseudo-code for
its conventions), NOT from adamlab's code. Each ``*_run`` takes the initial parameter and a list of
gradients, and returns the parameter after every step. Gradients are given, not recomputed, so the
comparison isolates the update rule.
"""

from __future__ import annotations

import numpy as np


def sgd_run(theta, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    # Heavy ball (seed 003): v_t = rho v_{t-1} - eta g_t ; theta_t = theta_{t-1} + v_t, with v_1 = -eta g_1.
    # Nesterov (Sutskever et al. 2013, torch form): theta_t = theta_{t-1} - eta (g_t + rho b_t).
    theta = np.array(theta, dtype=np.float64)
    b = None
    out = []
    for g in grads:
        g = g + weight_decay * theta
        if momentum == 0:
            d = g
        else:
            b = g.copy() if b is None else momentum * b + g
            d = g + momentum * b if nesterov else b
        theta = theta - lr * d
        out.append(theta.copy())
    return out


def adagrad_run(theta, grads, lr, eps=1e-10):
    theta = np.array(theta, dtype=np.float64)
    v = np.zeros_like(theta)
    out = []
    for g in grads:
        v = v + g**2
        theta = theta - lr * g / (eps + np.sqrt(v))
        out.append(theta.copy())
    return out


def rmsprop_run(theta, grads, lr, beta=0.99, eps=1e-8):
    theta = np.array(theta, dtype=np.float64)
    v = np.zeros_like(theta)
    out = []
    for g in grads:
        v = beta * v + (1 - beta) * g**2
        theta = theta - lr * g / (eps + np.sqrt(v))
        out.append(theta.copy())
    return out


def adam_run(theta, grads, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, bias_correction=True,
             eps_inside_sqrt=False, amsgrad=False, weight_decay=0.0, decoupled=False):
    theta = np.array(theta, dtype=np.float64)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    vmax = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        vmax = np.maximum(vmax, v)
        second = vmax if amsgrad else v
        m_hat = m / (1 - beta1**t) if bias_correction else m
        v_hat = second / (1 - beta2**t) if bias_correction else second
        denom = np.sqrt(v_hat + eps) if eps_inside_sqrt else np.sqrt(v_hat) + eps
        theta = theta - lr * m_hat / denom
        out.append(theta.copy())
    return out


def adamax_run(theta, grads, lr=2e-3, beta1=0.9, beta2=0.999):
    # Kingma & Ba, Algorithm 2 (no epsilon).
    theta = np.array(theta, dtype=np.float64)
    m = np.zeros_like(theta)
    u = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        u = np.maximum(beta2 * u, np.abs(g))
        theta = theta - (lr / (1 - beta1**t)) * m / u
        out.append(theta.copy())
    return out


def msvag_family_run(theta, grads, lr, beta=0.9, sign=False, variance_adaptation=True, momentum=True):
    """Balles & Hennig's practical algorithm (0-based loop index t as in the paper), rho capped at 0.999 (the reference code).

    sign=False, va=True, momentum=True  -> M-SVAG   theta -= lr * gamma * m,  gamma = m^2/(m^2 + rho s)
    sign=True,  va=True, momentum=True  -> M-SSD-VA theta -= lr * sign(m) * sqrt(gamma)
    sign=False, va=True, momentum=False -> SVAG     theta -= lr * g * m^2/(m^2 + s)
    sign=True,  va=False, momentum=True -> M-SSD    theta -= lr * sign(m)
    sign=True,  va=False, momentum=False-> SSD      theta -= lr * sign(g)
    """
    theta = np.array(theta, dtype=np.float64)
    mt = np.zeros_like(theta)
    vt = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads):
        mt = beta * mt + (1 - beta) * g
        vt = beta * vt + (1 - beta) * g**2
        m = mt / (1 - beta ** (t + 1))
        v = vt / (1 - beta ** (t + 1))
        rho = (1 - beta) * (1 + beta ** (t + 1)) / ((1 + beta) * (1 - beta ** (t + 1)))
        rho = min(rho, 0.999)
        s = np.maximum((v - m**2) / (1 - rho), 0.0)
        base = m if momentum else g
        direction = np.sign(base) if sign else base
        if variance_adaptation:
            var = rho * s if momentum else s
            with np.errstate(invalid="ignore", divide="ignore"):
                gamma = np.where(m**2 + var > 0, m**2 / (m**2 + var), 0.0)
            gamma = np.clip(gamma, 0.0, 1.0)
            factor = np.sqrt(gamma) if sign else gamma
        else:
            factor = 1.0
        theta = theta - lr * direction * factor
        out.append(theta.copy())
    return out
