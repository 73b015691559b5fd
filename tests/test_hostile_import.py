"""pggan-import against crafted pickles: never a crash, memory bounded by the file, one line for every refusal.

Every file here is written opcode by opcode (``tests.hostile_files.Ops``) as an attacker would, and the
importer runs in a real subprocess under an address-space cap (``RLIMIT_AS``, as ``ulimit -v``), through
``python -m pggan``'s own entry point, all files one after another in the same process: a crash would be a
signal that ends the process (the assertion names the file), an allocation the file does not justify a
MemoryError instead of the reason asserted, and a file that altered shared state (numpy's float32, say)
would break the valid import that runs last.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pggan.errors import UserError
from pggan.official.pickle_reader import MAX_OPERATIONS, read_official_pickle
from tests import hostile_files as H

#: What the importer may use beyond a torch process's start-up: the attacks claim 4 to 20 GiB.
CAP = H.TORCH_BASELINE + 1 * H.GIB


def _crafted(tmp_path):
    """(file, fragments its one-line refusal must hold) for every class of hostile pickle."""
    files = [
        # memory corruption: a dtype rewritten by BUILD (subarray over 4 bytes; fields at a 1 TiB offset)
        (H.subarray_view(tmp_path / "subarray.pkl"), ["dtype f4 with a state numpy does not write"]),
        (H.dtype_rewrite(tmp_path / "fields.pkl"), ["dtype f4 with a state numpy does not write"]),
        # claimed sizes: shape, array state, int as a buffer, length field, huge item size
        (H.claimed_shape(tmp_path / "shape.pkl"), ["array reconstruction that numpy does not write"]),
        (H.array_state_shape(tmp_path / "state.pkl"), ["needs 34,359,738,368 bytes but its data holds 8"]),
        (H.frombuffer_int(tmp_path / "int.pkl"), ["array data of type int, not bytes"]),
        (H.claimed_length(tmp_path / "length.pkl"), ["claims 6,442,450,944 bytes but only"]),
        (H.unicode_array(tmp_path / "unicode.pkl"), ["dtype 'U268435456' is not a numeric type"]),
        (H.object_array(tmp_path / "object.pkl"), ["dtype 'O8' is not a numeric type"]),
        # structure bombs: memo, nesting as a dict key (a C recursion), nesting and repetition in messages
        (H.memo_bomb(tmp_path / "memo.pkl"), [f"more than {MAX_OPERATIONS:,} pickle operations"]),
        (H.nested_key(tmp_path / "key.pkl", depth=150_000), ["a dict key or set member of type tuple"]),
        (H.nested_version(tmp_path / "version.pkl"), ["unsupported tfutil.Network state version [[[...]]]"]),
        (H.repr_bomb(tmp_path / "repr.pkl"), ["G: built by ['AAAA", "expected 'G_paper'"]),
        (H.zero_widths(tmp_path / "zero.pkl"), ["G: fmap_base 0 is outside [1, 1048576]"]),
    ]
    fields = {
        "fmap_base is a list": "G: fmap_base is [64], not an integer",
        "fmap_base is inf": "G: fmap_base is inf, not an integer",
        "fmap_max is None": "G: fmap_max is None, not an integer",
        "resolution is a list": "G: resolution is [8], not an integer",
        "mbstd_group_size is a list": "D: mbstd_group_size is [4], not an integer",
        "label_size is a string": "G: label_size is '0', not an integer",
        "fused_scale is an array": "G: fused_scale is array([1, 2]), not True or False",
        "version missing": "G: unsupported tfutil.Network state version None",
        "static_kwargs is a list": "D: malformed state (static_kwargs or variables missing)",
    }
    for index, (name, message) in enumerate(fields.items()):
        files.append((H.network_pickle(tmp_path / f"field{index}.pkl", **H.IMPORT_FIELDS[name]), [message]))
    return files


def test_crafted_pickles_are_one_line_refusals_in_bounded_memory(tmp_path):
    files = _crafted(tmp_path)
    good = H.network_pickle(tmp_path / "good.pkl")
    commands = [["import", path, "--out", tmp_path / f"{path.stem}.pt"] for path, _ in files]
    commands.append(["import", good, "--out", tmp_path / "good.pt"])
    results = H.run_commands(commands, address_space=CAP)
    for (path, fragments), result in zip(files, results[:-1], strict=True):
        line = result.one_line_error(str(path), *fragments)
        assert "MemoryError" not in line and "allocate" not in line, line  # refused for its reason, not the cap
        assert len(line) < 600, line  # bounded however long the file's strings are
        assert not (tmp_path / f"{path.stem}.pt").exists()  # nothing written
    assert results[-1].code == 0, results[-1].stderr  # a valid network still imports, in the same process
    # The subprocess's own peak (VmHWM): torch (~0.7 GB resident here) plus the largest legitimate work.
    assert results[-1].max_rss_mb < 1500, results[-1].max_rss_mb


def test_what_the_unpickler_hands_out_cannot_be_rewritten(tmp_path):
    # numpy's own dtype state is accepted (the byte order may be either) and yields the built-in dtype.
    ops = H.Ops
    big_endian = ops.tuple(ops.int(3), ops.text(">"), ops.NONE, ops.NONE, ops.NONE, ops.int(-1), ops.int(-1),
                           ops.int(0))  # fmt: skip
    data = np.arange(3, dtype=">f4").tobytes()
    (tmp_path / "be.pkl").write_bytes(ops.file(ops.array((3,), ops.dtype("f4", big_endian), ops.data(data))))
    array = read_official_pickle(tmp_path / "be.pkl")
    assert array.tolist() == [0.0, 1.0, 2.0] and array.dtype.kind == "f"
    assert np.dtype("f4").byteorder == "="  # the process's float32 untouched
    # A second BUILD on an array, BUILD on anything else, calls of anything else: refused.
    twice = ops.array((1,), ops.dtype("f4"), ops.data(b"\0" * 4)) + ops.tuple(
        ops.int(1), ops.shape(2), ops.dtype("f4"), ops.FALSE, ops.data(b"\0" * 8)) + ops.BUILD  # fmt: skip
    cases = {
        "twice": (twice, "BUILD on an array that already has its data"),
        "list": (ops.EMPTY_LIST + ops.EMPTY_DICT + ops.BUILD, "BUILD on a list"),
        "call": (ops.call(ops.glob("tfutil", "Network")), "a call to something other than numpy"),
        "global": (ops.glob("os", "system"), "refused to load os.system"),
        "newobj": (ops.glob("numpy", "ndarray") + ops.EMPTY_TUPLE + ops.NEWOBJ, "a class other than tfutil.Network"),
        "bytearray-length": (b"\x96" + (1 << 40).to_bytes(8, "little"), "claims 1,099,511,627,776 bytes"),
        "inst": (ops.MARK + b"ifoo\nbar\n", "INST"),
        "set-member": (b"\x8f" + ops.MARK + ops.EMPTY_TUPLE + ops.TUPLE1 + b"\x90", "set member of type tuple"),
    }
    for name, (body, message) in cases.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(ops.file(body))
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_official_pickle(path)


def test_a_fifo_or_a_device_is_never_read(tmp_path):
    import os

    fifo = tmp_path / "net.pkl"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    with pytest.raises(UserError, match="is a FIFO"):
        read_official_pickle(fifo)
    link = tmp_path / "zero.pkl"
    link.symlink_to("/dev/zero")
    with pytest.raises(UserError, match="is a character device"):
        read_official_pickle(link)


def test_release_format_files_still_load_through_the_checked_unpickler(tmp_path):
    """numpy 1.x and 2.x names, protocols 2 to 5 (5 writes buffers in-band as bytearrays)."""
    from tests.official_pickles import dumps, fake_tfutil, official_states

    states = official_states(resolution=8)
    for protocol in (2, 4, 5):
        for numpy1 in (False, True):
            with fake_tfutil() as network:
                data = dumps(tuple(network(s) for s in states), protocol=protocol, numpy1=numpy1)
            path = tmp_path / f"p{protocol}{numpy1}.pkl"
            path.write_bytes(data)
            loaded = read_official_pickle(path)
            variables = dict(loaded[0].state["variables"])
            expected = dict(states[0]["variables"])
            assert variables.keys() == expected.keys()
            for name, value in expected.items():
                np.testing.assert_array_equal(variables[name], value)
    assert pickle.HIGHEST_PROTOCOL >= 5
