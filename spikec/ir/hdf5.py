"""spikec's one on-disk format: a versioned HDF5 file (h5py).

Layout (version 5):
    /                attrs: format="spikec-graph", version=5,
                     content_sha256=<spikec.ir.digest.content_digest of the stored graph>
    /meta            dataset: the compile metadata as UTF-8 JSON bytes (uint8)
    /populations/<i> attrs: kind (Input | IF | SigmaDelta | Readout), name, shape, scalar fields, absent;
                     datasets: the integer arrays (theta, v_init, bias, ...)
    /edges/<i>       attrs: src, dst, delay, weight_exp;  /edges/<i>/ops/<j>: attrs kind + geometry,
                     dataset weight (any integer dtype; written in the narrowest that holds the
                     values, int8 for Loihi; read back as int64)
Members are named 0..n-1. Strings are fixed-length byte strings: variable-length strings live in
HDF5's global heap, and a damaged heap can crash the HDF5 library itself (found by fuzzing), so
versions 3 and 4 never read one. From version 3 on every field is required: an optional array that is None
(bias_schedule, theta_neg) is listed in the population's `absent` attribute (comma-separated)
instead of being silently left out, and the content hash must match what is read back.

Older files still load. Version 5 changed no layout, only a rule: a -1 spike gives back theta
(the value it sent) where versions 1-4 gave back theta_neg; the two agree when theta_neg = theta, so
an older file loads unless one of its signed layers has theta_neg != theta (then FormatError: it
was compiled for the old rule; recompile it). Version 3 has no SigmaDelta layers and no readout
`bias_steps` (read as 0); version 2 has no hash, no `absent`, variable-length strings and meta as a
root attribute (a missing v_init or bias reads as 0, a missing bias_schedule or theta_neg as None);
version 1 also lacks the edges' weight_exp (0).

Loading is defensive: every value is type- and range-checked, every size read from the file is
bounded before anything is allocated, and every way a file can be wrong (including errors raised
by HDF5 itself) ends in one FormatError with the original exception chained. Writes go to a
temporary file in the target folder, renamed into place only when complete; temporaries left by
writers that died are removed by the next save into that folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from spikec.errors import FormatError, GraphError, OverflowRiskError
from spikec.fileio import atomic_path
from spikec.ir.digest import content_digest
from spikec.ir.graph import Graph
from spikec.ir.nodes import (
    IF,
    Conv2d,
    Dense,
    Edge,
    Flatten,
    Input,
    Readout,
    SigmaDelta,
    SumPool2d,
    narrowest_int_dtype,
)

FORMAT = "spikec-graph"
VERSION = 5
NEG_RESET_VERSION = 5  # from this version on a -1 spike gives back theta, not theta_neg
HASH_ATTR = "content_sha256"
ABSENT_ATTR = "absent"

MAX_ELEMENTS = 2**28  # largest array (or population) a file may declare: 2 GiB of int64
MAX_DIM = 2**31 - 1  # largest single dimension, stride, padding, ...
MAX_MEMBERS = 1_000_000  # populations, edges, ops per edge
MAX_ATTR_ELEMENTS = 64  # shape and geometry attributes are short vectors
MAX_JSON_DEPTH = 64  # nesting of the meta JSON
MAX_NAME_CHARS = 4096
MAX_META_BYTES = 2**24  # 16 MiB of JSON
MAX_COMPRESSION = 1100  # deflate expands at most ~1032x; a filtered dataset may not claim more

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min

_POP_SCALARS = {
    Input: ("encoding", "value_bits", "scale"),
    IF: ("gate", "presim", "reset", "state_bits"),
    SigmaDelta: ("shift", "vth", "state_bits"),
    Readout: ("skip", "state_bits", "bias_steps"),
}
_POP_ARRAYS = {Input: (), IF: ("theta", "v_init", "bias", "bias_schedule", "theta_neg"),
               SigmaDelta: ("bias",), Readout: ("bias",)}
_SINCE_VERSION_4 = {"bias_steps"}  # scalar fields older files lack (read as 0)
_OPTIONAL = {"bias_schedule", "theta_neg"}  # may be None; everything else is always written
_LEGACY_DEFAULTED = {"v_init", "bias"}  # versions 1-2 only: read as 0 when missing
_STR_FIELDS = {"encoding", "gate", "reset"}
_FLOAT_FIELDS = {"scale"}
_POP_KINDS = {cls.__name__: cls for cls in _POP_SCALARS}
_OP_FIELDS = {Dense: (), Conv2d: ("stride", "padding", "dilation", "groups"), SumPool2d: ("kernel", "stride"),
              Flatten: ()}
_OP_PAIRS = {"stride": 1, "padding": 0, "dilation": 1, "kernel": 1}  # pair field -> minimum
_OP_KINDS = {cls.__name__: cls for cls in _OP_FIELDS}

# What reading a damaged file can raise, from h5py, numpy, json or the IR constructors. Anything
# else is a bug in spikec and is left to propagate.
_BAD_FILE_ERRORS = (OSError, KeyError, TypeError, ValueError, IndexError, OverflowError, RuntimeError,
                    MemoryError)


# --------------------------------------------------------------------------- save


def save(graph: Graph, path) -> None:
    """Write `graph` to `path` atomically (format version 5, with its content hash)."""
    graph.validate()
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write(f, graph)
        f.flush()
        # Hash exactly what a later load will reconstruct; this also refuses (FormatError) any
        # graph that load would refuse, so save never leaves a file that cannot be read back.
        stored = _Reader(f, tmp, file_size=None).graph()
        f.attrs[HASH_ATTR] = _text(content_digest(stored))


def _narrowest(values: np.ndarray) -> np.ndarray:
    """`values` in the narrowest signed integer dtype that holds them (int8 for Loihi weights: files
    an eighth of int64's size); loading widens them back to int64."""
    if not values.size:
        return values
    return values.astype(narrowest_int_dtype(int(values.min()), int(values.max())), copy=False)


def _text(value: str) -> np.bytes_:
    """A string as a fixed-length HDF5 string (never a variable-length one; see the module doc)."""
    return np.bytes_(value.encode("utf-8"))


def _write(f: h5py.File, graph: Graph) -> None:
    f.attrs["format"] = _text(FORMAT)
    f.attrs["version"] = VERSION
    f.create_dataset("meta", data=np.frombuffer(json.dumps(graph.meta).encode(), np.uint8))
    pops = f.create_group("populations")
    for i, p in enumerate(graph.populations):
        g = pops.create_group(str(i))
        g.attrs["kind"] = _text(type(p).__name__)
        g.attrs["name"] = _text(p.name)
        g.attrs["shape"] = np.asarray(p.shape, np.int64)
        for field in _POP_SCALARS[type(p)]:
            value = getattr(p, field)
            g.attrs[field] = _text(value) if field in _STR_FIELDS else value
        absent = []
        for field in _POP_ARRAYS[type(p)]:
            value = getattr(p, field)
            if value is None:
                absent.append(field)
            else:
                g.create_dataset(field, data=value)
        g.attrs[ABSENT_ATTR] = _text(",".join(absent))
    edges = f.create_group("edges")
    for i, e in enumerate(graph.edges):
        g = edges.create_group(str(i))
        g.attrs["src"], g.attrs["dst"], g.attrs["delay"] = _text(e.src), _text(e.dst), e.delay
        g.attrs["weight_exp"] = e.weight_exp
        ops = g.create_group("ops")
        for j, op in enumerate(e.ops):
            o = ops.create_group(str(j))
            o.attrs["kind"] = _text(type(op).__name__)
            for field in _OP_FIELDS[type(op)]:
                o.attrs[field] = np.asarray(getattr(op, field), np.int64)
            if hasattr(op, "weight"):
                o.create_dataset("weight", data=_narrowest(op.weight))


# --------------------------------------------------------------------------- load


def load(path) -> Graph:
    """Read a graph written by `save` (format version 1-5); raise FormatError for any file that is
    missing, damaged, of another format or version, or that holds an invalid graph."""
    path = Path(path)
    try:
        return _load(path)
    except FormatError:
        raise
    except (GraphError, OverflowRiskError) as err:
        raise FormatError(f"{path}: the stored graph is invalid: {err}") from err
    except _BAD_FILE_ERRORS as err:
        raise FormatError(f"{path}: malformed graph file ({type(err).__name__}: {_short(err)})") from err


def _load(path: Path) -> Graph:
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    size = path.stat().st_size
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise FormatError(f"{path}: not a readable HDF5 file (truncated or another format?): {_short(err)}") from err
    with f:
        reader = _Reader(f, path, size)
        graph = reader.graph()
        if reader.version >= 3 or HASH_ATTR in f.attrs:
            stored = reader.str_attr(f, HASH_ATTR)
            if stored != content_digest(graph):
                raise FormatError(f"{path}: content hash mismatch: the file was altered or damaged after it "
                                  "was written")
        if reader.version < NEG_RESET_VERSION:
            _check_old_negative_reset(path, reader.version, graph)
    return graph.validate()


def _check_old_negative_reset(path: Path, version: int, graph: Graph) -> None:
    """Refuse a file from before format 5 whose signed layers ran by the old -1 reset (v += theta_neg)
    with theta_neg != theta: under today's rule (v += theta) it would compute something else."""
    for node in graph.if_layers:
        if node.theta_neg is not None:
            theta, theta_neg = np.broadcast_arrays(np.asarray(node.theta), np.asarray(node.theta_neg))
            if not np.array_equal(theta, theta_neg):
                raise FormatError(f"{path}: population {node.name!r} has signed neurons with theta_neg != theta, "
                                  f"stored in format version {version}, whose -1 spikes gave back theta_neg; "
                                  f"format {NEG_RESET_VERSION} gives back theta. Recompile the model with this spikec")


def _short(err: BaseException, limit: int = 300) -> str:
    text = str(err)
    return text if len(text) <= limit else text[:limit] + "..."


def group_has(group, name: str) -> bool:
    """Whether `group` has a link `name` (without following it, unlike `name in group`)."""
    return group.get(name, getlink=True) is not None


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class _Reader:
    """Typed, bounded access to one open file; every check failure is a FormatError naming the
    object. `file_size` None skips the size-versus-file check (a file still being written)."""

    def __init__(self, f: h5py.File, path, file_size: int | None):
        self.f, self.path, self.file_size = f, path, file_size
        self.version = VERSION
        self.version = self._version()

    def fail(self, obj, message: str) -> FormatError:
        return FormatError(f"{self.path}: {message} at {obj.name}")

    # ------------------------------------------------------------------ structure
    def _version(self) -> int:
        if "format" not in self.f.attrs:
            raise FormatError(f"{self.path}: missing attribute 'format' at / (not a spikec graph file)")
        version = self.int_attr(self.f, "version", _INT64_MIN, _INT64_MAX)
        self.version = version  # variable-length strings are read only from files older than 3
        fmt = self.str_attr(self.f, "format")
        if fmt != FORMAT:
            raise FormatError(f"{self.path}: not a spikec graph file (format attribute is {fmt!r})")
        if version > VERSION:
            raise FormatError(f"{self.path}: format version {version} is newer than this spikec reads "
                              f"(up to {VERSION}); upgrade spikec")
        if version < 1:
            raise FormatError(f"{self.path}: invalid format version {version}")
        return version

    def graph(self) -> Graph:
        version = self.version
        pops = [self.population(g, version) for g in self.members(self.child(self.f, "populations", h5py.Group))]
        edges = [self.edge(g, version) for g in self.members(self.child(self.f, "edges", h5py.Group))]
        return Graph(pops, edges, self.meta())

    def child(self, group, name: str, kind):
        """group[name], which must be a hard link to a `kind` (h5py.Group or h5py.Dataset)."""
        link = group.get(name, getlink=True)
        if link is None:
            raise self.fail(group, f"missing {'group' if kind is h5py.Group else 'dataset'} {name!r}")
        if not isinstance(link, h5py.HardLink):
            raise self.fail(group, f"{name!r} is a {type(link).__name__}, not stored in this file")
        obj = group[name]
        if not isinstance(obj, kind):
            raise self.fail(group, f"{name!r} is a {type(obj).__name__}, expected a {kind.__name__}")
        return obj

    def members(self, group) -> list:
        """The member groups of `group`, which must be named 0..n-1."""
        n = len(group)
        if n > MAX_MEMBERS:
            raise self.fail(group, f"{n} members, more than {MAX_MEMBERS}")
        names = set(group.keys())
        if names != {str(i) for i in range(n)}:
            raise self.fail(group, f"members must be named 0..{n - 1}, found {sorted(names)[:8]}")
        return [self.child(group, str(i), h5py.Group) for i in range(n)]

    # ------------------------------------------------------------------ nodes
    def population(self, g, version: int):
        kind = self.str_attr(g, "kind")
        if kind not in _POP_KINDS:
            raise self.fail(g, f"unknown population kind {kind!r}")
        cls = _POP_KINDS[kind]
        if cls is SigmaDelta and version < 4:
            raise self.fail(g, f"population kind {kind!r} needs format version 4, the file says {version}")
        name = self.str_attr(g, "name")
        shape = self.int_vector_attr(g, "shape", 1, MAX_DIM)
        if not shape or int(np.prod(shape, dtype=object)) > MAX_ELEMENTS:
            raise self.fail(g, f"population shape {shape} is empty or larger than {MAX_ELEMENTS} neurons")
        kwargs = {field: self.scalar_attr(g, field) for field in _POP_SCALARS[cls]
                  if version >= 4 or field not in _SINCE_VERSION_4}
        absent = self.absent(g, cls) if version >= 3 else set()
        for field in _POP_ARRAYS[cls]:
            present = group_has(g, field)
            if field in absent:
                if present:
                    raise self.fail(g, f"{field!r} is both stored and listed as absent")
                kwargs[field] = None
            elif present:
                kwargs[field] = self.int_array(g, field)
            elif version >= 3 or field not in _OPTIONAL | _LEGACY_DEFAULTED:
                raise self.fail(g, f"missing dataset {field!r}")
        return cls(name, shape, **kwargs)

    def absent(self, g, cls) -> set[str]:
        text = self.str_attr(g, ABSENT_ATTR)
        names = [n for n in text.split(",") if n]
        allowed = _OPTIONAL & set(_POP_ARRAYS[cls])
        if len(set(names)) != len(names) or not set(names) <= allowed:
            raise self.fail(g, f"attribute {ABSENT_ATTR!r} is {text!r}; it may list only {sorted(allowed)}")
        return set(names)

    def edge(self, g, version: int) -> Edge:
        ops = []
        for o in self.members(self.child(g, "ops", h5py.Group)):
            kind = self.str_attr(o, "kind")
            if kind not in _OP_KINDS:
                raise self.fail(o, f"unknown synapse op {kind!r}")
            cls = _OP_KINDS[kind]
            kwargs = {}
            for field in _OP_FIELDS[cls]:
                if field in _OP_PAIRS:
                    pair = self.int_vector_attr(o, field, _OP_PAIRS[field], MAX_DIM)
                    if len(pair) != 2:
                        raise self.fail(o, f"attribute {field!r} must hold 2 values, got {pair}")
                    kwargs[field] = pair
                else:
                    kwargs[field] = self.int_attr(o, field, 1, MAX_DIM)
            if cls in (Dense, Conv2d):
                kwargs["weight"] = self.int_array(o, "weight")
            ops.append(cls(**kwargs))
        weight_exp = self.int_attr(g, "weight_exp", _INT64_MIN, _INT64_MAX) if version >= 2 else 0
        return Edge(self.str_attr(g, "src"), self.str_attr(g, "dst"), tuple(ops),
                    self.int_attr(g, "delay", _INT64_MIN, _INT64_MAX), weight_exp)

    def meta(self) -> dict:
        if self.version >= 3:
            raw = self.dataset(self.f, "meta", "u", MAX_META_BYTES)
            if raw.ndim != 1 or raw.dtype != np.uint8:
                raise self.fail(self.f, "dataset 'meta' must be 1-D uint8 (UTF-8 JSON)")
            text = raw.tobytes().decode("utf-8")
        else:
            text = self.str_attr(self.f, "meta", limit=MAX_META_BYTES)
        if json_depth(text) > MAX_JSON_DEPTH:
            raise self.fail(self.f, f"meta JSON nested deeper than {MAX_JSON_DEPTH} levels")
        meta = json.loads(text)
        if not isinstance(meta, dict):
            raise self.fail(self.f, f"meta must be a JSON object, got {type(meta).__name__}")
        return meta

    # ------------------------------------------------------------------ values
    def raw_attr(self, obj, name: str, kinds: str, what: str):
        """obj.attrs[name], after checking (without reading it) that its dtype kind is one of
        `kinds` and that it holds at most MAX_ATTR_ELEMENTS values."""
        if name not in obj.attrs:
            raise FormatError(f"{self.path}: missing attribute {name!r} at {obj.name}")
        aid = obj.attrs.get_id(name)
        if aid.dtype.kind not in kinds:
            raise self.fail(obj, f"attribute {name!r} must be {what}, got dtype {aid.dtype}")
        n = int(np.prod(aid.shape or (), dtype=object))
        if n > MAX_ATTR_ELEMENTS:
            raise self.fail(obj, f"attribute {name!r} holds {n} values, more than {MAX_ATTR_ELEMENTS}")
        return obj.attrs[name]

    def str_attr(self, obj, name: str, limit: int = MAX_NAME_CHARS) -> str:
        value = self.raw_attr(obj, name, "SO" if self.version < 3 else "S", "a string")
        if isinstance(value, bytes):
            value = value.decode()  # UnicodeDecodeError is a ValueError: reported as malformed
        if not isinstance(value, str):
            raise self.fail(obj, f"attribute {name!r} must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise self.fail(obj, f"attribute {name!r} is longer than {limit} characters")
        return value

    def int_attr(self, obj, name: str, lo: int, hi: int) -> int:
        value = self.raw_attr(obj, name, "iu", "an integer")
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise self.fail(obj, f"attribute {name!r} must be an integer, got {type(value).__name__}")
        value = int(value)  # exact, also for uint64
        if not lo <= value <= hi:
            raise self.fail(obj, f"attribute {name!r} = {value} is outside [{lo}, {hi}]")
        return value

    def int_vector_attr(self, obj, name: str, lo: int, hi: int) -> tuple[int, ...]:
        value = self.raw_attr(obj, name, "iu", "a 1-D integer array")
        if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in "iu":
            raise self.fail(obj, f"attribute {name!r} must be a 1-D integer array")
        values = tuple(int(v) for v in value)
        if any(not lo <= v <= hi for v in values):
            raise self.fail(obj, f"attribute {name!r} = {values} has values outside [{lo}, {hi}]")
        return values

    def scalar_attr(self, obj, name: str):
        if name in _STR_FIELDS:
            return self.str_attr(obj, name)
        if name in _FLOAT_FIELDS:
            value = self.raw_attr(obj, name, "iuf", "a number")
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise self.fail(obj, f"attribute {name!r} must be a number, got {type(value).__name__}")
            return int(value) if isinstance(value, (int, np.integer)) else float(value)
        return self.int_attr(obj, name, _INT64_MIN, _INT64_MAX)

    def int_array(self, group, name: str) -> np.ndarray:
        """An integer dataset as int64, refusing unsigned values that would wrap."""
        data = self.dataset(group, name, "iu", MAX_ELEMENTS)
        if data.dtype.kind == "u" and data.size and int(data.max()) > _INT64_MAX:
            raise self.fail(group, f"dataset {name!r} holds unsigned values above 2^63 - 1 that would wrap")
        return data.astype(np.int64)

    def dataset(self, group, name: str, kinds: str, limit: int) -> np.ndarray:
        """The data of group[name], after checking its kind, dtype and sizes without reading it."""
        ds = self.child(group, name, h5py.Dataset)
        where = f"dataset {name!r}"
        if ds.dtype.kind not in kinds:
            raise self.fail(group, f"{where} must hold integers, got dtype {ds.dtype}")
        if ds.ndim > 8 or ds.size > limit:
            raise self.fail(group, f"{where} has shape {ds.shape}, more than {limit} values or 8 dims")
        if ds.is_virtual or ds.external:
            raise self.fail(group, f"{where} keeps its data outside this file")
        self._check_storage(group, ds, where)
        return np.asarray(ds[()])

    def _check_storage(self, group, ds, where: str) -> None:
        if self.file_size is None:
            return
        filtered = ds.id.get_create_plist().get_nfilters() > 0
        limit = self.file_size * (MAX_COMPRESSION if filtered else 1)
        if ds.nbytes > limit:
            raise self.fail(group, f"{where} declares {ds.nbytes} bytes, more than the {self.file_size}-byte "
                                   "file can hold")
        if not filtered and ds.id.get_storage_size() < ds.nbytes:
            raise self.fail(group, f"{where} stores {ds.id.get_storage_size()} of its {ds.nbytes} bytes")
