#!/usr/bin/env python3
"""Adds a `logits_to_keep` input to an exported demo model (same values for the rows it keeps).

The exported graph computes a full-vocabulary logits row for every fed token; a prompt prefill
needs only the last one. This rewrite slices the final normed hidden states to their last
`logits_to_keep` positions before the lm_head MatMul (the norm works per position, so the kept
rows are unchanged). `logits_to_keep` is an int64 scalar; 0 keeps every row, as in Hugging Face
transformers. The runtime discovers the input and passes the number of rows it reads.

Usage: python3 logits_to_keep.py MODEL.onnx [OUT.onnx]   (in place by default; after scatter_logits.py)
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def rewrite(path, out=None):
    model = onnx.load(path)
    g = model.graph
    if any(i.name == 'logits_to_keep' for i in g.input):
        raise SystemExit(f'{path}: already has a logits_to_keep input')
    producer = {o: n for n in g.node for o in n.output}
    updates = [n for n in g.node if n.output[0] == 'scatter_updates']
    if len(updates) != 1:
        raise SystemExit(f'{path}: no scatter_updates node (run scatter_logits.py first)')
    head = producer.get(updates[0].input[0])
    if head is None or head.op_type != 'MatMul':
        raise SystemExit(f'{path}: the compact logits are not produced by the lm_head MatMul')
    hidden = head.input[0]
    g.input.append(helper.make_tensor_value_info('logits_to_keep', TensorProto.INT64, []))
    g.initializer.extend([
        numpy_helper.from_array(np.array([1], dtype=np.int64), 'keep_shape'),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).max], dtype=np.int64), 'keep_end'),
        numpy_helper.from_array(np.array([1], dtype=np.int64), 'keep_axis'),
    ])
    nodes = [
        helper.make_node('Reshape', ['logits_to_keep', 'keep_shape'], ['keep_count']),
        helper.make_node('Neg', ['keep_count'], ['keep_start']),
        helper.make_node('Slice', [hidden, 'keep_start', 'keep_end', 'keep_axis'], ['keep_hidden']),
    ]
    head.input[0] = 'keep_hidden'
    at = list(g.node).index(head)
    for i, n in enumerate(nodes):
        g.node.insert(at + i, n)
    onnx.checker.check_model(model)
    onnx.save(model, out or path)


if __name__ == '__main__':
    rewrite(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
