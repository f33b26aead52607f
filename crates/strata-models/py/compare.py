"""Benchmark data + the Python side of the Rust-vs-Python comparison.

    python py/compare.py [--rows 1000000] [--out /work/scratch/data]

1. Generates a synthetic 1,000,000 x 60 f32 table (seeded) with NaNs and a non-linear signal
   (~8% events) and writes it in the crate's raw format (`Dataset::read_raw`) to OUT/bench.bin.
2. Splits 80/20 by row order (train first), fits scikit-learn LogisticRegression (lbfgs) on
   standardised features (NaN -> training mean, i.e. z = 0; C = 1 / (n_train * l2), l2 = 1e-4)
   and LightGBM (300 rounds, lr 0.1, max_depth 6, 63 leaves, 255 bins, 2 threads).
3. Writes fit times, test AUROC/Brier and LightGBM's pred_contrib time for 10,000 rows to
   OUT/python_results_{threads}t.json, which `cargo run --release --example compare` reads and prints beside
   its own figures.
"""
import argparse
import json
import os
import struct
import time

import numpy as np

L2 = 1e-4
SIGNAL = 0.6
NOISE = 1.0
THREADS = 2


def generate(n, seed=20261130):
    rng = np.random.default_rng(seed)
    p = 60
    X = np.empty((n, p), dtype=np.float32)
    age = rng.uniform(18, 100, n)
    X[:, 0] = age
    X[:, 1] = rng.integers(0, 2, n)  # sex
    X[:, 2] = rng.integers(1, 11, n)  # IMD decile
    frail = rng.gamma(1.5, 1.0, n) * (age / 60) ** 2  # latent frailty
    # counts of prior activity (Poisson, driven by frailty)
    for j, rate in zip(range(3, 13), [0.3, 0.5, 0.2, 1.0, 2.0, 0.1, 0.4, 3.0, 0.05, 0.8]):
        X[:, j] = rng.poisson(rate * frail)
    # long-term condition flags
    for j in range(13, 33):
        X[:, j] = rng.random(n) < 1 / (1 + np.exp(-(-3 + 0.03 * (age - 50) + 0.3 * frail + 0.1 * (j - 13) * 0.1)))
    # lab values / measurements, missing more often for the young and healthy
    labs = {33: (90, 20), 34: (42, 10), 35: (27, 5), 36: (135, 20), 37: (5, 1.5), 38: (140, 4), 39: (4.5, 0.5)}
    for j, (mu, sd) in labs.items():
        X[:, j] = mu + sd * rng.normal(size=n) - (j == 33) * 8 * frail
    # prescriptions count, polypharmacy, eFI-like score, days since last admission
    X[:, 40] = rng.poisson(1 + 1.5 * frail)
    X[:, 41] = X[:, 13:33].sum(1) / 36 + rng.normal(0, 0.02, n)
    X[:, 42] = np.where(X[:, 3] > 0, rng.exponential(200, n), np.nan)
    # noise and weakly informative columns
    X[:, 43:60] = rng.normal(size=(n, 17))
    X[:, 43] += 0.2 * frail
    # missingness: labs missing 20-60% (more often when healthy), noise 5%
    for j in range(33, 40):
        pmiss = 0.6 - 0.35 * (frail > 1)
        X[rng.random(n) < pmiss, j] = np.nan
    block = X[:, 43:60]
    block[rng.random((n, 17)) < 0.05] = np.nan
    X[:, 43:60] = block
    Xd = X.astype(np.float64)
    def nz(j, v):
        return np.nan_to_num(Xd[:, j], nan=v)
    eta = (0.045 * (age - 60) + 0.0004 * np.maximum(age - 75, 0) ** 2
           + 0.55 * np.log1p(Xd[:, 3]) + 0.3 * np.log1p(Xd[:, 4]) + 0.25 * np.log1p(Xd[:, 6])
           + 0.08 * np.minimum(Xd[:, 7], 6) + 0.4 * (Xd[:, 8] > 2)
           + 0.25 * Xd[:, 13] + 0.2 * Xd[:, 14] + 0.3 * Xd[:, 15] * (age > 70) + 0.15 * Xd[:, 16]
           + 0.5 * Xd[:, 17] * Xd[:, 18]
           - 0.02 * (nz(33, 90) - 90) * (nz(33, 90) < 60) + 0.6 * (nz(35, 27) < 18) + 0.3 * (nz(35, 27) > 40)
           + 0.35 * np.isnan(Xd[:, 37]) * (Xd[:, 13] > 0) + 0.3 * (np.abs(nz(38, 140) - 140) > 6)
           + 0.06 * Xd[:, 40] + 1.2 * Xd[:, 41] - 0.3 * np.log1p(nz(42, 2000) / 30)
           + 0.1 * (Xd[:, 2] <= 3) + 0.15 * nz(43, 0) + 0.2 * np.sin(2 * nz(44, 0)))
    # weaker observed signal plus an unobserved patient effect, so that discrimination is in the
    # range real 12-month admission models reach (AUROC ~0.8-0.85); `eta` (observed part) ranks
    # patients as E[y | x] does, so its AUROC is the ceiling any model can reach.
    eta = SIGNAL * eta
    eta_full = eta + NOISE * rng.normal(size=n)
    # intercept giving ~8% events
    lo, hi = -10.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(mid + eta_full)))) > 0.08:
            hi = mid
        else:
            lo = mid
    y = (rng.random(n) < 1 / (1 + np.exp(-(eta_full + (lo + hi) / 2)))).astype(np.uint8)
    names = ["age", "sex", "imd_decile"] + [f"count_{j}" for j in range(3, 13)] + \
        [f"ltc_{j}" for j in range(13, 33)] + [f"lab_{j}" for j in range(33, 40)] + \
        ["n_prescriptions", "frailty_score", "days_since_admission"] + [f"other_{j}" for j in range(43, 60)]
    return X, y, eta, names


def write_raw(path, X, y, names):
    n, p = X.shape
    with open(path, "wb") as f:
        f.write(b"STRATAX1")
        f.write(struct.pack("<QQB", n, p, 1))
        for name in names:
            b = name.encode()
            f.write(struct.pack("<I", len(b)))
            f.write(b)
        f.write(np.asfortranarray(X).T.astype("<f4").tobytes())  # column-major
        f.write(y.astype(np.uint8).tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default="/work/scratch/data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse OUT/bench.bin (same seed and rows)")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    os.makedirs(args.out, exist_ok=True)
    import lightgbm as lgb
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score

    t = time.perf_counter()
    X, y, eta, names = generate(args.rows)
    if not (args.reuse and os.path.exists(os.path.join(args.out, "bench.bin"))):
        write_raw(os.path.join(args.out, "bench.bin"), X, y, names)
    print(f"generated {X.shape} events {y.mean():.4f} missing {np.isnan(X).mean():.3f} "
          f"in {time.perf_counter() - t:.1f}s")
    ntr = int(0.8 * args.rows)
    Xtr, Xte, ytr, yte = X[:ntr], X[ntr:], y[:ntr], y[ntr:]
    res = {"load_before": os.getloadavg(), "rows": args.rows, "train_rows": ntr, "test_rows": args.rows - ntr, "threads": THREADS,
           "events_rate": float(y.mean()), "versions": {"numpy": np.__version__,
           "scikit-learn": sklearn.__version__, "lightgbm": lgb.__version__}}
    res["ceiling_test_auroc"] = roc_auc_score(yte, eta[ntr:])

    # scikit-learn logistic on standardised features, NaN -> mean (z = 0)
    t = time.perf_counter()
    Xd = Xtr.astype(np.float64)
    mean = np.nanmean(Xd, 0)
    sd = np.nanstd(Xd, 0)
    sd[sd == 0] = 1
    def std(A):
        Z = (A.astype(np.float64) - mean) / sd
        Z[np.isnan(Z)] = 0
        return Z
    Ztr = std(Xtr)
    t_std = time.perf_counter() - t
    C = 1 / (ntr * L2)
    t = time.perf_counter()
    c = time.process_time()
    lr = LogisticRegression(C=C, solver="lbfgs", max_iter=1000, tol=1e-6).fit(Ztr, ytr)
    t_fit = time.perf_counter() - t
    c_fit = time.process_time() - c
    p_lr = lr.predict_proba(std(Xte))[:, 1]
    res["sklearn_logistic"] = {"fit_s": t_fit, "cpu_s": c_fit, "standardise_s": t_std, "C": C, "n_iter": int(lr.n_iter_[0]),
                               "auroc": roc_auc_score(yte, p_lr), "brier": brier_score_loss(yte, p_lr),
                               "intercept": float(lr.intercept_[0]), "coef": lr.coef_[0].tolist()}
    print("sklearn logistic", {k: v for k, v in res["sklearn_logistic"].items() if k != "coef"})
    del Ztr, Xd

    params = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 63, "max_depth": 6,
              "max_bin": 255, "min_data_in_leaf": 20, "min_sum_hessian_in_leaf": 1e-3,
              "lambda_l2": 0.0, "num_threads": THREADS, "verbose": -1, "seed": 1}
    t = time.perf_counter()
    dtr = lgb.Dataset(Xtr, ytr, params={"max_bin": 255, "verbose": -1}, free_raw_data=False).construct()
    t_bin = time.perf_counter() - t
    t = time.perf_counter()
    c = time.process_time()
    booster = lgb.train(params, dtr, num_boost_round=300)
    t_fit = time.perf_counter() - t
    c_fit = time.process_time() - c
    p_gb = booster.predict(Xte, num_threads=THREADS)
    t = time.perf_counter()
    booster.predict(Xte[:10_000], pred_contrib=True, num_threads=THREADS)
    t_shap = time.perf_counter() - t
    res["lightgbm"] = {"fit_s": t_fit, "cpu_s": c_fit, "binning_s": t_bin, "auroc": roc_auc_score(yte, p_gb),
                       "brier": brier_score_loss(yte, p_gb), "shap_10k_s": t_shap}
    print("lightgbm", res["lightgbm"])
    res["load_after"] = os.getloadavg()
    with open(os.path.join(args.out, f"python_results_{THREADS}t.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
