"""Independent NumPy reference for newtonps's subsampled Gauss-Newton Newton-CG.

What it is
    A slow, plain float64 re-implementation of `NewtonCG` (Wang et al. 2018,
    with the defaults of the authors' simpleNN code) on a tiny problem, written
    against the formulas below rather than against the Swift code. It writes
    `newton_cg_reference.json` next to itself; `ReferenceFixtureTests.swift`
    runs the Swift trainer from the same data and initial weights and compares
    the per-iteration records.

How to run
    python3 Tests/NewtonTrainingTests/Fixtures/newton_cg_reference.py

    Python 3 and NumPy only. Deterministic: every run writes the same JSON.
    Besides writing the fixture, it checks its derivatives by central
    differences, and replays each run in float32 to print how far a float32
    implementation (the Swift one) may be expected to drift.

The method, with l rows, parameters θ and S = every row (fraction 1.0):
    f(θ)  = ‖θ‖²/(2Cl) + (1/l) Σ_i ξ(z^L_i, y_i)
    G     = I/(Cl) + (1/|S|) Σ_{i∈S} J_iᵀ B_i J_i,  J_i = ∂z^L_i/∂θ, B_i = ∂²ξ/∂z²
    d     CG from 0 on (G + λI) d = −∇f; stop when ‖r‖ ≤ ξ_cg ‖∇f‖ (tested
          before each iteration) or after 250 iterations (one product each)
    α     1, ½, ¼, … (at most 20 tries) until f(θ+αd) ≤ f(θ) + η α ∇fᵀd
    ρ     (f(θ+αd) − f(θ)) / (α ∇fᵀd + ½ α² dᵀGd)    (λ left out of the model)
    λ     ×1.5 if ρ < 0.25 or the search failed (θ then stays), ×⅔ if ρ ≥ 0.75

Network: S^m = Z^{m−1} W^m + b^m, Z^m = σ(S^m), the output layer linear; θ is
flat, layer by layer: W^m (n_{m−1} × n_m, row-major), then b^m.
"""

import json
import pathlib

import numpy as np

DATA_SEED = 20180718
ROWS, FEATURES, CLASSES = 60, 5, 3
SUBSAMPLE_FRACTION = 1.0
CG_TOLERANCE = 0.1
CG_MAX_ITERATIONS = 250
INITIAL_LAMBDA = 1.0
LAMBDA_INCREASE, LAMBDA_DECREASE = 1.5, 2.0 / 3.0
LOW_RATIO, HIGH_RATIO = 0.25, 0.75
ARMIJO = 1e-4
MAX_LINE_SEARCH_STEPS = 20

# Each network draws its initial weights from its own seed; the iteration
# counts reach the λ increases and the backtracking of the first one while
# every decision stays clear of its threshold (see MIN_MARGINS).
CONFIGURATIONS = [
    {"name": "tanh-cross-entropy", "layers": [FEATURES, 6, CLASSES], "activation": "tanh", "loss": "cross-entropy",
     "C": 1.0, "weight_seed": 1, "iterations": 12},
    {"name": "sigmoid-squared", "layers": [FEATURES, 6, 4, CLASSES], "activation": "sigmoid", "loss": "squared",
     "C": 1.0, "weight_seed": 1, "iterations": 8},
]

# How far each discrete decision must be from flipping, so that a float32
# implementation takes the same ones: CG's ‖r‖ from its stop (relative), the
# Armijo test's f(θ+αd) from its bound (relative to f), ρ from 0.25 and 0.75.
MIN_MARGINS = {"cg": 5e-3, "armijo": 1e-5, "rho": 2e-3}

# σ(s), and σ'(s) written in terms of z = σ(s).
ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1 - z * z),
    "sigmoid": (lambda s: 1 / (1 + np.exp(-s)), lambda z: z * (1 - z)),
}


def as_float32(x):
    """x rounded to float32 and widened back, so Swift starts from the same numbers."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def make_data(rng):
    """Three Gaussian blobs in 5 dimensions that overlap a little; float32 values."""
    centers = 1.2 * rng.standard_normal((CLASSES, FEATURES))
    labels = rng.permutation(np.arange(ROWS) % CLASSES)
    features = centers[labels] + rng.standard_normal((ROWS, FEATURES))
    return as_float32(features), labels


def initial_weights(rng, layers):
    """W^m ~ N(0, 2/n_{m−1}) (He-normal), b^m ~ N(0, 0.1²); float32 values."""
    parts = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        parts.append(rng.standard_normal(n_in * n_out) * np.sqrt(2.0 / n_in))
        parts.append(0.1 * rng.standard_normal(n_out))
    return as_float32(np.concatenate(parts))


def unpack(theta, layers):
    """Views (W^m, b^m), m = 1…L, of the flat θ."""
    params, offset = [], 0
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        W = theta[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        params.append((W, theta[offset:offset + n_out]))
        offset += n_out
    assert offset == theta.size
    return params


def forward(theta, X, net):
    """Z^0 = X, …, Z^L: S^m = Z^{m−1} W^m + b^m, Z^m = σ(S^m), Z^L = S^L."""
    params = unpack(theta, net["layers"])
    sigma, _ = ACTIVATIONS[net["activation"]]
    Z = [X]
    for m, (W, b) in enumerate(params, start=1):
        S = Z[-1] @ W + b
        Z.append(S if m == len(params) else sigma(S))
    return Z


def per_row_backward(theta, Z, U, net):
    """Row i of the result is ∂(u_iᵀ z^L_i)/∂θ, for U = [u_i] (rows × n_L).

    Δ^L = U, Δ^{m−1} = (Δ^m W^mᵀ) ⊙ σ'(S^{m−1}); ∂/∂W^m = z^{m−1} ⊗ δ^m, ∂/∂b^m = δ^m.
    """
    params = unpack(theta, net["layers"])
    _, dsigma = ACTIVATIONS[net["activation"]]
    rows = U.shape[0]
    delta, layers = U, []
    for m in range(len(params), 0, -1):
        dW = np.einsum("ri,rj->rij", Z[m - 1], delta).reshape(rows, -1)
        layers.insert(0, np.concatenate([dW, delta], axis=1))
        if m > 1:
            delta = (delta @ params[m - 1][0].T) * dsigma(Z[m - 1])
    return np.concatenate(layers, axis=1)


def softmax(ZL):
    """p_i = softmax(z_i) per row."""
    E = np.exp(ZL - ZL.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def loss_terms(ZL, y, loss):
    """Per row: ξ(z_i, y_i) and ∂ξ/∂z."""
    rows, classes = ZL.shape
    onehot = np.eye(classes, dtype=ZL.dtype)[y]
    if loss == "cross-entropy":  # ξ = −log softmax(z)_y = log Σ_k e^{z_k} − z_y
        shifted = ZL - ZL.max(axis=1, keepdims=True)
        xi = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(rows), y]
        return xi, softmax(ZL) - onehot
    if loss == "squared":  # ξ = ‖z − onehot(y)‖²
        return ((ZL - onehot) ** 2).sum(axis=1), 2 * (ZL - onehot)
    raise ValueError(loss)


def loss_curvature(ZL, loss):
    """B_i = ∂²ξ/∂z² per row (rows × n_L × n_L); it does not depend on y."""
    rows, classes = ZL.shape
    if loss == "cross-entropy":  # B = diag(p) − ppᵀ
        return np.stack([np.diag(p) - np.outer(p, p) for p in softmax(ZL)])
    if loss == "squared":  # B = 2I
        return np.broadcast_to(2 * np.eye(classes, dtype=ZL.dtype), (rows, classes, classes))
    raise ValueError(loss)


def objective(theta, X, y, net, C):
    """f(θ) = ‖θ‖²/(2Cl) + (1/l) Σ ξ_i."""
    xi, _ = loss_terms(forward(theta, X, net)[-1], y, net["loss"])
    return theta @ theta / (2 * C * len(y)) + xi.sum() / len(y)


def gradient(theta, X, y, net, C):
    """∇f = θ/(Cl) + (1/l) Σ J_iᵀ ∂ξ_i/∂z."""
    Z = forward(theta, X, net)
    _, dxi = loss_terms(Z[-1], y, net["loss"])
    return theta / (C * len(y)) + per_row_backward(theta, Z, dxi, net).sum(axis=0) / len(y)


def jacobians(theta, X, net):
    """J_i = ∂z^L_i/∂θ for every row (rows × n_L × n): back-propagate each unit vector of z^L."""
    Z = forward(theta, X, net)
    classes = net["layers"][-1]
    J = np.empty((X.shape[0], classes, theta.size), dtype=theta.dtype)
    for k in range(classes):
        U = np.zeros((X.shape[0], classes), dtype=theta.dtype)
        U[:, k] = 1
        J[:, k, :] = per_row_backward(theta, Z, U, net)
    return J


def gauss_newton_matrix(theta, X_S, net, C, l):
    """G = I/(Cl) + (1/|S|) Σ_{i∈S} J_iᵀ B_i J_i, as an explicit n × n matrix (X_S: the rows of S)."""
    J = jacobians(theta, X_S, net)
    B = loss_curvature(forward(theta, X_S, net)[-1], net["loss"])
    ridge = np.eye(theta.size, dtype=theta.dtype) / (C * l)
    return ridge + np.einsum("rkp,rkj,rjq->pq", J, B, J) / X_S.shape[0]


def check_derivatives(theta, X, y, net, C):
    """Compares ∇f, every J_i and every B_i with central differences (h = 1e-6)."""
    h = 1e-6
    g = gradient(theta, X, y, net, C)
    J = jacobians(theta, X, net)
    ZL = forward(theta, X, net)[-1]
    B = loss_curvature(ZL, net["loss"])
    for k in range(ZL.shape[1]):
        e = np.zeros_like(ZL)
        e[:, k] = h
        fd_B = (loss_terms(ZL + e, y, net["loss"])[1] - loss_terms(ZL - e, y, net["loss"])[1]) / (2 * h)
        assert np.allclose(fd_B, B[:, :, k], rtol=1e-6, atol=1e-8), (net["name"], "loss curvature", k)
    for p in range(theta.size):
        e = np.zeros_like(theta)
        e[p] = h
        fd_g = (objective(theta + e, X, y, net, C) - objective(theta - e, X, y, net, C)) / (2 * h)
        fd_J = (forward(theta + e, X, net)[-1] - forward(theta - e, X, net)[-1]) / (2 * h)
        assert abs(fd_g - g[p]) <= 1e-7 * max(1.0, abs(g[p])), (net["name"], "gradient", p)
        assert np.allclose(fd_J, J[:, :, p], rtol=1e-6, atol=1e-8), (net["name"], "Jacobian", p)


def conjugate_gradient(A, g):
    """CG on A d = −g from d = 0. Returns d and ‖r‖ before each iteration and
    at the end (so the iterations taken, one product each, are len − 1)."""
    d = np.zeros_like(g)
    r = -g
    p = r.copy()
    rr = r @ r
    stop = CG_TOLERANCE * np.sqrt(g @ g)
    residuals = [np.sqrt(rr)]
    while np.sqrt(rr) > stop and len(residuals) - 1 < CG_MAX_ITERATIONS:
        Ap = A @ p
        alpha = rr / (p @ Ap)
        d = d + alpha * p
        r = r - alpha * Ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        residuals.append(np.sqrt(rr))
    return d, residuals


def line_search(theta, d, f, gd, X, y, net, C):
    """Armijo backtracking. Returns α, the tries, f(θ+αd) (None and α = 0 when
    every try fails) and the smallest |f(θ+αd) − bound| / |f| over the tries."""
    alpha, margin = 1.0, np.inf
    for tries in range(1, MAX_LINE_SEARCH_STEPS + 1):
        trial = objective(theta + alpha * d, X, y, net, C)
        bound = f + ARMIJO * alpha * gd
        margin = min(margin, abs(trial - bound) / abs(f))
        if trial <= bound:
            return alpha, tries, trial, margin
        alpha /= 2
    return 0.0, MAX_LINE_SEARCH_STEPS, None, margin


def next_lambda(lam, alpha, f_new, f, gd, dGd):
    """λ after a search, and ρ (None when the search failed)."""
    if f_new is None:
        return lam * LAMBDA_INCREASE, None
    predicted = alpha * gd + 0.5 * alpha * alpha * dGd
    rho = (f_new - f) / predicted if predicted < 0 else 0.0
    if rho < LOW_RATIO:
        return lam * LAMBDA_INCREASE, rho
    if rho >= HIGH_RATIO:
        return lam * LAMBDA_DECREASE, rho
    return lam, rho


def newton_cg(theta, X, y, net, dtype=np.float64):
    """Runs net["iterations"] iterations in `dtype`. Returns the records
    (iteration 0 is the start; each later one holds the λ it used) and the
    margins of each iteration's decisions (see MIN_MARGINS)."""
    theta, X = theta.astype(dtype), X.astype(dtype)
    C, l = net["C"], len(y)
    sample = np.arange(int(np.ceil(SUBSAMPLE_FRACTION * l)))  # S: ⌈fraction · l⌉ = l rows, so all, sorted
    f, g = objective(theta, X, y, net, C), gradient(theta, X, y, net, C)
    lam = INITIAL_LAMBDA

    def record(k, cg, used, alpha, tries):
        return {"iteration": k, "objective": float(f), "lambda": used, "cg_iterations": cg,
                "step": alpha, "line_search_steps": tries, "grad_norm": float(np.sqrt(g @ g))}

    records, margins = [record(0, 0, lam, 0.0, 0)], []
    for k in range(1, net["iterations"] + 1):
        G = gauss_newton_matrix(theta, X[sample], net, C, l)
        d, residuals = conjugate_gradient(G + lam * np.eye(theta.size, dtype=dtype), g)
        gd, dGd = float(g @ d), float(d @ G @ d)
        alpha, tries, f_new, armijo_margin = line_search(theta, d, float(f), gd, X, y, net, C)
        used = lam
        lam, rho = next_lambda(lam, alpha, f_new, float(f), gd, dGd)
        if f_new is not None:
            theta = theta + alpha * d
            f, g = objective(theta, X, y, net, C), gradient(theta, X, y, net, C)
        records.append(record(k, len(residuals) - 1, used, alpha, tries))
        stop = CG_TOLERANCE * residuals[0]
        margins.append({"cg": float(min(abs(r / stop - 1) for r in residuals[-2:])), "armijo": float(armijo_margin),
                        "rho": np.inf if rho is None else float(min(abs(rho - LOW_RATIO), abs(rho - HIGH_RATIO)))})
    return records, margins


def decisions(records):
    """The discrete part of each record, which a float32 run must reproduce exactly."""
    return [(r["cg_iterations"], r["lambda"], r["step"], r["line_search_steps"]) for r in records]


def float32_gaps(records, single):
    """What ReferenceFixtureTests.swift measures: the largest relative objective
    gap, and the largest gradient-norm gap relative to the initial gradient norm."""
    objective_gap = max(abs(a["objective"] - b["objective"]) / abs(a["objective"]) for a, b in zip(records, single))
    grad_gap = max(abs(a["grad_norm"] - b["grad_norm"]) for a, b in zip(records, single)) / records[0]["grad_norm"]
    return objective_gap, grad_gap


def main():
    X, y = make_data(np.random.default_rng(DATA_SEED))
    fixture = {
        "description": "Records of an independent float64 NumPy Newton-CG; regenerate with python3 newton_cg_reference.py.",
        "rows": ROWS, "columns": FEATURES, "classes": CLASSES,
        "features": [float(v) for v in X.ravel()],
        "labels": [int(v) for v in y],
        "options": {"subsample_fraction": SUBSAMPLE_FRACTION, "cg_tolerance": CG_TOLERANCE,
                    "cg_max_iterations": CG_MAX_ITERATIONS, "initial_lambda": INITIAL_LAMBDA,
                    "lambda_increase": LAMBDA_INCREASE, "lambda_decrease": LAMBDA_DECREASE,
                    "low_ratio": LOW_RATIO, "high_ratio": HIGH_RATIO,
                    "armijo": ARMIJO, "max_line_search_steps": MAX_LINE_SEARCH_STEPS},
        "configurations": [],
    }
    for net in CONFIGURATIONS:
        theta0 = initial_weights(np.random.default_rng(net["weight_seed"]), net["layers"])
        check_derivatives(theta0, X, y, net, net["C"])
        records, margins = newton_cg(theta0, X, y, net)
        single, _ = newton_cg(theta0, X, y, net, dtype=np.float32)

        print(f"{net['name']}: layers {net['layers']}, {theta0.size} parameters, C = {net['C']}")
        print("  it  objective          grad_norm          lambda      cg  step   ls")
        for r in records:
            print(f"  {r['iteration']:2d}  {r['objective']:.15f}  {r['grad_norm']:.15f}  {r['lambda']:.8f}  "
                  f"{r['cg_iterations']:2d}  {r['step']:<5g}  {r['line_search_steps']:2d}")
        smallest = {key: min(m[key] for m in margins) for key in MIN_MARGINS}
        objective_gap, grad_gap = float32_gaps(records, single)
        print(f"  smallest decision margins {smallest}")
        print(f"  float32 replay: same decisions {decisions(records) == decisions(single)}, "
              f"objective gap {objective_gap:.1e}, grad-norm gap {grad_gap:.1e}")
        assert all(smallest[key] >= MIN_MARGINS[key] for key in MIN_MARGINS), "a decision is too close to its threshold"
        assert decisions(records) == decisions(single), "a float32 replay takes other decisions"
        assert all(a["objective"] > b["objective"] for a, b in zip(records, records[1:])), "f must decrease"
        fixture["configurations"].append({**net, "initial_weights": [float(v) for v in theta0], "records": records})

    path = pathlib.Path(__file__).with_name("newton_cg_reference.json")
    path.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
