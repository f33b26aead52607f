"""strata's GBDT against LightGBM on strata's own exported feature table (BENCHMARKS.md).

    python3 benches/gbdt_vs_lightgbm.py TRAIN.parquet TEST.parquet [--outcome emergency_admission]

TRAIN and TEST are `strata features --outcomes` tables at two as-of dates a year apart (the windows
`strata train --as-of <TEST date>` fits and validates on). Fits LightGBM with its own defaults
(100 trees, learning rate 0.1, 31 leaves, no depth limit, 255 bins, 20 rows per leaf; 2 threads),
timing the fit including LightGBM's binning, and prints the test AUROC and Brier score, overall and
in the list population (aged 65+), and scikit-learn's L2 logistic regression (standardised,
missing -> the training mean) beside it. strata's own figures come from `strata train --model gbdt`
on the same cohort (its defaults: LightGBM's, with early stopping), which prints its fit time.
"""
import argparse
import json
import time

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

OUTCOMES = ["emergency_admission", "falls_admission", "death", "emergency_admission_or_death"]


def load(path, outcome):
    df = pl.read_parquet(path)
    features = [c for c in df.columns if c != "patient_id" and c not in OUTCOMES]
    x = df.select(features).to_numpy().astype(np.float32)
    y = df[outcome].cast(pl.Int8).to_numpy()
    return features, x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--outcome", default="emergency_admission")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    names, xtr, ytr = load(a.train, a.outcome)
    names2, xte, yte = load(a.test, a.outcome)
    assert names == names2
    out = {"rows_train": len(ytr), "rows_test": len(yte), "features": len(names)}

    t = time.perf_counter()
    ds = lgb.Dataset(xtr, ytr, params={"max_bin": 255, "verbose": -1})
    model = lgb.train(
        {
            "objective": "binary",
            "num_threads": a.threads,
            "verbose": -1,
            "deterministic": True,
        },
        ds,
    )
    out["lightgbm_fit_s"] = time.perf_counter() - t
    p = model.predict(xte, num_threads=a.threads)
    out["lightgbm_auroc"] = roc_auc_score(yte, p)
    out["lightgbm_brier"] = brier_score_loss(yte, p)
    old = xte[:, names.index("age")] >= 65
    out["lightgbm_auroc_65_plus"] = roc_auc_score(yte[old], p[old])

    t = time.perf_counter()
    mean = np.nanmean(xtr, axis=0)
    sd = np.nanstd(xtr, axis=0)
    sd[~(sd > 0)] = 1.0

    def z(x):
        x = np.where(np.isnan(x), mean, x)
        return (x - mean) / sd

    lr = LogisticRegression(C=1.0 / (len(ytr) * 1e-4), max_iter=1000)
    lr.fit(z(xtr), ytr)
    out["sklearn_logistic_fit_s"] = time.perf_counter() - t
    p = lr.predict_proba(z(xte))[:, 1]
    out["sklearn_logistic_auroc"] = roc_auc_score(yte, p)
    out["sklearn_logistic_brier"] = brier_score_loss(yte, p)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
