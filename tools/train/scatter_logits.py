#!/usr/bin/env python3
"""Rewrites the logits tail of an exported demo model for speed (same values, bit for bit).

train.py's export maps compact logits to the full vocabulary with Gather(axis=2) over an index
table: onnxruntime copies the 150k+ columns of every row one element at a time. This rewrite
fills the full-vocabulary row with the "never" value (-1e4) and scatters the compact columns
into it (ScatterElements): two fast passes per row instead of an element-wise gather.

Usage: python3 scatter_logits.py MODEL.onnx [OUT.onnx]   (in place by default)
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def rewrite(path, out=None):
    model = onnx.load(path)
    g = model.graph
    tail = [n for n in g.node if 'logits' in n.output]
    if len(tail) != 1 or tail[0].op_type != 'Gather':
        raise SystemExit(f'{path}: the logits are not produced by the index-table Gather of train.py (already rewritten?)')
    gather = tail[0]
    concat = next(n for n in g.node if gather.input[0] in n.output)
    compact_logits = concat.input[0]
    inits = {i.name: i for i in g.initializer}
    out_table = numpy_helper.to_array(inits[gather.input[1]])
    full = out_table.shape[0]
    never = int(out_table.max())  # the extra "never" column = compact vocabulary size
    # Compact column c (1..never-1; 0 is "unknown") holds the logit of full id ids[c - 1].
    ids = np.zeros(never - 1, dtype=np.int64)
    for f, c in enumerate(out_table):
        if 0 < c < never:
            ids[c - 1] = f
    nodes = [n for n in g.node if n is not gather]
    g.initializer.remove(inits[gather.input[1]])
    g.initializer.extend([
        numpy_helper.from_array(ids, 'scatter_ids'),
        numpy_helper.from_array(np.array([full], dtype=np.int64), 'scatter_full_width'),
        numpy_helper.from_array(np.array([never - 1], dtype=np.int64), 'scatter_compact_width'),
        numpy_helper.from_array(np.array([1], dtype=np.int64), 'scatter_one'),
        numpy_helper.from_array(np.array([never], dtype=np.int64), 'scatter_end'),
        numpy_helper.from_array(np.array([2], dtype=np.int64), 'scatter_axis'),
        numpy_helper.from_array(np.array([0], dtype=np.int64), 'scatter_zero'),
    ])
    nodes += [
        helper.make_node('Shape', [compact_logits], ['scatter_shape']),
        helper.make_node('Slice', ['scatter_shape', 'scatter_zero', 'scatter_axis', 'scatter_zero'], ['scatter_bt']),
        helper.make_node('Concat', ['scatter_bt', 'scatter_full_width'], ['scatter_full_shape'], axis=0),
        helper.make_node('Concat', ['scatter_bt', 'scatter_compact_width'], ['scatter_compact_shape'], axis=0),
        helper.make_node('ConstantOfShape', ['scatter_full_shape'], ['scatter_filled'], value=helper.make_tensor('v', TensorProto.FLOAT, [1], [-1e4])),
        helper.make_node('Slice', [compact_logits, 'scatter_one', 'scatter_end', 'scatter_axis'], ['scatter_updates']),
        helper.make_node('Expand', ['scatter_ids', 'scatter_compact_shape'], ['scatter_indices']),
        helper.make_node('ScatterElements', ['scatter_filled', 'scatter_indices', 'scatter_updates'], ['logits'], axis=2),
    ]
    del g.node[:]
    g.node.extend(nodes)
    # The old tail (Concat with the "never" column) is now unused: drop dead nodes.
    used = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in used for o in n.output):
            keep.append(n)
            used.update(n.input)
    del g.node[:]
    g.node.extend(reversed(keep))
    onnx.checker.check_model(model)
    onnx.save(model, out or path)


if __name__ == '__main__':
    rewrite(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
