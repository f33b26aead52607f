"""Writes the test fixtures in tests/fixtures/ from the reference Python implementations.

    python py/make_fixtures.py

Re-running it reproduces the committed files (seeded). The Rust tests read these files; nothing in
them is computed by the Rust code.

* metrics.json  - (y, p) with tied scores; expected AUROC/AUPRC (scikit-learn), Brier, log-loss,
                  calibration intercept/slope (statsmodels GLM), decile table, top-k sensitivity/PPV.
* logistic.json - a small table with NaNs; the standardisation (mean, population sd, NaN -> mean)
                  and scikit-learn LogisticRegression(lbfgs) coefficients for C = 1 / (n * l2).
* shap_lgbm.json - a small LightGBM model converted to our tree format (covers = LightGBM's data
                  counts), rows to explain, LightGBM's raw scores and pred_contrib=True output.
"""
import json
import os

import lightgbm as lgb
import numpy as np
import sklearn
import statsmodels
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
VERSIONS = {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "statsmodels": statsmodels.__version__, "lightgbm": lgb.__version__}


def nan_to_none(a):
    return [None if np.isnan(v) else float(v) for v in a]


def metric_case(rng, n, decimals, prevalence):
    z = rng.normal(size=n)
    logit = np.log(prevalence / (1 - prevalence)) + 1.2 * z
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.uint8)
    # a slightly mis-calibrated prediction, rounded so that many scores tie
    p = 1 / (1 + np.exp(-(0.3 + 0.8 * (logit + 0.3 * rng.normal(size=n)))))
    p = np.clip(np.round(p, decimals), 10.0 ** -decimals, 1 - 10.0 ** -decimals)
    lp = np.log(p / (1 - p))
    slope_fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit(tol=1e-14)
    int_fit = sm.GLM(y, np.ones((n, 1)), family=sm.families.Binomial(), offset=lp).fit(tol=1e-14)
    # deciles: ascending p, ties by row index (stable sort)
    order = np.argsort(p, kind="stable")
    table = []
    for g in range(10):
        rows = order[g * n // 10:(g + 1) * n // 10]
        table.append({"n": int(len(rows)), "events": int(y[rows].sum()),
                      "mean_predicted": float(p[rows].mean()), "observed_rate": float(y[rows].mean())})
    # top fractions: descending p, ties by row index ascending
    desc = np.lexsort((np.arange(n), -p))
    top = []
    for f in (0.01, 0.05, 0.10):
        k = int(np.ceil(f * n - 1e-9))
        ev = int(y[desc[:k]].sum())
        top.append({"fraction": f, "flagged": k, "events_flagged": ev,
                    "sensitivity": ev / y.sum(), "ppv": ev / k})
    return {
        "y": y.tolist(), "p": p.tolist(),
        "auroc": roc_auc_score(y, p), "auprc": average_precision_score(y, p),
        "brier": brier_score_loss(y, p), "log_loss": log_loss(y, p),
        "calibration_intercept": float(int_fit.params[0]),
        "calibration_slope": float(slope_fit.params[1]),
        "calibration_table": table, "top": top,
    }


def metrics_fixture():
    rng = np.random.default_rng(20261130)
    cases = [metric_case(rng, 2000, 2, 0.08), metric_case(rng, 1500, 1, 0.15),
             metric_case(rng, 997, 3, 0.03)]
    with open(os.path.join(OUT, "metrics.json"), "w") as f:
        json.dump({"versions": VERSIONS, "cases": cases}, f)


def logistic_fixture():
    rng = np.random.default_rng(7)
    n, p = 3000, 6
    X = rng.normal(size=(n, p)).astype(np.float32)
    X[:, 1] = X[:, 1] * 20 + 50  # different scales
    X[:, 4] = (rng.random(n) < 0.3).astype(np.float32)  # a flag
    beta = np.array([0.8, 0.03, -0.5, 0.0, 1.0, 0.2])
    eta = -2.5 + (X.astype(np.float64) - X.mean(0)) @ beta
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.uint8)
    X[rng.random((n, p)) < 0.1] = np.nan  # 10% missing everywhere
    X[:, 5] = np.where(rng.random(n) < 0.5, np.nan, X[:, 5])  # a mostly-missing column
    Xd = X.astype(np.float64)
    mean = np.nanmean(Xd, axis=0)
    sd = np.nanstd(Xd, axis=0)  # population sd (ddof = 0)
    Z = (Xd - mean) / sd
    Z[np.isnan(Z)] = 0.0  # missing -> training mean -> standardised 0
    fits = []
    for l2 in (1e-4, 1e-2):
        C = 1.0 / (n * l2)
        m = LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=100000).fit(Z, y)
        fits.append({"l2": l2, "C": C, "intercept": float(m.intercept_[0]),
                     "coef": m.coef_[0].tolist(), "proba": m.predict_proba(Z)[:, 1].tolist()})
    with open(os.path.join(OUT, "logistic.json"), "w") as f:
        json.dump({"versions": VERSIONS, "n": n, "p": p,
                   "x_row_major": [nan_to_none(r) for r in X], "y": y.tolist(),
                   "mean": mean.tolist(), "sd": sd.tolist(), "fits": fits}, f)


def convert_lgbm_tree(tree):
    """LightGBM's nested dump -> our flat node list (pre-order; left child = index + 1)."""
    nodes = []

    def walk(t):
        i = len(nodes)
        nodes.append(None)
        if "leaf_value" in t:
            nodes[i] = {"leaf": {"value": t["leaf_value"], "cover": float(t["leaf_count"]),
                                 "count": int(t["leaf_count"])}}
            return i
        assert t["decision_type"] == "<=" and t["missing_type"] == "NaN", t
        left = walk(t["left_child"])
        right = walk(t["right_child"])
        nodes[i] = {"split": {"feature": t["split_feature"], "threshold": float(np.float32(t["threshold"])),
                              "default_left": bool(t["default_left"]), "left": left, "right": right,
                              "gain": float(t["split_gain"]),
                              "cover": float(t["internal_count"]), "count": int(t["internal_count"])}}
        return i

    walk(tree["tree_structure"])
    return nodes


def shap_fixture():
    rng = np.random.default_rng(11)
    n, p = 600, 5
    X = rng.integers(0, 12, size=(n, p)).astype(np.float64)
    X[rng.random((n, p)) < 0.15] = np.nan
    eta = -1.5 + 0.3 * np.nan_to_num(X[:, 0], nan=5) - 0.2 * np.nan_to_num(X[:, 1], nan=2) \
        + 0.8 * (np.nan_to_num(X[:, 2], nan=0) > 6) * (np.nan_to_num(X[:, 3], nan=9) < 4)
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    params = {"objective": "binary", "num_leaves": 8, "max_depth": 4, "learning_rate": 0.3,
              "min_data_in_leaf": 5, "verbose": -1, "seed": 1, "deterministic": True,
              "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=12)
    dump = booster.dump_model()
    trees = [{"nodes": convert_lgbm_tree(t)} for t in dump["tree_info"]]
    Xe = X[:80]
    raw = booster.predict(Xe, raw_score=True)
    contrib = booster.predict(Xe, pred_contrib=True)
    # our decision rule on f32 values reproduces LightGBM's raw scores exactly?
    def ours(x):
        s = 0.0
        for t in trees:
            i = 0
            while "split" in t["nodes"][i]:
                sp = t["nodes"][i]["split"]
                v = x[sp["feature"]]
                go_left = sp["default_left"] if np.isnan(v) else np.float32(v) <= np.float32(sp["threshold"])
                i = sp["left"] if go_left else sp["right"]
            s += t["nodes"][i]["leaf"]["value"]
        return s
    assert np.allclose([ours(x) for x in Xe], raw, rtol=0, atol=1e-12)
    with open(os.path.join(OUT, "shap_lgbm.json"), "w") as f:
        json.dump({"versions": VERSIONS, "n_features": p, "trees": trees,
                   "x_row_major": [nan_to_none(r) for r in Xe], "raw": raw.tolist(),
                   "contrib": contrib.tolist()}, f)


if __name__ == "__main__":
    metrics_fixture()
    logistic_fixture()
    shap_fixture()
    print("fixtures written to", os.path.abspath(OUT))
