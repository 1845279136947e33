#!/usr/bin/env python3
"""Compare the full all-MiniLM-L6-v2 sentence embedding with the static one of derive-embeddings.py on the
routing levels: a multinomial logistic regression (numpy, L2) in repeated stratified 5-fold cross-validation.

    python3 scripts/eval-embeddings.py [--cases FILE] [--emb-dir DIR] [--json OUT.json]

--cases defaults to /tmp/sb-batches/tune-2026-12.yaml when it exists, else routing-eval.yaml without its
holdout split. A case's text is its `query`, or the last user message of its `messages`. Runs in the same
virtualenv as derive-embeddings.py (it re-executes itself there).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("derive_embeddings", HERE / "derive-embeddings.py")
derive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(derive)

LEVELS = ["simple", "moderate", "complex"]
DEFAULT_TUNE = Path("/tmp/sb-batches/tune-2026-12.yaml")
DEFAULT_EVAL = HERE.parent / "routing-eval.yaml"

# crude language guess for the report only (cases tagged multilingual)
_STOP = {
    "de": "der die das und ist sind wer wie viele mit mir im in der den dem ein eine einer zeig zeige bitte nach von "
          "seit welche welcher was hat haben als für pro jetzt kannst du ich mitarbeiter gehalt abteilung",
    "fr": "le la les des du de et est qui quel quelle combien dans par à au aux un une pour moi mon mes je "
          "sont avec depuis salaire employés fais envoie",
    "es": "el la los las del de y es quién cuál cuántos cuántas en por con un una para mi me hay lista "
          "empleados salario haz ahora",
    "pt": "o a os as do da dos das de e é quem qual quantos quantas em no na por com um uma para me "
          "funcionários salário faz manda",
}
_STOP = {k: set(v.split()) for k, v in _STOP.items()}


def guess_language(text: str, tags: list[str]) -> str:
    if "mixed" in tags:
        return "mixed"
    if "multilingual" not in tags:
        return "en"
    words = re.findall(r"\w+", text.lower())
    scores = {k: sum(w in v for w in words) for k, v in _STOP.items()}
    if re.search(r"[ãõç]|ção|ções", text.lower()):
        scores["pt"] += 2
    if re.search(r"[ñ¿¡]", text.lower()):
        scores["es"] += 2
    if re.search(r"[äöüß]", text.lower()):
        scores["de"] += 2
    if re.search(r"[èêàùç]|\bl'|\bd'|qu'", text.lower()):
        scores["fr"] += 1
    return max(scores, key=lambda k: (scores[k], k)) if max(scores.values()) > 0 else "other"


def load_cases(path: Path):
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for c in data["cases"]:
        if c.get("split") == "holdout":
            continue
        if "query" in c:
            text = c["query"]
        else:
            users = [m["content"] for m in c["messages"] if m.get("role") == "user"]
            text = users[-1]
        tags = list(c.get("tags") or [])
        out.append({"text": text, "level": c["level"], "tags": tags, "lang": guess_language(text, tags)})
    return out


# ----------------------------------------------------------------------------------------------- classifier
def fit_logreg(X, y, k, lam, max_iter=400):
    """Multinomial logistic regression, mean cross-entropy + lam/2 ||W||^2 (bias not penalised), L-BFGS."""
    import numpy as np

    n, d = X.shape
    Y = np.zeros((n, k))
    Y[np.arange(n), y] = 1.0

    def f_g(theta):
        W = theta[: d * k].reshape(d, k)
        b = theta[d * k:]
        Z = X @ W + b
        Z -= Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        loss = -np.sum(Y * np.log(P + 1e-300)) / n + 0.5 * lam * np.sum(W * W)
        G = (P - Y) / n
        gW = X.T @ G + lam * W
        gb = G.sum(axis=0)
        return loss, np.concatenate([gW.ravel(), gb])

    theta = np.zeros(d * k + k)
    f, g = f_g(theta)
    S, Yh = [], []
    for it in range(max_iter):
        q = g.copy()
        alphas = []
        for s, yv in reversed(list(zip(S, Yh))):
            a = (s @ q) / (yv @ s)
            alphas.append(a)
            q -= a * yv
        if S:
            q *= (S[-1] @ Yh[-1]) / (Yh[-1] @ Yh[-1])
        else:
            q /= max(np.linalg.norm(q), 1e-12)
        for (s, yv), a in zip(zip(S, Yh), reversed(alphas)):
            bcoef = (yv @ q) / (yv @ s)
            q += s * (a - bcoef)
        p = -q
        gtp = g @ p
        if gtp >= 0:
            p, gtp, S, Yh = -g, -(g @ g), [], []
        step = 1.0
        while True:
            f_new, g_new = f_g(theta + step * p)
            if f_new <= f + 1e-4 * step * gtp or step < 1e-10:
                break
            step *= 0.5
        s_vec = step * p
        y_vec = g_new - g
        theta, f, g = theta + s_vec, f_new, g_new
        if s_vec @ y_vec > 1e-12:
            S.append(s_vec)
            Yh.append(y_vec)
            if len(S) > 10:
                S.pop(0)
                Yh.pop(0)
        if np.linalg.norm(g) < 1e-6:
            break
    return theta[: d * k].reshape(d, k), theta[d * k:]


def standardize(train, test):
    mu = train.mean(axis=0)
    sd = train.std(axis=0) + 1e-8
    return (train - mu) / sd, (test - mu) / sd


def stratified_folds(y, n_folds, rng):
    import numpy as np

    folds = [[] for _ in range(n_folds)]
    for cls in sorted(set(y.tolist())):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            folds[j % n_folds].append(i)
    return [np.array(sorted(f)) for f in folds]


LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0)


def cross_validate(X, y, repeats=5, n_folds=5, seed=2026):
    """Repeated stratified k-fold; lambda chosen per outer fold by an inner 4-fold CV. Returns predictions
    [repeats, n] and the lambdas chosen."""
    import numpy as np

    n = len(y)
    preds = np.zeros((repeats, n), dtype=np.int64)
    chosen = []
    for r in range(repeats):
        rng = np.random.default_rng(seed + r)
        folds = stratified_folds(y, n_folds, rng)
        for f in range(n_folds):
            test = folds[f]
            train = np.concatenate([folds[j] for j in range(n_folds) if j != f])
            inner = stratified_folds(y[train], 4, np.random.default_rng(seed + 100 * r + f))
            best, best_acc = None, -1.0
            for lam in LAMBDAS:
                correct = 0
                for g in range(4):
                    te = train[inner[g]]
                    tr = train[np.concatenate([inner[h] for h in range(4) if h != g])]
                    a, b = standardize(X[tr], X[te])
                    W, c = fit_logreg(a, y[tr], len(LEVELS), lam)
                    correct += int(np.sum(np.argmax(b @ W + c, axis=1) == y[te]))
                acc = correct / len(train)
                if acc > best_acc + 1e-12:
                    best, best_acc = lam, acc
            chosen.append(best)
            a, b = standardize(X[train], X[test])
            W, c = fit_logreg(a, y[train], len(LEVELS), best)
            preds[r, test] = np.argmax(b @ W + c, axis=1)
    return preds, chosen


def knn_cross_validate(X, y, k=5, repeats=5, n_folds=5, seed=2026):
    """Cosine k-nearest-neighbours (similarity-weighted votes) on the same folds: routing by labelled examples."""
    import numpy as np

    preds = np.zeros((repeats, len(y)), dtype=np.int64)
    for r in range(repeats):
        folds = stratified_folds(y, n_folds, np.random.default_rng(seed + r))
        for f in range(n_folds):
            test = folds[f]
            train = np.concatenate([folds[j] for j in range(n_folds) if j != f])
            sims = X[test] @ X[train].T
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
            votes = np.zeros((len(test), len(LEVELS)))
            for a in range(len(test)):
                for b in top[a]:
                    votes[a, y[train][b]] += sims[a, b]
            preds[r, test] = np.argmax(votes, axis=1)
    return preds


def summarize(preds, y, cases):
    import numpy as np

    acc = (preds == y[None, :]).mean(axis=1)
    cx = LEVELS.index("complex")
    rec = [(p[y == cx] == cx).mean() for p in preds]
    prec = [((p == cx) & (y == cx)).sum() / max((p == cx).sum(), 1) for p in preds]
    conf = np.zeros((3, 3), dtype=np.int64)
    for p in preds:
        for t, q in zip(y, p):
            conf[t, q] += 1
    groups = {}
    keys = {"tag:" + t for c in cases for t in c["tags"]} | {"lang:" + c["lang"] for c in cases}
    keys |= {"tag:(none)"}
    for key in sorted(keys):
        kind, val = key.split(":", 1)
        if kind == "tag":
            mask = np.array([(val in c["tags"]) if val != "(none)" else not c["tags"] for c in cases])
        else:
            mask = np.array([c["lang"] == val for c in cases])
        if mask.sum() == 0:
            continue
        cm = mask & (y == cx)
        groups[key] = {
            "n": int(mask.sum()),
            "accuracy": float((preds[:, mask] == y[None, mask]).mean()),
            "complex_n": int(cm.sum()),
            "complex_recall": float((preds[:, cm] == cx).mean()) if cm.sum() else None,
        }
    return {
        "accuracy_mean": float(acc.mean()), "accuracy_sd": float(acc.std()),
        "complex_recall_mean": float(np.mean(rec)), "complex_recall_sd": float(np.std(rec)),
        "complex_precision_mean": float(np.mean(prec)),
        "confusion_rows_true_cols_pred_summed_over_repeats": conf.tolist(),
        "groups": groups,
    }


# ----------------------------------------------------------------------------------------------- main
def read_static(emb_dir: Path):
    import numpy as np

    data = (emb_dir / "embeddings.bin").read_bytes()
    assert data[:4] == b"SBE1"
    rows, dims = np.frombuffer(data, dtype="<u4", count=2, offset=4)
    rows, dims = int(rows), int(dims)
    q = np.frombuffer(data, dtype=np.int8, count=rows * dims, offset=12).reshape(rows, dims)
    scales = np.frombuffer(data, dtype="<f4", count=rows, offset=12 + rows * dims)
    assert 12 + rows * dims + 4 * rows == len(data)
    tokens = (emb_dir / "tokens.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(tokens) == rows
    return q, scales, tokens


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=Path, default=None)
    ap.add_argument("--emb-dir", type=Path, default=derive.DEFAULT_OUT)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/switchboard-embeddings-eval-cache.npz"),
                    help="raw per-token states, reused between runs")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--venv", type=Path, default=derive.DEFAULT_VENV)
    args = ap.parse_args(argv)
    if os.environ.get("SWITCHBOARD_EMBEDDINGS_IN_VENV") != "1" and Path(sys.prefix).resolve() != args.venv.resolve():
        python = derive._venv_python(args.venv)
        if not python.exists():
            raise SystemExit(f"run scripts/derive-embeddings.py first (no virtualenv at {args.venv})")
        os.execve(str(python), [str(python), str(Path(__file__).resolve()), *argv],
                  dict(os.environ, SWITCHBOARD_EMBEDDINGS_IN_VENV="1"))
    import numpy as np

    cases_path = args.cases or (DEFAULT_TUNE if DEFAULT_TUNE.exists() else DEFAULT_EVAL)
    cases = load_cases(cases_path)
    texts = [c["text"] for c in cases]
    y = np.array([LEVELS.index(c["level"]) for c in cases])
    print(f"{len(cases)} cases from {cases_path}: " + ", ".join(f"{l} {int((y == i).sum())}" for i, l in enumerate(LEVELS)))

    files = derive.load_package_files()
    model = derive.MiniLM(derive.read_safetensors(files["model.safetensors"]), json.loads(files["config.json"]))
    tok = derive.WordPieceTokenizer(json.loads(files["tokenizer.json"]))
    cls_id, sep_id, unk = tok.vocab["[CLS]"], tok.vocab["[SEP]"], tok.unk_id

    # (a) the full transformer, one sentence at a time (what a server would do per request)
    ids_full = [derive.full_input_ids(tok, t, cls_id, sep_id) for t in texts]
    for ids in ids_full[:5]:
        model.sentence_embedding(ids)                      # warm-up
    lat = []
    full = np.zeros((len(texts), model.hidden))
    for i, ids in enumerate(ids_full):
        t0 = time.perf_counter()
        full[i] = model.sentence_embedding(ids)
        lat.append((time.perf_counter() - t0) * 1000)
    lat = np.array(lat)
    tok_counts = np.array([len(i) for i in ids_full])
    print(f"full pass (numpy, 1 BLAS thread, batch 1): mean {lat.mean():.2f} ms, median {np.median(lat):.2f} ms, "
          f"p95 {np.percentile(lat, 95):.2f} ms per sentence; {tok_counts.mean():.1f} tokens on average")

    # (b) the static model as shipped (int8 files)
    q, scales, tokens = read_static(args.emb_dir)
    t0 = time.perf_counter()
    wp_ids = [tok.encode(t) for t in texts]
    t_tok = (time.perf_counter() - t0) * 1000 / len(texts)
    t0 = time.perf_counter()
    static = np.stack([derive.static_embed(q, scales, ids, unk) for ids in wp_ids])
    t_pool = (time.perf_counter() - t0) * 1000 / len(texts)
    print(f"static (python): tokenize {t_tok * 1000:.0f} us + pool {t_pool * 1000:.0f} us per sentence")

    # variants of the static recipe, from the raw per-token states
    import re as _re
    vocab_list = tokens
    unused = _re.compile(r"\[unused\d+\]")
    kept = [i for i, t in enumerate(vocab_list) if not unused.match(t)]
    sha = derive.SAFETENSORS_SHA256
    if args.cache.exists() and str(np.load(args.cache)["sha"]) == sha:
        z = np.load(args.cache)
        raw_mean, raw_mid = z["mean"], z["mid"]
    else:
        t0 = time.perf_counter()
        raw_mean, raw_mid = derive.token_states(model, kept, cls_id, sep_id, middle=True)
        print(f"raw token states: {time.perf_counter() - t0:.1f} s")
        np.savez(args.cache, sha=sha, mean=raw_mean, mid=raw_mid)
    np.save(args.cache.with_suffix(".full.npy"), full)
    raw_input = model.word[kept]
    special = [tok.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]

    def table(raw, pca, sif):
        red, _ = derive.pca_sif(raw, pca, sif)
        rows = np.zeros((len(vocab_list), red.shape[1]))
        rows[kept] = red
        rows[special] = 0
        return rows

    def embed_rows(rows):
        out = np.zeros((len(texts), rows.shape[1]))
        for i, ids in enumerate(wp_ids):
            ids = [j for j in ids[: derive.MAX_RUNTIME_TOKENS] if j != unk]
            if ids:
                v = rows[ids].mean(axis=0)
                nv = np.linalg.norm(v)
                out[i] = v / nv if nv > 0 else v
        return out

    feature_sets = {
        "full transformer (mean pool, 384)": full,
        "static int8 as shipped": static,
        "static float, PCA 384, SIF 1e-3 (the shipped recipe before int8)": embed_rows(table(raw_mean, 384, 1e-3)),
        "static float, PCA 256, SIF 1e-4 (model2vec defaults)": embed_rows(table(raw_mean, 256, 1e-4)),
        "static float, PCA 256, SIF 1e-3": embed_rows(table(raw_mean, 256, 1e-3)),
        "static float, PCA 128, SIF 1e-3": embed_rows(table(raw_mean, 128, 1e-3)),
        "static float, PCA 384, SIF 1e-4": embed_rows(table(raw_mean, 384, 1e-4)),
        "static float, PCA 384, no SIF": embed_rows(table(raw_mean, 384, None)),
        "static float, no PCA (not centred), SIF 1e-3": embed_rows(table(raw_mean, None, 1e-3)),
        "static float, token-position state only, PCA 384, SIF 1e-3": embed_rows(table(raw_mid, 384, 1e-3)),
        "input word embeddings only (no forward), PCA 384, SIF 1e-3": embed_rows(table(raw_input, 384, 1e-3)),
    }
    cos_full_static = None
    results = {}
    for name, X in feature_sets.items():
        t0 = time.perf_counter()
        preds, lams = cross_validate(X, y, repeats=args.repeats)
        res = summarize(preds, y, cases)
        res["lambdas_chosen"] = sorted(set(lams))
        res["seconds"] = round(time.perf_counter() - t0, 1)
        kn = summarize(knn_cross_validate(X, y, repeats=args.repeats), y, cases)
        res["knn5"] = {k: kn[k] for k in ("accuracy_mean", "accuracy_sd", "complex_recall_mean", "complex_recall_sd")}
        results[name] = res
        print(f"{name:62s} logreg acc {res['accuracy_mean']:.3f}±{res['accuracy_sd']:.3f} complex recall "
              f"{res['complex_recall_mean']:.3f}±{res['complex_recall_sd']:.3f} | kNN acc {kn['accuracy_mean']:.3f} "
              f"complex recall {kn['complex_recall_mean']:.3f} ({res['seconds']} s)", flush=True)
    # how close static similarities are to full ones (pairwise cosine correlation on the eval texts)
    iu = np.triu_indices(len(texts), 1)
    cf = (full @ full.T)[iu]
    cs = (static @ static.T)[iu]
    cos_full_static = float(np.corrcoef(cf, cs)[0, 1])
    print(f"Pearson r of pairwise cosines, full vs static int8: {cos_full_static:.3f}")

    out = {
        "cases_file": str(cases_path), "n_cases": len(cases),
        "levels": {l: int((y == i).sum()) for i, l in enumerate(LEVELS)},
        "languages_guessed": {k: sum(c["lang"] == k for c in cases) for k in sorted({c["lang"] for c in cases})},
        "cv": f"{args.repeats} x stratified 5-fold, lambda from {list(LAMBDAS)} by inner 4-fold CV, standardised features",
        "full_pass_ms": {"mean": float(lat.mean()), "median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)),
                         "max": float(lat.max()), "mean_tokens": float(tok_counts.mean())},
        "static_python_us": {"tokenize": t_tok * 1000, "pool": t_pool * 1000},
        "pairwise_cosine_pearson_full_vs_static": cos_full_static,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
