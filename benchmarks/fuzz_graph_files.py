"""Fuzz spikec's graph file reader with damaged files (a script, not a test; the mutator is shared
with tests/unit/test_hdf5_fuzz.py).

Each case takes one of a few small saved graphs, damages a copy with a seeded mutation (bit flips,
overwritten bytes, truncation, deleted or retyped datasets and attributes, huge declared sizes,
deeply nested metadata) and loads it. Every outcome is one of:

    typed_error        spikec.load raised FormatError                       (good)
    identical          it loaded a graph whose content digest is the original's (good)
    other_spikec_error another SpikecError escaped                         (bad)
    untyped_exception  any other exception escaped                         (bad)
    silent_change      it loaded a graph that differs from the original      (bad)
    crash              the loading process died (segfault, abort, ...)       (bad)
    hang               a load took longer than --timeout seconds             (bad)

Loads run in a worker process that is restarted after a crash or hang, so both are counted, not
fatal.

    .venv/bin/python benchmarks/fuzz_graph_files.py [-n 10000] [--seed 0] [--timeout 5] [--json out.json]
        [--legacy]

--legacy fuzzes version-2 files (what spikec wrote before format version 3: no content hash,
variable-length strings) to measure what reading old files still risks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

import spikec
from spikec.errors import FormatError, SpikecError
from spikec.ir.digest import content_digest

OUTCOMES = ("typed_error", "identical", "other_spikec_error", "untyped_exception", "silent_change", "crash", "hang")
GOOD = ("typed_error", "identical")
BYTE_MUTATIONS = ("bit_flip", "byte_overwrite", "truncate")
TREE_MUTATIONS = ("delete_dataset", "delete_attr", "retype_dataset", "retype_attr", "huge")


# --------------------------------------------------------------------------- seed graphs


def seed_graphs() -> list[spikec.Graph]:
    """Three small valid graphs covering every population kind, op and optional field."""
    mlp = spikec.Graph(
        [spikec.Input("x", (4,)),
         spikec.IF("h", (3,), theta=np.array([4, 5, 6]), theta_neg=np.array(4), v_init=np.array([1, 0, -1]),
                   gate="net"),
         spikec.Readout("out", (2,), bias=np.array([1, -1]))],
        [spikec.Edge("x", "h", (spikec.Dense(np.arange(12).reshape(3, 4) - 6),)),
         spikec.Edge("h", "out", (spikec.Dense(np.ones((2, 3), np.int64)),), delay=2, weight_exp=3)],
        {"method": "qcfs", "layers": [{"name": "h", "scale": 0.5}], "note": None})
    conv = spikec.Graph(
        [spikec.Input("img", (1, 6, 6), value_bits=8, scale=12.5),
         spikec.IF("c1", (2, 6, 6), theta=np.array([7, 9]), bias=np.array([1, 0]),
                   bias_schedule=np.array([[3, 3], [1, 2]]), presim=2, reset="zero", state_bits=16),
         spikec.Readout("logits", (3,), skip=2)],
        [spikec.Edge("img", "c1", (spikec.Conv2d(np.arange(18).reshape(2, 1, 3, 3) % 5 - 2, padding=1),)),
         spikec.Edge("c1", "logits", (spikec.SumPool2d(2), spikec.Flatten(),
                                      spikec.Dense(np.arange(54).reshape(3, 18) % 7 - 3)))],
        {"method": "robust", "steps": 32})
    residual = spikec.Graph(
        [spikec.Input("x", (2,)), spikec.IF("a", (2,), theta=np.array(3)), spikec.IF("b", (2,), theta=np.array(2)),
         spikec.Readout("y", (2,))],
        [spikec.Edge("x", "a", (spikec.Dense(np.eye(2, dtype=np.int64)),)),
         spikec.Edge("a", "b", (spikec.Dense(np.array([[1, 2], [3, 4]])),)),
         spikec.Edge("x", "b", (spikec.Dense(np.array([[1, 0], [0, 1]])),), delay=1, weight_exp=1),
         spikec.Edge("b", "y", (spikec.Dense(np.array([[2, -1], [-1, 2]])),))])
    return [mlp, conv, residual]


# --------------------------------------------------------------------------- mutations


def mutate(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """Write a damaged copy of `src` to `dst`; return a description of the damage."""
    kind = str(rng.choice(BYTE_MUTATIONS + TREE_MUTATIONS))
    if kind in BYTE_MUTATIONS:
        data = bytearray(src.read_bytes())
        if kind == "truncate":
            cut = int(rng.integers(0, len(data)))
            dst.write_bytes(bytes(data[:cut]))
            return f"truncate@{cut}"
        if kind == "bit_flip":
            spots = rng.integers(0, len(data) * 8, size=int(rng.integers(1, 5)))
            for bit in spots:
                data[bit // 8] ^= 1 << (bit % 8)
            dst.write_bytes(bytes(data))
            return "bit_flip@" + ",".join(str(b) for b in spots)
        start = int(rng.integers(0, len(data)))
        run = rng.integers(0, 256, size=int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
        data[start:start + len(run)] = run
        dst.write_bytes(bytes(data))
        return f"byte_overwrite@{start}+{len(run)}"
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        return f"{kind}:" + _TREE[kind](f, rng)


def _objects(f: h5py.File) -> tuple[list[str], list[str]]:
    groups, datasets = ["/"], []
    f.visititems(lambda name, obj: (datasets if isinstance(obj, h5py.Dataset) else groups).append(name))
    return groups, datasets


def _split(name: str) -> tuple[str, str]:
    parent, _, leaf = name.rpartition("/")
    return parent or "/", leaf


def _pick(rng, items):
    return items[int(rng.integers(0, len(items)))]


def _delete_dataset(f, rng) -> str:
    name = _pick(rng, _objects(f)[1])
    del f[name]
    return name


def _delete_attr(f, rng) -> str:
    groups, datasets = _objects(f)
    candidates = [(o, a) for o in groups + datasets for a in f[o].attrs]
    obj, attr = _pick(rng, candidates)
    del f[obj].attrs[attr]
    return f"{obj}@{attr}"


def _replacement_data(data: np.ndarray, rng) -> tuple[str, object]:
    variants = {
        "float": lambda: data.astype(np.float64) + 0.5,
        "uint64_max": lambda: np.full(data.shape, 2**64 - 1, np.uint64),
        "uint64_same": lambda: np.abs(data).astype(np.uint64),
        "bool": lambda: data != 0,
        "int8": lambda: data.astype(np.int8),
        "big_endian": lambda: data.astype(">i8"),
        "string": lambda: np.bytes_(b"xyz"),
        "flat": lambda: data.reshape(-1),
        "extra_dim": lambda: data[None],
        "empty": lambda: np.zeros((0,), np.int64),
        "compound": lambda: np.zeros(data.shape, [("a", "i8"), ("b", "f4")]),
        "negated": lambda: -data - 1,
    }
    name = _pick(rng, sorted(variants))
    return name, variants[name]()


def _retype_dataset(f, rng) -> str:
    name = _pick(rng, _objects(f)[1])
    data = np.asarray(f[name][()])
    parent, leaf = _split(name)
    del f[name]
    if rng.random() < 0.1:
        f[parent].create_group(leaf)
        return f"{name}=group"
    variant, value = _replacement_data(data, rng)
    f[parent].create_dataset(leaf, data=value)
    return f"{name}={variant}"


_ATTR_VALUES = {
    "str": "x", "empty_str": "", "float": 1.5, "neg": -1, "big": 2**62, "uint64_max": np.uint64(2**64 - 1),
    "bool": True, "array": np.array([1, 2, 3]), "huge_array": np.arange(5000), "bad_utf8": np.bytes_(b"\xff\xfe"),
    "str_array": np.array([b"a", b"b"]), "zero": 0, "nan": float("nan"), "long_str": "n" * 100_000,
}


def _retype_attr(f, rng) -> str:
    groups, datasets = _objects(f)
    candidates = [(o, a) for o in groups + datasets for a in f[o].attrs]
    obj, attr = _pick(rng, candidates)
    variant = _pick(rng, sorted(_ATTR_VALUES))
    f[obj].attrs[attr] = _ATTR_VALUES[variant]
    return f"{obj}@{attr}={variant}"


def _huge(f, rng) -> str:
    choice = int(rng.integers(0, 5))
    if choice == 0:  # a dataset declaring far more than the file holds (never written)
        name = _pick(rng, _objects(f)[1])
        parent, leaf = _split(name)
        del f[name]
        f[parent].create_dataset(leaf, shape=(2**20, 2**20), dtype="i8", chunks=(1, 1024))
        return f"{name}=chunked 2^40"
    if choice == 1:
        name = _pick(rng, _objects(f)[1])
        parent, leaf = _split(name)
        del f[name]
        f[parent].create_dataset(leaf, shape=(3000, 4000), dtype="i8")
        return f"{name}=unwritten 12M"
    if choice == 2:
        pop = _pick(rng, list(f["populations"]))
        f["populations"][pop].attrs["shape"] = np.array([2**31 - 1] * 3, np.int64)
        return f"populations/{pop}@shape=huge"
    if choice == 3:
        depth = int(rng.integers(65, 200_000))
        text = "[" * depth + "]" * depth
        if isinstance(f.get("meta"), h5py.Dataset):  # version 3
            del f["meta"]
            f["meta"] = np.frombuffer(text.encode(), np.uint8)
        else:
            f.attrs["meta"] = text
        return f"meta nested {depth}"
    pop = _pick(rng, list(f["populations"]))
    f["populations"][pop].attrs["shape"] = np.array([2**40, 2**40], np.int64)
    return f"populations/{pop}@shape=2^80"


_TREE = {"delete_dataset": _delete_dataset, "delete_attr": _delete_attr, "retype_dataset": _retype_dataset,
         "retype_attr": _retype_attr, "huge": _huge}


# --------------------------------------------------------------------------- outcomes


def classify(path, digest: str) -> tuple[str, str]:
    """Load `path` in this process; return (outcome, detail)."""
    try:
        graph = spikec.load(path)
    except FormatError as err:
        return "typed_error", str(err)[-200:]
    except SpikecError as err:
        return "other_spikec_error", f"{type(err).__name__}: {err}"[-300:]
    except Exception as err:  # counting what escapes is the point
        return "untyped_exception", f"{type(err).__name__}: {err}"[-300:]
    if content_digest(graph) == digest:
        return "identical", ""
    return "silent_change", "loaded a different graph"


def downgrade_to_v2(path: Path) -> None:
    """Rewrite a version-3 file as spikec wrote version 2: no hash, no absent markers,
    variable-length strings, meta as a root attribute."""
    from spikec.ir import hdf5

    with h5py.File(path, "r+") as f:
        f.attrs["version"] = 2
        del f.attrs[hdf5.HASH_ATTR]
        f.attrs["meta"] = f["meta"][()].tobytes().decode()
        del f["meta"]
        objects = [f]
        f.visititems(lambda name, obj: objects.append(obj))
        for obj in objects:
            obj.attrs.pop(hdf5.ABSENT_ATTR, None)
            for key, value in list(obj.attrs.items()):
                if isinstance(value, bytes):
                    obj.attrs[key] = value.decode()


class Case:
    """The seed files and the seeded mutation of case number i."""

    def __init__(self, folder: Path, seed: int, legacy: bool = False):
        self.folder, self.seed = folder, seed
        self.sources = []
        for k, graph in enumerate(seed_graphs()):
            path = folder / f"seed{k}.h5"
            spikec.save(graph, path)
            if legacy:
                downgrade_to_v2(path)
            self.sources.append((path, content_digest(graph)))

    def make(self, i: int) -> tuple[Path, str, str]:
        """Write case i's damaged file; return (path, original digest, mutation description)."""
        rng = np.random.default_rng([self.seed, i])
        src, digest = self.sources[int(rng.integers(0, len(self.sources)))]
        dst = self.folder / f"case{i % 4}.h5"
        return dst, digest, mutate(src, dst, rng)


# --------------------------------------------------------------------------- runner


def _worker(conn) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(classify(*job))


class _Pool:
    """One worker process; restarted when it crashes or hangs."""

    def __init__(self):
        self.ctx = mp.get_context("spawn")
        self.proc = None

    def start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def run(self, job, timeout: float) -> tuple[str, str]:
        if self.proc is None or not self.proc.is_alive():
            self.start()
        self.conn.send(job)
        if not self.conn.poll(timeout):
            self.proc.kill()
            self.proc.join()
            self.proc = None
            return "hang", f"no result after {timeout} s"
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join()
            code = self.proc.exitcode
            self.proc = None
            return "crash", f"worker exit code {code}"

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)


def run(n: int, seed: int, timeout: float, progress: bool = True, legacy: bool = False) -> dict:
    counts = Counter({o: 0 for o in OUTCOMES})
    by_mutation: dict[str, Counter] = {}
    bad = []
    pool = _Pool()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cases = Case(Path(tmp), seed, legacy)
        try:
            for i in range(n):
                path, digest, what = cases.make(i)
                outcome, detail = pool.run((str(path), digest), timeout)
                counts[outcome] += 1
                by_mutation.setdefault(what.split("@")[0].split(":")[0], Counter())[outcome] += 1
                if outcome not in GOOD and len(bad) < 50:
                    bad.append({"case": i, "mutation": what, "outcome": outcome, "detail": detail})
                if progress and (i + 1) % 500 == 0:
                    print(f"  {i + 1}/{n} cases, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        finally:
            pool.close()
    return {"cases": n, "seed": seed, "format_version": 2 if legacy else 3, "timeout_s": timeout,
            "seconds": round(time.perf_counter() - start, 1),
            "counts": dict(counts), "by_mutation": {k: dict(v) for k, v in sorted(by_mutation.items())},
            "bad_examples": bad}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds before a load counts as a hang")
    ap.add_argument("--json", type=Path, help="also write the counts here")
    ap.add_argument("--legacy", action="store_true", help="fuzz version-2 files instead of version 3")
    args = ap.parse_args(argv)
    result = run(args.cases, args.seed, args.timeout, legacy=args.legacy)
    print(f"{result['cases']} cases in {result['seconds']} s (seed {result['seed']}, "
          f"format version {result['format_version']})")
    for outcome in OUTCOMES:
        print(f"  {outcome:<20} {result['counts'][outcome]:>7}")
    for example in result["bad_examples"][:10]:
        print(f"  BAD case {example['case']}: {example['mutation']} -> {example['outcome']}: {example['detail']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(result["counts"][o] == 0 for o in OUTCOMES if o not in GOOD) else 1


if __name__ == "__main__":
    sys.exit(main())
