#!/usr/bin/env python3
"""torch_ref.py - the nvwa model (design section 6) in PyTorch, written from the design.

Two jobs (docs/torch_ref.md):

  --check MODEL.safetensors --batches DUMP.h5 [--device cpu|cuda] [--dtype fp64|fp32]
          [--grads OUT.safetensors] [--grad-batch K] [--attn auto|sdpa|flex]
      Loads an `nvwa-ckpt export` file (design section 6 names, config from __metadata__),
      runs forward and backward on every global batch of an `nvwa-train --dump-batches`
      file and prints one JSON line per batch: loss, mlm_loss, struct_loss, counts and the
      gradient norm. --grads writes the gradients of global batch K (default 0) as F64
      safetensors with the same names, to compare with nvwa's (tests/torch/nvwa_loss.c).

  --bench CONFIG.ini [--seq 1024] [--micro-batch N] [--steps N] [--warmup N]
          [--batches DUMP.h5] [--attn auto|flex|sdpa] [--no-compile] [--recompute] [--out F.md]
      Training-step throughput on a GPU: bf16 autocast, torch.compile, flex attention with a
      block mask from segment ids and positions (SDPA with a dense boolean mask when flex is
      not available), fused AdamW, global-norm clipping. Steps are timed with CUDA events
      after warm-up; prints tokens/s, TFLOP/s (design section 11 formula), MFU, peak memory,
      and writes bench/results/torch_ref-<date>.md with date, device, commit and config.

  --self-test
      The attention masks (vectorized SDPA mask and flex mask_mod) against an explicit
      per-(query, key) loop; flex against SDPA where flex runs; RoPE properties. Exit 0/1.

Conventions (independent of model/*.c, from the design): rows pack `<cls> seq <eos>`
segments numbered 1.. per row, pads are segment 0 at position 0. A real query attends to the
keys of its own segment, and on local layers (l % global-attn-every != 0) only to those with
|pos_q - pos_k| <= local-window // 2 (positions are contiguous in a segment, so this is the
design's |i - j|). Pads attend to pads only: their outputs never reach a loss, and no row is
fully masked (which would give NaN in SDPA).
"""
import argparse
import configparser
import datetime
import json
import math
import os
import subprocess
import sys
import time

PROG = "torch_ref.py"


def die(msg, code=1):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def need(*mods):
    """Import the named modules or exit with one clear line naming what to install."""
    out = []
    pip = {"torch": "torch", "safetensors": "safetensors", "h5py": "h5py", "numpy": "numpy"}
    for m in mods:
        try:
            out.append(__import__(m))
        except ImportError as e:
            die(f"this mode needs the Python package '{m}' ({e}); install it with "
                f"`pip install {pip.get(m, m)}`")
    return out


# ---------------------------------------------------------------------------------------
# config

MODEL_KEYS = ["num-layers", "hidden-size", "ffn-hidden-size", "num-attn-heads", "vocab-size",
              "local-window", "global-attn-every", "rope-theta-global", "rope-theta-local",
              "structure-input", "first-attn-norm", "struct-loss-weight"]


def _bool(s):
    v = str(s).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {s!r}")


class Cfg:
    """The [model] keys of design section 10 (from export metadata or an INI file)."""

    def __init__(self, kv):
        try:
            self.L = int(kv["num-layers"])
            self.d = int(kv["hidden-size"])
            self.f = int(kv["ffn-hidden-size"])
            self.H = int(kv["num-attn-heads"])
            self.V = int(kv.get("vocab-size", 16))
            self.window = int(kv["local-window"])
            self.global_every = int(kv["global-attn-every"])
            self.theta_g = float(kv["rope-theta-global"])
            self.theta_l = float(kv["rope-theta-local"])
            self.struct_input = _bool(kv.get("structure-input", "true"))
            # layer 0's attention LayerNorm; false (nvwa's default) as in ModernBERT
            self.first_ln = _bool(kv.get("first-attn-norm", "false"))
            self.w = float(kv.get("struct-loss-weight", "0.5"))
        except KeyError as e:
            die(f"model config: missing key {e}")
        except ValueError as e:
            die(f"model config: {e}")
        if self.d % self.H or (self.d // self.H) % 2:
            die(f"model config: hidden-size {self.d} / heads {self.H} must give an even head size")
        self.dh = self.d // self.H

    def is_global(self, l):
        return self.global_every <= 0 or l % self.global_every == 0

    def as_dict(self):
        return {"num-layers": self.L, "hidden-size": self.d, "ffn-hidden-size": self.f,
                "num-attn-heads": self.H, "vocab-size": self.V, "local-window": self.window,
                "global-attn-every": self.global_every, "rope-theta-global": self.theta_g,
                "rope-theta-local": self.theta_l, "structure-input": self.struct_input,
                "first-attn-norm": self.first_ln, "struct-loss-weight": self.w}


def read_ini(path, overrides=()):
    """nvwa's INI with configparser: hyphenated keys, ';' and '#' inline comments."""
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    try:
        with open(path) as fh:
            cp.read_file(fh)
    except (OSError, configparser.Error) as e:
        die(f"{path}: {e}")
    for o in overrides:
        key, _, val = o.partition("=")
        sec, _, k = key.partition(".")
        if not k or not _:
            die(f"override {o!r}: expected section.key=value")
        if not cp.has_section(sec):
            cp.add_section(sec)
        cp.set(sec, k, val)
    return cp


# ---------------------------------------------------------------------------------------
# the model

def param_shapes(c):
    """Design section 6 tensor names and shapes, in the table's order."""
    d, f, V = c.d, c.f, c.V
    s = [("embed.tok", (V, d))]
    if c.struct_input:
        s.append(("embed.struct", (4, d)))
    s.append(("embed.norm.weight", (d,)))
    for l in range(c.L):
        if l > 0 or c.first_ln:
            s.append((f"layers.{l}.attn_norm.weight", (d,)))
        s += [(f"layers.{l}.attn.wqkv", (3 * d, d)),
              (f"layers.{l}.attn.wo", (d, d)), (f"layers.{l}.mlp_norm.weight", (d,)),
              (f"layers.{l}.mlp.w_in", (2 * f, d)), (f"layers.{l}.mlp.w_out", (d, f))]
    s += [("final_norm.weight", (d,)), ("head.mlm.dense", (d, d)), ("head.mlm.norm.weight", (d,)),
          ("head.mlm.bias", (V,)), ("head.struct.weight", (3, d)), ("head.struct.bias", (3,))]
    return s


def build_model_class(torch):
    nn, F = torch.nn, torch.nn.functional

    class Holder(nn.Module):
        pass

    def rope(x, pos, theta):
        """x [B, S, H, dh]; rotate-half: pair (i, i + dh/2) turns by pos * theta^(-2i/dh).
        Angles in float64 (pos * freq reaches ~1e3 rad at 1k tokens)."""
        dh = x.shape[-1]
        half = dh // 2
        inv = theta ** (-2.0 * torch.arange(half, device=x.device, dtype=torch.float64) / dh)
        ang = pos.to(torch.float64)[..., None] * inv            # [B, S, half]
        cos = torch.cos(ang).to(x.dtype)[:, :, None, :]
        sin = torch.sin(ang).to(x.dtype)[:, :, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    class NvwaRef(nn.Module):
        """Parameters carry the design's names exactly (named_parameters() == export names)."""

        def __init__(self, c, dtype=torch.float32, device="cpu"):
            super().__init__()
            self.c = c
            self.attn_impl = "sdpa"
            self.recompute = False
            self._p = {}                    # name -> Parameter (plain lookups, compile-friendly)
            for name, shape in param_shapes(c):
                self._p[name] = nn.Parameter(torch.zeros(shape, dtype=dtype, device=device))
                self._add(name, self._p[name])

        def _add(self, dotted, p):
            *path, leaf = dotted.split(".")
            m = self
            for part in path:
                if not hasattr(m, part):
                    m.add_module(part, Holder())
                m = getattr(m, part)
            m.register_parameter(leaf, p)

        def P(self, name):
            return self._p[name]

        def init_weights(self, seed=0):
            """Design init (truncated normal 0.02, out projections / sqrt(2L)); the RNG is
            torch's, not nvwa's counter RNG: for benchmarks only."""
            g = torch.Generator(device="cpu").manual_seed(seed)
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if name.endswith("norm.weight"):
                        p.fill_(1)
                    elif name.endswith("bias"):
                        p.zero_()
                    else:
                        std = 0.02 / (math.sqrt(2 * self.c.L) if name.endswith(("attn.wo", "mlp.w_out")) else 1)
                        t = torch.empty(p.shape, dtype=torch.float32)
                        torch.nn.init.trunc_normal_(t, 0, std, -2 * std, 2 * std, generator=g)
                        p.copy_(t)

        @staticmethod
        def ln(x, w):
            return F.layer_norm(x, (x.shape[-1],), w, None, 1e-5)

        def _layer(self, l, x, pos, mask):
            c = self.c
            B, S, d = x.shape
            pre = f"layers.{l}."
            # layer 0 attends over LN_emb's output unless first-attn-norm
            a = self.ln(x, self.P(pre + "attn_norm.weight")) if l > 0 or c.first_ln else x
            qkv = a @ self.P(pre + "attn.wqkv").t()                 # [B, S, 3d] rows q|k|v
            q, k, v = qkv.view(B, S, 3, c.H, c.dh).unbind(2)         # head-major
            theta = c.theta_g if c.is_global(l) else c.theta_l
            q, k = rope(q, pos, theta), rope(k, pos, theta)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))          # [B, H, S, dh]
            o = self._attend(q, k, v, mask)
            o = o.transpose(1, 2).reshape(B, S, d)
            x = x + o @ self.P(pre + "attn.wo").t()
            m = self.ln(x, self.P(pre + "mlp_norm.weight"))
            gu = m @ self.P(pre + "mlp.w_in").t()
            g, u = gu.split(c.f, dim=-1)                              # rows gate | up
            return x + (F.gelu(g, approximate="tanh") * u) @ self.P(pre + "mlp.w_out").t()

        def _attend(self, q, k, v, mask):
            scale = 1.0 / math.sqrt(self.c.dh)
            if self.attn_impl == "flex":
                return _flex_attention()(q, k, v, block_mask=mask, scale=scale)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

        def trunk(self, tok, sin, pos, masks):
            """tok, sin, pos [B, S] int; masks (global, local) from make_masks. -> h [B, S, d]"""
            x = self.P("embed.tok")[tok]
            if self.c.struct_input:
                x = x + self.P("embed.struct")[sin]
            x = self.ln(x, self.P("embed.norm.weight"))
            for l in range(self.c.L):
                mask = masks[0] if self.c.is_global(l) else masks[1]
                if self.recompute and self.training:
                    x = torch.utils.checkpoint.checkpoint(self._layer, l, x, pos, mask,
                                                          use_reentrant=False)
                else:
                    x = self._layer(l, x, pos, mask)
            return self.ln(x, self.P("final_norm.weight"))

        def heads(self, h, mlm_idx, mlm_tgt, st_idx, st_tgt):
            """Summed CEs (fp32 or the model dtype, whichever is wider) over the selected
            flat positions: MLM head tied to embed.tok, structure head."""
            d = self.c.d
            hf = h.reshape(-1, d)
            hs = hf[mlm_idx]
            t = F.gelu(hs @ self.P("head.mlm.dense").t(), approximate="tanh")
            t = self.ln(t, self.P("head.mlm.norm.weight"))
            logits = t @ self.P("embed.tok").t() + self.P("head.mlm.bias")
            acc = torch.float64 if h.dtype == torch.float64 else torch.float32
            mlm = F.cross_entropy(logits.to(acc), mlm_tgt, reduction="sum")
            sl = hf[st_idx] @ self.P("head.struct.weight").t() + self.P("head.struct.bias")
            st = F.cross_entropy(sl.to(acc), st_tgt, reduction="sum")
            return mlm, st

    NvwaRef.rope = staticmethod(rope)
    return NvwaRef


_FLEX = None


def _flex_attention():
    global _FLEX
    if _FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention
        _FLEX = flex_attention
    return _FLEX


def flex_available(torch):
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa
        return True
    except Exception:
        return False


def mask_mod_for(seg, pos, radius):
    """flex mask_mod: same segment (pads: segment 0 with each other), and on local layers
    |pos_q - pos_k| <= radius. radius None: global."""
    def mod(b, h, qi, ki):
        same = seg[b, qi] == seg[b, ki]
        if radius is None:
            return same
        return same & ((pos[b, qi] - pos[b, ki]).abs() <= radius)
    return mod


def dense_mask(torch, seg, pos, radius):
    """SDPA boolean mask [B, 1, S, S] (True = may attend), vectorized."""
    m = seg[:, :, None] == seg[:, None, :]
    if radius is not None:
        m = m & ((pos[:, :, None] - pos[:, None, :]).abs() <= radius)
    return m[:, None]


def make_masks(torch, c, seg, pos, impl, compile_mask=True):
    """(global mask, local mask) for the batch, either dense (sdpa) or flex block masks."""
    r = c.window // 2
    if impl == "flex":
        from torch.nn.attention.flex_attention import create_block_mask
        B, S = seg.shape
        kw = dict(B=B, H=None, Q_LEN=S, KV_LEN=S, device=seg.device)

        def bm(mod):
            if compile_mask:
                try:
                    return create_block_mask(mod, _compile=True, **kw)
                except TypeError:  # a torch without the _compile switch
                    pass
            return create_block_mask(mod, **kw)
        return bm(mask_mod_for(seg, pos, None)), bm(mask_mod_for(seg, pos, r))
    return dense_mask(torch, seg, pos, None), dense_mask(torch, seg, pos, r)


def loop_mask(seg, pos, radius):
    """The explicit reference: for every (row, query, key) in plain Python."""
    B, S = len(seg), len(seg[0])
    out = [[[False] * S for _ in range(S)] for _ in range(B)]
    for b in range(B):
        for i in range(S):
            for j in range(S):
                if seg[b][i] != seg[b][j]:
                    continue
                if seg[b][i] == 0:                     # pads: with each other only
                    out[b][i][j] = True
                    continue
                if radius is not None and abs(i - j) > radius:  # design: |i - j| in a segment
                    continue
                out[b][i][j] = True
    return out


# ---------------------------------------------------------------------------------------
# FLOPs (design section 11, as model/flops.c counts them)

def attn_pairs(n, window):
    if n <= 0:
        return 0
    r = window // 2
    if window <= 0 or n <= r + 1:
        return n * n
    return n * (2 * r + 1) - r * (r + 1)


def flops_per_step(c, seg_lens, n_selected):
    ng = sum(1 for l in range(c.L) if c.is_global(l))
    nl = c.L - ng
    N = c.L * (4 * c.d * c.d + 3 * c.d * c.f)
    T = float(sum(seg_lens))
    attn = sum(12.0 * c.d * (ng * attn_pairs(n, 0) + nl * attn_pairs(n, c.window)) for n in seg_lens)
    heads = 6.0 * n_selected * (c.d * c.d + c.d * c.V) + 6.0 * T * 3.0 * c.d
    return 6.0 * N * T + attn + heads


def segment_lengths(seg_rows):
    """Lengths of the maximal runs of equal non-zero segment id per row (numpy rows)."""
    out = []
    for row in seg_rows:
        i, S = 0, len(row)
        while i < S:
            if row[i] == 0:
                i += 1
                continue
            j = i
            while j < S and row[j] == row[i]:
                j += 1
            out.append(j - i)
            i = j
    return out


# ---------------------------------------------------------------------------------------
# batches

FIELDS = ["input", "target", "struct_in", "struct_target", "mlm_mask", "struct_mask",
          "segment", "position"]


def read_dump(h5py, np, path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        die(f"{path}: {e}")
    with f:
        missing = [k for k in FIELDS if k not in f]
        if missing:
            die(f"{path}: not an nvwa-train --dump-batches file (missing {', '.join(missing)})")
        data = {k: np.asarray(f[k][...]) for k in FIELDS}
        gb = int(f.attrs.get("global_batch", data["input"].shape[0]))
    return data, gb


def to_device_batch(torch, np, rows, device):
    """numpy rows (dict of [B, S]) -> torch tensors + selections in flat row-major order."""
    t = {k: torch.as_tensor(np.ascontiguousarray(rows[k]).astype(np.int64), device=device)
         for k in ("input", "struct_in", "segment", "position", "target", "struct_target")}
    mm = rows["mlm_mask"].reshape(-1) != 0
    sm = (rows["struct_mask"].reshape(-1) != 0) & (rows["struct_target"].reshape(-1) >= 0)
    mlm_idx = np.nonzero(mm)[0]
    st_idx = np.nonzero(sm)[0]
    t["mlm_idx"] = torch.as_tensor(mlm_idx, device=device)
    t["mlm_tgt"] = torch.as_tensor(rows["target"].reshape(-1)[mlm_idx].astype(np.int64), device=device)
    t["st_idx"] = torch.as_tensor(st_idx, device=device)
    t["st_tgt"] = torch.as_tensor(rows["struct_target"].reshape(-1)[st_idx].astype(np.int64),
                                  device=device)
    t["n_mlm"], t["n_st"] = int(len(mlm_idx)), int(len(st_idx))
    t["seg_lens"] = segment_lengths(rows["segment"])
    return t


def synthetic_rows(np, rows, S, rng, mask_rate=0.15):
    """Packed rows like nvwa's loader makes them: <cls> seq <eos> segments, pads at the tail;
    sequence lengths log-uniform on [20, 2 S] cropped to S - 2 (benchmark input only)."""
    out = {k: np.zeros((rows, S), dtype=np.int32) for k in FIELDS}
    out["struct_target"][:] = -1
    for r in range(rows):
        at, s = 0, 0
        while S - at >= 3:
            n = int(math.exp(rng.uniform(math.log(20), math.log(2 * S))))
            n = max(1, min(n, S - 2, S - at - 2))
            s += 1
            sl = slice(at, at + n + 2)
            nt = rng.integers(5, 9, size=n)
            tok = np.concatenate(([1], nt, [2]))
            out["target"][r, sl] = tok
            out["input"][r, sl] = tok
            out["segment"][r, sl] = s
            out["position"][r, sl] = np.arange(n + 2)
            lab = rng.integers(0, 3, size=n)
            sel = rng.random(n) < mask_rate
            hide = sel | (rng.random() < 0.5)
            inp = out["input"][r, at + 1:at + 1 + n]
            inp[sel] = 3
            out["mlm_mask"][r, at + 1:at + 1 + n] = sel
            out["struct_target"][r, at + 1:at + 1 + n] = lab
            out["struct_in"][r, at + 1:at + 1 + n] = np.where(hide, 0, lab + 1)
            out["struct_mask"][r, at + 1:at + 1 + n] = hide
            at += n + 2
    return out


# ---------------------------------------------------------------------------------------
# --check

def cmd_check(a):
    torch, np, h5py = need("torch", "numpy", "h5py")
    (safetensors,) = need("safetensors")
    from safetensors import safe_open
    dtype = {"fp64": torch.float64, "fp32": torch.float32}[a.dtype]
    device = a.device
    if device == "cuda" and not torch.cuda.is_available():
        die("--device cuda: no CUDA device visible to torch")
    try:
        fh = safe_open(a.check, framework="pt", device="cpu")
    except Exception as e:
        die(f"{a.check}: cannot read as safetensors: {e}")
    meta = dict(fh.metadata() or {})
    if meta.get("format") != "nvwa":
        die(f"{a.check}: no __metadata__ format=nvwa (not an `nvwa-ckpt export` file)")
    if "first-attn-norm" not in meta:   # exported before the key existed: read the tensors
        meta["first-attn-norm"] = str("layers.0.attn_norm.weight" in fh.keys())
    c = Cfg(meta)
    Model = build_model_class(torch)
    model = Model(c, dtype=dtype, device=device)
    names = set(fh.keys())
    want = dict(param_shapes(c))
    if set(want) != names:
        die(f"{a.check}: tensors differ from design section 6: missing "
            f"{sorted(set(want) - names)[:4]}, unexpected {sorted(names - set(want))[:4]}")
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = fh.get_tensor(name)
            if tuple(t.shape) != want[name]:
                die(f"{a.check}: {name} has shape {tuple(t.shape)}, expected {want[name]}")
            p.copy_(t.to(dtype))
    impl = a.attn
    if impl == "auto":
        impl = "flex" if device == "cuda" and flex_available(torch) else "sdpa"
    if impl == "flex" and not flex_available(torch):
        die("--attn flex: torch.nn.attention.flex_attention is not available in this torch")
    model.attn_impl = impl
    # flex_attention has no CPU backward (torch 2.x): forward only there
    want_grad = not (impl == "flex" and device == "cpu")
    if a.grads and not want_grad:
        die("--grads with --attn flex needs --device cuda (flex has no backward on CPU)")
    torch.set_grad_enabled(want_grad)
    data, gb = read_dump(h5py, np, a.batches)
    nrows = data["input"].shape[0]
    if nrows % gb:
        die(f"{a.batches}: {nrows} rows is not a multiple of global_batch {gb}")
    grads_written = False
    for g in range(nrows // gb):
        rows = {k: v[g * gb:(g + 1) * gb] for k, v in data.items()}
        b = to_device_batch(torch, np, rows, device)
        masks = make_masks(torch, c, b["segment"], b["position"], impl, compile_mask=False)
        model.zero_grad(set_to_none=True)
        h = model.trunk(b["input"], b["struct_in"], b["position"], masks)
        mlm_sum, st_sum = model.heads(h, b["mlm_idx"], b["mlm_tgt"], b["st_idx"], b["st_tgt"])
        mlm = mlm_sum / b["n_mlm"] if b["n_mlm"] else mlm_sum * 0
        st = st_sum / b["n_st"] if b["n_st"] else st_sum * 0
        loss = mlm + c.w * st
        gn = None
        if want_grad:
            loss.backward()
            gn = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in model.parameters()
                               if p.grad is not None))
        print(json.dumps({"batch": g, "loss": loss.item(), "mlm_loss": mlm.item(),
                          "struct_loss": st.item(), "n_mlm": b["n_mlm"], "n_struct": b["n_st"],
                          "grad_norm": gn, "attn": impl, "dtype": a.dtype}), flush=True)
        if a.grads and g == a.grad_batch:
            from safetensors.torch import save_file
            out = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach()
                   .to(torch.float64).cpu().contiguous() for n, p in model.named_parameters()}
            save_file(out, a.grads, metadata={"format": "nvwa-grads", "source": "torch_ref"})
            grads_written = True
    if a.grads and not grads_written:
        die(f"--grad-batch {a.grad_batch}: the dump has only {nrows // gb} global batches")


# ---------------------------------------------------------------------------------------
# --compare-grads (used by tests/torch): max |a - b| / max |b| per tensor

def cmd_compare_grads(a):
    torch, = need("torch")
    need("safetensors")
    from safetensors.torch import load_file
    x, y = load_file(a.compare_grads[0]), load_file(a.compare_grads[1])
    if set(x) != set(y):
        die(f"tensor names differ: {sorted(set(x) ^ set(y))[:6]}")
    worst, worst_name = 0.0, ""
    for n in sorted(x):
        xa, yb = x[n].double(), y[n].double()
        if xa.shape != yb.shape:
            die(f"{n}: shapes {tuple(xa.shape)} vs {tuple(yb.shape)}")
        scale = float(yb.abs().max())
        err = float((xa - yb).abs().max())
        rel = err / scale if scale > 0 else err
        if a.verbose:
            print(f"{n:32s} max|g|={scale:.3e} max|diff|={err:.3e} rel={rel:.3e}")
        if rel > worst:
            worst, worst_name = rel, n
    print(json.dumps({"max_rel_diff": worst, "tensor": worst_name, "tensors": len(x),
                      "rtol": a.rtol, "ok": worst <= a.rtol}))
    sys.exit(0 if worst <= a.rtol else 1)


# ---------------------------------------------------------------------------------------
# --self-test

def cmd_self_test(a):
    torch, np = need("torch", "numpy")
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    ok = True

    def report(name, good, extra=""):
        nonlocal ok
        ok &= bool(good)
        print(f"{'ok  ' if good else 'FAIL'} {name} {extra}".rstrip())

    # packed rows with several segments, a pad tail, a segment longer than the window
    B, S = 3, 48
    rows = synthetic_rows(np, B, S, rng)
    rows["segment"][1, :] = 0
    rows["position"][1, :] = 0
    lens = [30, 10]                                 # row 1: explicit, with a pad tail
    at = 0
    for s, n in enumerate(lens, 1):
        rows["segment"][1, at:at + n] = s
        rows["position"][1, at:at + n] = np.arange(n)
        at += n
    pad = rows["segment"] == 0
    for k in ("input", "target", "struct_in", "mlm_mask", "struct_mask"):
        rows[k][pad] = 0
    rows["struct_target"][pad] = -1
    c = Cfg({"num-layers": 3, "hidden-size": 32, "ffn-hidden-size": 64, "num-attn-heads": 4,
             "local-window": 8, "global-attn-every": 3, "rope-theta-global": 160000,
             "rope-theta-local": 10000})
    seg = torch.as_tensor(rows["segment"].astype(np.int64))
    pos = torch.as_tensor(rows["position"].astype(np.int64))
    for radius in (None, c.window // 2):
        ref = torch.tensor(loop_mask(rows["segment"].tolist(), rows["position"].tolist(), radius))
        dm = dense_mask(torch, seg, pos, radius)[:, 0]
        report(f"dense mask == loop mask ({'global' if radius is None else f'radius {radius}'})",
               torch.equal(dm, ref), f"{int(ref.sum())} visible pairs")
        if flex_available(torch):
            try:
                from torch.nn.attention.flex_attention import create_mask
                fm = create_mask(mask_mod_for(seg, pos, radius), B, None, S, S, device="cpu")
                report(f"flex mask_mod == loop mask ({'global' if radius is None else f'radius {radius}'})",
                       torch.equal(fm[:, 0].bool(), ref))
            except Exception as e:  # flex present but not usable on this build/device
                print(f"skip flex create_mask on cpu: {type(e).__name__}: {e}")
    # flex_attention against SDPA with the dense mask (where flex runs on this device)
    if flex_available(torch):
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            q, k, v = (torch.randn(B, 2, 128, 16, device=dev) for _ in range(3))
            S2 = 128
            rows2 = synthetic_rows(np, B, S2, rng)
            seg2 = torch.as_tensor(rows2["segment"].astype(np.int64), device=dev)
            pos2 = torch.as_tensor(rows2["position"].astype(np.int64), device=dev)
            for radius in (None, 8):
                from torch.nn.attention.flex_attention import create_block_mask, flex_attention
                bm = create_block_mask(mask_mod_for(seg2, pos2, radius), B, None, S2, S2, device=dev)
                fo = flex_attention(q, k, v, block_mask=bm, scale=0.25)
                so = torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, attn_mask=dense_mask(torch, seg2, pos2, radius), scale=0.25)
                err = float((fo - so).abs().max())
                report(f"flex_attention == SDPA on {dev} ({'global' if radius is None else f'radius {radius}'})",
                       err < 1e-4, f"max diff {err:.2e}")
        except Exception as e:
            print(f"skip flex_attention on {dev}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
    else:
        print("skip flex: torch.nn.attention.flex_attention not available")
    # RoPE: rotation (norm kept), relative (q.k depends on pos_q - pos_k only), pair layout
    Model = build_model_class(torch)
    x = torch.randn(1, 1, 2, 8, dtype=torch.float64)
    y = torch.randn(1, 1, 2, 8, dtype=torch.float64)

    def rp(t, p):
        return Model.rope(t, torch.tensor([[p]]), 10000.0)

    d1 = (rp(x, 5) * rp(y, 2)).sum(-1)
    d2 = (rp(x, 13) * rp(y, 10)).sum(-1)
    report("rope: q.k depends on the offset only", torch.allclose(d1, d2, atol=1e-12))
    report("rope: norm kept", torch.allclose(rp(x, 7).norm(dim=-1), x.norm(dim=-1), atol=1e-12))
    e = torch.zeros(1, 1, 1, 8, dtype=torch.float64)
    e[..., 1] = 1                                  # pair (1, 5), angle pos * theta^(-2/8)
    r = rp(e, 3)[0, 0, 0]
    ang = 3 * 10000.0 ** (-2.0 / 8)
    report("rope: pair (i, i + dh/2), angle pos theta^(-2i/dh)",
           abs(float(r[1]) - math.cos(ang)) < 1e-12 and abs(float(r[5]) - math.sin(ang)) < 1e-12)
    # FLOPs helper: K(n) by brute force
    good = all(attn_pairs(n, w) == sum(1 for i in range(n) for j in range(n)
                                       if w == 0 or abs(i - j) <= w // 2)
               for n in (1, 5, 9, 17, 40) for w in (0, 8, 16))
    report("attn_pairs == brute-force count", good)
    # a whole forward/backward in fp64 on a random model: finite, and pads do not matter
    model = Model(c, dtype=torch.float64)
    model.init_weights(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    b = to_device_batch(torch, np, rows, "cpu")
    masks = make_masks(torch, c, b["segment"], b["position"], "sdpa")
    h = model.trunk(b["input"], b["struct_in"], b["position"], masks)
    m1, s1 = model.heads(h, b["mlm_idx"], b["mlm_tgt"], b["st_idx"], b["st_tgt"])
    tok2 = b["input"].clone()
    tok2[b["segment"] == 0] = 9                    # change the pads: no effect on the loss
    h2 = model.trunk(tok2, b["struct_in"], b["position"], masks)
    m2, s2 = model.heads(h2, b["mlm_idx"], b["mlm_tgt"], b["st_idx"], b["st_tgt"])
    with torch.no_grad():
        m2, s2 = m2.detach(), s2.detach()
    report("pads never reach the loss", float((m1 - m2).abs() + (s1 - s2).abs()) == 0.0,
           f"mlm {float(m1):.6f} struct {float(s1):.6f}")
    (m1 + s1).backward()
    report("gradients finite", all(bool(torch.isfinite(p.grad).all()) for p in model.parameters()
                                   if p.grad is not None))
    sys.exit(0 if ok else 1)


# ---------------------------------------------------------------------------------------
# --bench

def git_commit():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        h = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return h + ("-dirty" if dirty else "")
    except Exception:
        return "unknown"


def cmd_bench(a):
    torch, np = need("torch", "numpy")
    cuda = a.device == "cuda" or a.device is None
    if cuda and not torch.cuda.is_available():
        die("--bench needs a CUDA GPU visible to torch (torch.cuda.is_available() is False); "
            "`--device cpu` runs the same step on the CPU as a smoke test (timings meaningless)")
    cp = read_ini(a.bench, a.set or [])
    if not cp.has_section("model"):
        die(f"{a.bench}: no [model] section")
    c = Cfg(dict(cp["model"]))
    data_sec = cp["data"] if cp.has_section("data") else {}
    S = a.seq or int(data_sec.get("seq-length", 1024))
    mb = a.micro_batch or int(data_sec.get("micro-batch", 8))
    osec = cp["optim"] if cp.has_section("optim") else {}
    lr = float(osec.get("lr", 3e-4))
    betas = (float(osec.get("beta1", 0.9)), float(osec.get("beta2", 0.98)))
    eps = float(osec.get("eps", 1e-8))
    wd = float(osec.get("weight-decay", 0.01))
    clip = float(osec.get("grad-clip", 1.0))
    dev = torch.device("cuda" if cuda else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    impl = a.attn
    if impl == "auto":  # flex has no backward on CPU
        impl = "flex" if cuda and flex_available(torch) else "sdpa"
    if impl == "flex" and not flex_available(torch):
        die("--attn flex: torch.nn.attention.flex_attention is not available in this torch")

    Model = build_model_class(torch)
    model = Model(c, dtype=torch.float32, device=dev)
    model.init_weights(a.seed)
    model.attn_impl = impl
    model.recompute = a.recompute
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and not n.startswith("embed.")]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim == 2 and not n.startswith("embed."))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=betas, eps=eps, fused=cuda)

    # input batches: the dump's rows (nvwa's own packing) or synthetic packed rows
    pool = []
    if a.batches:
        h5py, = need("h5py")
        data, _ = read_dump(h5py, np, a.batches)
        if data["input"].shape[1] != S:
            die(f"{a.batches}: seq-length {data['input'].shape[1]}, --seq {S}")
        nb = data["input"].shape[0] // mb
        if nb == 0:
            die(f"{a.batches}: fewer than --micro-batch {mb} rows")
        for i in range(min(nb, 8)):
            pool.append({k: v[i * mb:(i + 1) * mb] for k, v in data.items()})
        source = f"dump {os.path.basename(a.batches)}"
    else:
        rng = np.random.default_rng(a.seed)
        for _ in range(4):
            pool.append(synthetic_rows(np, mb, S, rng))
        source = "synthetic packing (log-uniform lengths 20..2S, cropped)"
    batches = [to_device_batch(torch, np, r, dev) for r in pool]

    trunk = model.trunk
    if not a.no_compile:
        trunk = torch.compile(model.trunk, dynamic=False)  # fixed [micro-batch, seq] shapes

    def step(b):
        masks = make_masks(torch, c, b["segment"], b["position"], impl)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            h = trunk(b["input"], b["struct_in"], b["position"], masks)
            mlm_sum, st_sum = model.heads(h, b["mlm_idx"], b["mlm_tgt"], b["st_idx"], b["st_tgt"])
        loss = mlm_sum / max(b["n_mlm"], 1) + c.w * st_sum / max(b["n_st"], 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    t0 = time.time()
    a.warmup = max(a.warmup, len(batches))  # every input batch seen (and compiled for) once
    for i in range(a.warmup):
        loss = step(batches[i % len(batches)])
    sync()
    warm_s = time.time() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(a.steps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(a.steps)]
    else:  # CPU smoke test: wall clock
        class _Ev:
            def record(self):
                self.t = time.perf_counter()

            def elapsed_time(self, other):
                return (other.t - self.t) * 1e3
        starts = [_Ev() for _ in range(a.steps)]
        ends = [_Ev() for _ in range(a.steps)]
    tok = flops = 0.0
    for i in range(a.steps):
        b = batches[i % len(batches)]
        starts[i].record()
        loss = step(b)
        ends[i].record()
        tok += sum(b["seg_lens"])
        flops += flops_per_step(c, b["seg_lens"], b["n_mlm"])
    sync()
    times = [s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends)]
    total = sum(times)
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else 0.0
    res = {
        "device": torch.cuda.get_device_name() if cuda else "cpu (smoke test)", "torch": torch.__version__, "commit": git_commit(),
        "date": datetime.date.today().isoformat(), "config": a.bench, "params": n_params,
        "seq": S, "micro_batch": mb, "attn": impl, "compile": not a.no_compile,
        "recompute": a.recompute, "steps": a.steps, "warmup": a.warmup, "warmup_s": warm_s,
        "step_s": total / a.steps, "step_s_median": sorted(times)[len(times) // 2],
        "tokens_per_step": tok / a.steps, "tokens_per_s": tok / total,
        "padded_tokens_per_s": mb * S * a.steps / total,
        "tflops": flops / total / 1e12, "mfu_h100": flops / total / 989e12,
        "peak_mem_gib": peak, "final_loss": float(loss), "input": source,
    }
    print("| device | config | params | seq | micro-batch | attn | step s | tokens/s | TFLOP/s | MFU (989T) | peak GiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    row = (f"| {res['device']} | {os.path.basename(a.bench)} | {n_params / 1e6:.1f}M | {S} | {mb} | "
           f"{impl}{'' if a.no_compile else '+compile'}{'+recompute' if a.recompute else ''} | "
           f"{res['step_s']:.4f} | {res['tokens_per_s']:.0f} | {res['tflops']:.1f} | "
           f"{100 * res['mfu_h100']:.1f}% | {peak:.1f} |")
    print(row)
    print(json.dumps(res))
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                f"torch_ref-{res['date']}.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    new = not os.path.exists(out)
    with open(out, "a") as fh:
        if new:
            fh.write("# torch_ref.py --bench: PyTorch reference training step (docs/torch_ref.md)\n\n"
                     "bf16 autocast, fp32 masters, fused AdamW, global-norm clipping; FLOPs of "
                     "design section 11 (model/flops.c); tokens = non-pad tokens.\n\n")
        fh.write(f"## {res['date']} {res['device']} commit {res['commit']} torch {res['torch']}\n\n")
        fh.write(f"config `{a.bench}` (overrides: {' '.join(a.set or []) or 'none'}), "
                 f"input: {source}, {a.steps} timed steps after {a.warmup} warm-up "
                 f"({warm_s:.1f} s incl. compile), median step {res['step_s_median']:.4f} s, "
                 f"{res['tokens_per_step']:.0f} tokens/step, padded tokens/s "
                 f"{res['padded_tokens_per_s']:.0f}\n\n")
        fh.write("| device | config | params | seq | micro-batch | attn | step s | tokens/s | TFLOP/s | MFU (989T) | peak GiB |\n")
        fh.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
        fh.write(row + "\n\n")
    print(f"wrote {out}")


# ---------------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See docs/torch_ref.md.")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="MODEL.safetensors", help="nvwa-ckpt export file")
    mode.add_argument("--bench", metavar="CONFIG.ini", help="benchmark a config on the GPU")
    mode.add_argument("--self-test", action="store_true", help="mask / RoPE self checks")
    mode.add_argument("--compare-grads", nargs=2, metavar=("A", "B"),
                      help="max |A - B| / max |B| per tensor of two gradient files")
    p.add_argument("--batches", metavar="DUMP.h5", help="nvwa-train --dump-batches output")
    p.add_argument("--device", choices=["cpu", "cuda"],
                   help="--check: device (default cpu); --bench: cuda (default), cpu = smoke test")
    p.add_argument("--dtype", default="fp64", choices=["fp64", "fp32"], help="--check precision")
    p.add_argument("--grads", metavar="OUT.safetensors", help="--check: write gradients")
    p.add_argument("--grad-batch", type=int, default=0, help="--check: which global batch's gradients")
    p.add_argument("--attn", default="auto", choices=["auto", "flex", "sdpa"],
                   help="attention: flex block mask or SDPA dense mask (auto: flex on CUDA)")
    p.add_argument("--seq", type=int, help="--bench: seq-length (default: the config's)")
    p.add_argument("--micro-batch", type=int, help="--bench: rows per step (default: the config's)")
    p.add_argument("--steps", type=int, default=20, help="--bench: timed steps")
    p.add_argument("--warmup", type=int, default=5, help="--bench: untimed steps (compile)")
    p.add_argument("--no-compile", action="store_true", help="--bench: eager mode")
    p.add_argument("--recompute", action="store_true", help="--bench: checkpoint every layer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="--bench: INI override")
    p.add_argument("--out", metavar="FILE.md", help="--bench: results file (default bench/results/torch_ref-DATE.md)")
    p.add_argument("--rtol", type=float, default=1e-8, help="--compare-grads tolerance")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    import warnings  # eager flex on CPU (--check, --self-test) is slow but exact: no nagging
    warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
    if a.check:
        a.device = a.device or "cpu"
        if not a.batches:
            die("--check needs --batches DUMP.h5")
        cmd_check(a)
    elif a.bench:
        cmd_bench(a)
    elif a.compare_grads:
        cmd_compare_grads(a)
    else:
        cmd_self_test(a)


if __name__ == "__main__":
    main()
