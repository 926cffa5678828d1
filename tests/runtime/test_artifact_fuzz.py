"""Fuzzing artifacts: random mutations of a real artifact (an MLP with a dynamic batch, cpu target) as an attacker
or a buggy writer would make them, with the hashes recomputed and, where no native code changed, the manifest
signed again by a trusted key. Every case must be refused with a LeptoncError, or load and give the reference
interpreter's answer on the IR and weights it loaded: no crash, no hang, no other exception.

The cases run in a child process (a crash would kill it, and the test names the case). Most are refused before
any C compile; those that need one (their IR or program changed) are capped, and the build cache serves the
rest (the derived source of an unchanged IR is always the same).
"""
from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import warnings

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KINDS = ("zip_bytes", "manifest", "header", "weights", "members")
DEFAULT = {"zip_bytes": 800, "manifest": 450, "header": 400, "weights": 40, "members": 250, "compiles": 2}
SLOW = {"zip_bytes": 5000, "manifest": 10000, "header": 3000, "weights": 400, "members": 2000, "compiles": 12}


def mlp_graph():
    from leptonc.ir import DType, Graph, TensorType

    rng = np.random.default_rng(0)
    g = Graph("mlp")
    x = g.add_input("x", TensorType(DType.f32, ("B", 16)))
    w1 = g.add_constant(rng.standard_normal((16, 40)).astype(np.float32), "fc1.weight")
    b1 = g.add_constant(rng.standard_normal(40).astype(np.float32), "fc1.bias")
    w2 = g.add_constant(rng.standard_normal((40, 8)).astype(np.float32), "fc2.weight")
    b2 = g.add_constant(rng.standard_normal(8).astype(np.float32), "fc2.bias")
    h = g.add("relu", g.add("add", g.add("matmul", x, w1), b1))
    g.set_outputs([g.add("tanh", g.add("add", g.add("matmul", h, w2), b2), name="y")])
    return g


# -- mutations ----------------------------------------------------------------------------------------------

ODD_VALUES = [-1, 0, 1, -(2**31), 2**31, 2**63, 10**30, 1.5, -0.0, "", "../../evil", "a/../../b", "x" * 300,
              None, True, False, [], {}, [1, 2], {"a": 1}, ["B", 16], {"bytes": 1, "first": 0, "last": 0}]


def _nodes(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nodes(v, path + (i,))


def mutate_json(obj, rng: random.Random):
    """`obj` with one to three random edits at random places: removed, replaced by an odd value of another
    type, an int pushed out of range, a string made a path, a list shuffled, cut or grown, a key added."""
    obj = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _nodes(obj) if p]
        if not paths:
            return obj
        path = rng.choice(paths)
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        key, value = path[-1], parent[path[-1]]
        op = rng.randrange(8)
        if op == 0:
            del parent[key]
        elif op == 1:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif op == 2 and type(value) is int:
            parent[key] = rng.choice([value + 1, value - 1, -value - 1, value * 2**20 + 7, 2**62])
        elif op == 3 and isinstance(value, str):
            parent[key] = rng.choice([value + "/../x", "../" + value, value[:-1], value + value])
        elif op == 4 and isinstance(value, list) and value:
            rng.shuffle(value)
            if rng.random() < 0.5:
                value.append(copy.deepcopy(rng.choice(value)))
            else:
                value.pop()
        elif op == 5 and isinstance(value, dict):
            value[rng.choice(["extra", "bytes", "shape", "name", "__metadata__"])] = rng.choice(ODD_VALUES)
        elif op == 6:  # a value of the same manifest elsewhere (a swapped field)
            other = rng.choice(paths)
            node = obj
            for k in other:
                node = node[k]
            parent[key] = copy.deepcopy(node)
        else:
            parent[key] = [value] if rng.random() < 0.5 else {"v": value}
    return obj


def _flip(data: bytes, rng: random.Random, count: int) -> bytes:
    b = bytearray(data)
    for _ in range(count):
        if not b:
            break
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256) if rng.random() < 0.7 else b[i] ^ (1 << rng.randrange(8))
    return bytes(b)


def make_case(kind: str, base: dict, raw: bytes, rng: random.Random, trusted, stranger):
    """(members or raw bytes, rehash, signing key) of one mutated artifact."""
    data = dict(base)
    if kind == "zip_bytes":
        choice = rng.randrange(3)
        if choice == 0:
            return _flip(raw, rng, rng.randint(1, 8)), None
        if choice == 1:
            cut = rng.randrange(len(raw))
            return raw[:cut], None
        i = rng.randrange(len(raw))
        return raw[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + raw[i:], None
    if kind == "manifest":
        m = json.loads(data["manifest.json"])
        if rng.random() < 0.03:  # deep nesting somewhere
            text = json.dumps(m).replace('"pipeline": ', '"pipeline": ' + "[" * 50000 + "]" * 50000 + ", \"p\": ", 1)
            data["manifest.json"] = text.encode()
        else:
            data["manifest.json"] = json.dumps(mutate_json(m, rng)).encode()
        return data, rng.choice([None, trusted, trusted, stranger])
    if kind == "header":
        blob = data["weights.safetensors"]
        n = int.from_bytes(blob[:8], "little")
        if rng.random() < 0.15:  # the length field itself
            n2 = rng.choice([0, 1, n - 1, n + 1, n + 8, len(blob), 2**40, 2**64 - 1])
            data["weights.safetensors"] = n2.to_bytes(8, "little") + blob[8:]
        else:
            header = mutate_json(json.loads(blob[8:8 + n]), rng)
            text = json.dumps(header).encode()
            text += b" " * (-len(text) % 8)
            data["weights.safetensors"] = len(text).to_bytes(8, "little") + text + blob[8 + n:]
        return data, trusted
    if kind == "weights":  # values only: loads, and must give the reference's answer on those weights
        blob = bytearray(data["weights.safetensors"])
        n = int.from_bytes(blob[:8], "little")
        body = np.frombuffer(blob, np.float32, offset=8 + n).copy()
        idx = rng.sample(range(len(body)), rng.randint(1, 20))
        body[idx] = np.random.default_rng(rng.randrange(2**32)).standard_normal(len(idx)).astype(np.float32) * 4
        data["weights.safetensors"] = bytes(blob[:8 + n]) + body.tobytes()
        return data, trusted
    name = rng.choice(["graph.lir", "graph.lir", "model.c", "model.so", "weights.safetensors"])
    blob = data[name]
    if name == "graph.lir" and rng.random() < 0.6:  # a plausible edit of the IR text
        text = blob.decode()
        edits = [("16", str(rng.choice([1, 15, 17, 2**31, 2**62]))), ("40", str(rng.choice([8, 39, 41, 0]))),
                 ("relu", rng.choice(["tanh", "neg", "exp", "sigmoid"])), ("add(", "sub("), ("B", "C"),
                 ("f32", rng.choice(["f64", "i32", "f16"])), ("fc1.weight", "fc2.weight"), ("tanh", "abs")]
        old, new = rng.choice(edits)
        positions = [i for i in range(len(text)) if text.startswith(old, i)]
        if positions:
            i = rng.choice(positions)
            text = text[:i] + new + text[i + len(old):]
        data[name] = text.encode()
    else:
        data[name] = _flip(blob, rng, rng.randint(1, 6)) if rng.random() < 0.8 else blob[:rng.randrange(len(blob))]
    return data, (rng.choice([None, stranger]) if name == "model.so" else trusted)


# -- checking one case --------------------------------------------------------------------------------------

def reference_outputs(cm, inputs):
    """The reference interpreter on the IR and weights `cm` loaded (packed GEMM weights unpacked again)."""
    import leptonc
    from leptonc.ir.parser import parse_ir
    from leptonc.codegen.derive import ir_constants

    weights = cm.artifact.weights if cm.artifact.weights is not None else cm.weights
    consts = ir_constants(cm.ir_text, weights)
    for name, w in weights.items():
        if name.endswith("^P"):
            base = name[:-2]
            k, n = consts[base].shape[-2:]
            panels = -(-n // 32)
            consts[base] = np.asarray(w).reshape(panels, k, 32).transpose(1, 0, 2).reshape(k, panels * 32)[
                :, :n].reshape(consts[base].shape)
        elif "^" in name:
            raise AssertionError(f"the fuzz model has no weight layout {name}")
    return leptonc.run_reference(parse_ir(cm.ir_text, consts), *inputs)


def random_inputs(cm, rng: np.random.Generator):
    from leptonc.ir import dims as D
    from leptonc.ir.dtypes import DType

    out = []
    for x in cm.signature["inputs"]:
        shape = [D.evaluate(d, {s: 3 for s in D.symbols(d)}) for d in x["shape"]]
        if np.prod(shape) > 1 << 22:
            return None  # (an IR edit made the input huge: nothing to check by running)
        dtype = DType.parse(x["dtype"]).numpy
        out.append((rng.standard_normal(shape) * 2).astype(dtype))
    return out


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def check_case(path, rng: np.random.Generator) -> str:
    """'refused', 'ran' or 'skipped' (the compile cap); raises on anything else."""
    import leptonc
    from leptonc.ir.errors import LeptoncError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cm = leptonc.load(path)
        except CompileCapReached:
            return "skipped"
        except LeptoncError:
            return "refused"
        inputs = random_inputs(cm, rng)
        if inputs is None:
            return "refused"
        try:
            outs = cm.run(*inputs)
        except LeptoncError:
            return "refused"
        want = reference_outputs(cm, inputs)
    for y, r in zip(outs, want, strict=True):
        r = np.asarray(r)
        assert y.shape == r.shape and y.dtype == r.dtype, (y.shape, r.shape, y.dtype, r.dtype)
        if y.dtype.kind == "f":
            finite = np.isfinite(r)
            scale = max(1.0, float(np.abs(r[finite]).max(initial=0.0)))
            tol = 1e-4 if y.dtype.itemsize >= 4 else 1e-2
            assert np.array_equal(np.isfinite(y), finite), "finite where the reference is not, or the reverse"
            assert np.all(np.abs(y[finite].astype(np.float64) - r[finite]) <= tol * scale), "wrong answer"
        else:
            np.testing.assert_array_equal(y, r)
    return "ran"


class CompileCapReached(Exception):
    pass


def run_fuzz(workdir: str, counts: dict, seed: int) -> dict:
    """Run every case; returns the counts of outcomes, and the failures (crashes in-process are reported by
    the parent: the log names the last case started)."""
    os.environ["LEPTONC_HOME"] = os.path.join(workdir, "home")  # (the build cache is the user's: keyed by source)
    os.environ.pop("LEPTONC_TRUSTED_KEYS", None)
    import leptonc
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from leptonc.codegen.cpu import build
    from leptonc.runtime.trust import signing_key
    from tests.runtime.artifact_tools import members, write

    base_path = os.path.join(workdir, "base.lep")
    leptonc.compile(mlp_graph(), quiet=True, cache=False).save(base_path)
    base, raw = members(base_path), open(base_path, "rb").read()
    trusted, stranger = signing_key(), Ed25519PrivateKey.generate()
    real_build, compiles = build.build_library, {"n": 0, "sources": set()}

    def capped_build(source, *args, **kwargs):
        if source not in compiles["sources"]:
            if compiles["n"] >= counts["compiles"]:
                raise CompileCapReached()
            compiles["n"] += 1
            compiles["sources"].add(source)
        return real_build(source, *args, **kwargs)

    build.build_library = capped_build
    signal.signal(signal.SIGALRM, _alarm)
    outcomes = {"refused": 0, "ran": 0, "skipped": 0}
    failures = []
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    path = os.path.join(workdir, "case.lep")
    log = open(os.path.join(workdir, "log"), "w")
    seconds = {}
    for kind in KINDS:
        start = time.perf_counter()
        for i in range(counts[kind]):
            case, key = make_case(kind, base, raw, rng, trusted, stranger)
            if isinstance(case, bytes):
                with open(path, "wb") as f:
                    f.write(case)
            else:
                write(path, case, key=key)
            log.write(f"{kind} {i}\n")
            log.flush()
            signal.alarm(60)
            try:
                outcomes[check_case(path, nrng)] += 1
            except Hang:
                failures.append(f"{kind} {i}: hang")
            except Exception as e:  # noqa: BLE001 (every other exception is a failure of the fuzz)
                failures.append(f"{kind} {i}: {type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}")
                os.replace(path, os.path.join(workdir, f"failure-{kind}-{i}.lep"))
            finally:
                signal.alarm(0)
        seconds[kind] = round(time.perf_counter() - start, 1)
    outcomes["compiles"] = compiles["n"]
    return {"outcomes": outcomes, "failures": failures, "seconds": seconds}


def _run(tmp_path, counts: dict, seed: int):
    code = ("import json, sys; from tests.runtime.test_artifact_fuzz import run_fuzz; "
            f"print(json.dumps(run_fuzz(sys.argv[1], {counts!r}, {seed})))")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    log = (tmp_path / "log").read_text().splitlines() if (tmp_path / "log").exists() else []
    assert done.returncode == 0, f"the fuzz died (rc {done.returncode}) in case {log[-1:]}: {done.stderr[-3000:]}"
    result = json.loads(done.stdout.splitlines()[-1])
    total = sum(counts[k] for k in KINDS)
    print(f"{total} cases in {time.perf_counter() - start:.1f} s: {result['outcomes']}, seconds {result['seconds']}")
    assert not result["failures"], "\n\n".join(result["failures"][:5])
    outcomes = result["outcomes"]
    assert outcomes["refused"] + outcomes["ran"] + outcomes["skipped"] == total
    assert outcomes["ran"] > counts["weights"] // 2  # the deep paths were reached: cases loaded and ran
    return outcomes


def test_artifact_fuzz(tmp_path):
    _run(tmp_path, DEFAULT, seed=1)


@pytest.mark.slow
def test_artifact_fuzz_long(tmp_path):
    _run(tmp_path, SLOW, seed=2)
