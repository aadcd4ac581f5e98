#!/usr/bin/env python3
"""Trains one small demo decoder on token ids prepared by prepare.ts and exports it to ONNX in the
Optimum layout the runtime loads (input_ids, attention_mask, position_ids, past_key_values.{i}.*;
logits over the tokenizer's FULL vocabulary, present.{i}.*).

The model only ever sees a compact vocabulary (the ids the task uses); the export maps full ids to
compact ones on the way in and compact logits to full-vocabulary logits on the way out with two
index tables, so no full-vocabulary weight matrix is stored (scatter_logits.py then rewrites the
output mapping into a fill-and-scatter, which onnxruntime runs several times faster, and
logits_to_keep.py adds a `logits_to_keep` input so a prefill computes only the rows asked for).

Usage: python3 train.py DATA_DIR OUT_ONNX --seconds 600 --seed 1
Needs Debian's python3-torch (1.13) and python3-onnx; libopenblas0-openmp makes it ~25x faster.
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import logits_to_keep
import scatter_logits


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Rotary(nn.Module):
    """Rotary position embedding (as in Llama): relative positions, which arithmetic needs."""

    def __init__(self, hd, base=10000.0):
        super().__init__()
        self.register_buffer('inv_freq', 1.0 / (base ** (torch.arange(0, hd, 2).float() / hd)))

    def forward(self, positions):
        freqs = positions.float().unsqueeze(-1) * self.inv_freq  # [b, t, hd/2]
        emb = torch.cat([freqs, freqs], dim=-1).unsqueeze(1)  # [b, 1, t, hd]
        return emb.cos(), emb.sin()


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.hd = d // heads
        self.n1 = RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.n2 = RMSNorm(d)
        self.up = nn.Linear(d, 2 * 2 * d, bias=False)
        self.down = nn.Linear(2 * d, d, bias=False)

    def forward(self, x, bias, rope, past_k=None, past_v=None):
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).split(d, dim=-1)
        q = q.view(b, t, self.heads, self.hd).transpose(1, 2)
        k = k.view(b, t, self.heads, self.hd).transpose(1, 2)
        v = v.view(b, t, self.heads, self.hd).transpose(1, 2)
        cos, sin = rope
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + bias
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        g, u = self.up(self.n2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u), k, v


class TinyLM(nn.Module):
    def __init__(self, vocab, d, layers, heads, max_pos):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.rotary = Rotary(d // heads)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.norm = RMSNorm(d)

    def forward(self, ids, positions, bias, pasts=None):
        x = self.embed(ids)
        rope = self.rotary(positions)
        presents = []
        for i, blk in enumerate(self.blocks):
            pk, pv = (pasts[i] if pasts is not None else (None, None))
            x, k, v = blk(x, bias, rope, pk, pv)
            presents.append((k, v))
        logits = self.norm(x) @ self.embed.weight.t()  # tied embeddings
        return logits, presents


def causal_bias(t, device):
    m = torch.full((t, t), float('-inf'), device=device).triu(1)
    return m.view(1, 1, t, t)


class Export(nn.Module):
    """The ONNX graph: full-vocabulary ids in, full-vocabulary logits out, Optimum names."""

    def __init__(self, lm, in_table, out_table):
        super().__init__()
        self.lm = lm
        self.register_buffer('in_table', in_table)  # full id -> compact id (0 = unknown)
        self.register_buffer('out_table', out_table)  # full id -> compact column (V = "never")

    def forward(self, input_ids, attention_mask, position_ids, *past):
        ids = self.in_table[input_ids]
        pasts = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
        t = input_ids.shape[1]
        total = attention_mask.shape[1]
        p = total - t
        kpos = torch.arange(total, device=input_ids.device).view(1, 1, 1, total)
        qpos = (torch.arange(t, device=input_ids.device) + p).view(1, 1, t, 1)
        allowed = (kpos <= qpos) & (attention_mask.view(attention_mask.shape[0], 1, 1, total) > 0)
        bias = torch.where(allowed, torch.zeros((), dtype=torch.float32), torch.full((), -1e9))
        logits, presents = self.lm(ids, position_ids, bias, pasts)
        never = torch.full(logits.shape[:-1] + (1,), -1e4)
        full = torch.index_select(torch.cat([logits, never], dim=-1), 2, self.out_table)
        out = [full]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('data')
    ap.add_argument('out')
    ap.add_argument('--seconds', type=float, default=600)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--d', type=int, default=128)
    ap.add_argument('--layers', type=int, default=4)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--max-pos', type=int, default=1024)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    meta = json.load(open(os.path.join(args.data, 'meta.json')))
    flat = np.fromfile(os.path.join(args.data, 'train.bin'), dtype=np.int32)
    compact = meta['compact']  # compact index -> full id (index 0 = unknown)
    full_to_compact = {fid: i for i, fid in enumerate(compact) if fid >= 0}
    offsets, prompt_lengths = meta['offsets'], meta['promptLengths']
    seqs = []
    for i in range(len(prompt_lengths)):
        s = [full_to_compact[int(t)] for t in flat[offsets[i]:offsets[i + 1]]]
        if len(s) <= args.max_pos:
            seqs.append((s, prompt_lengths[i]))
    # Batches are drawn from one length bucket at a time, so little compute goes to padding
    # (calculator conversations are several times longer than word problems).
    buckets = {}
    for s in seqs:
        buckets.setdefault(len(s[0]) // 32, []).append(s)
    bucket_list = list(buckets.values())
    bucket_weights = [len(b) for b in bucket_list]
    vocab = len(compact)
    lm = TinyLM(vocab, args.d, args.layers, args.heads, args.max_pos)
    params = sum(p.numel() for p in lm.parameters())
    print(f'examples {len(seqs)}, compact vocab {vocab}, parameters {params}', flush=True)
    opt = torch.optim.AdamW(lm.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    start = time.time()
    step = 0
    seen = 0
    while True:
        elapsed = time.time() - start
        if elapsed > args.seconds:
            break
        # Learning rate scheduled by wall clock: warm-up, then cosine to 5% at the deadline.
        frac = elapsed / args.seconds
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group['lr'] = lr
        bucket = random.choices(bucket_list, weights=bucket_weights)[0]
        batch = random.sample(bucket, min(args.batch, len(bucket)))
        t = max(len(s) for s, _ in batch)
        ids = torch.zeros((len(batch), t), dtype=torch.long)
        target = torch.full((len(batch), t), -100, dtype=torch.long)
        for b, (s, pl) in enumerate(batch):
            ids[b, : len(s)] = torch.tensor(s)
            target[b, pl - 1 : len(s) - 1] = torch.tensor(s[pl:])  # loss on the response only
        positions = torch.arange(t).unsqueeze(0).expand(len(batch), t)
        logits, _ = lm(ids, positions, causal_bias(t, ids.device))
        loss = F.cross_entropy(logits.view(-1, vocab), target.view(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        step += 1
        seen += int((ids != 0).sum())
        if step % 100 == 0:
            print(f'step {step} {elapsed:.0f}s loss {loss.item():.4f} lr {lr:.2e} tok/s {seen / max(elapsed, 1e-6):.0f}', flush=True)
    lm.eval()

    # Greedy decoding of the evaluation prompts in PyTorch (full recompute), for the ORT check.
    greedy = []
    with torch.no_grad():
        for ex in meta['evaluation']:
            seq = [full_to_compact.get(int(t), 0) for t in ex['prompt']]
            out = []
            for _ in range(200):
                t = len(seq)
                ids = torch.tensor([seq])
                logits, _ = lm(ids, torch.arange(t).unsqueeze(0), causal_bias(t, ids.device))
                nxt = int(logits[0, -1, 1:].argmax()) + 1  # never the "unknown" slot
                out.append(compact[nxt])
                if compact[nxt] in meta['eos']:
                    break
                seq.append(nxt)
            greedy.append(out)

    in_table = torch.zeros(meta['fullVocab'], dtype=torch.long)
    out_table = torch.full((meta['fullVocab'],), vocab, dtype=torch.long)
    for i, fid in enumerate(compact):
        if fid >= 0:
            in_table[fid] = i
            out_table[fid] = i
    export = Export(lm, in_table.to(torch.int32).long(), out_table).eval()
    b, t, p = 2, 3, 4
    hd = args.d // args.heads
    dummy_past = []
    names_in = ['input_ids', 'attention_mask', 'position_ids']
    names_out = ['logits']
    axes = {'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
            'position_ids': {0: 'batch_size', 1: 'sequence_length'}, 'logits': {0: 'batch_size', 1: 'sequence_length'}}
    for i in range(args.layers):
        for kind in ('key', 'value'):
            dummy_past.append(torch.randn(b, args.heads, p, hd))
            names_in.append(f'past_key_values.{i}.{kind}')
            names_out.append(f'present.{i}.{kind}')
            axes[f'past_key_values.{i}.{kind}'] = {0: 'batch_size', 2: 'past_sequence_length'}
            axes[f'present.{i}.{kind}'] = {0: 'batch_size', 2: 'total_sequence_length'}
    inputs = (torch.randint(1, meta['fullVocab'], (b, t)), torch.ones(b, p + t, dtype=torch.long), torch.arange(p, p + t).unsqueeze(0).expand(b, t), *dummy_past)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    torch.onnx.export(export, inputs, args.out, input_names=names_in, output_names=names_out, dynamic_axes=axes, opset_version=14, do_constant_folding=True)
    # Same logits, several times faster in onnxruntime: scatter instead of an element-wise gather.
    scatter_logits.rewrite(args.out)
    # A logits_to_keep input, so a prompt prefill computes only the rows the runtime reads.
    logits_to_keep.rewrite(args.out)
    json.dump({'greedy': greedy, 'parameters': params, 'compactVocab': vocab, 'steps': step, 'seconds': args.seconds, 'tokensSeen': seen,
               'd': args.d, 'layers': args.layers, 'heads': args.heads, 'maxPositions': args.max_pos},
              open(os.path.join(args.data, 'result.json'), 'w'))
    print(f'exported {args.out} ({os.path.getsize(args.out) / 2**20:.2f} MiB) after {step} steps', flush=True)


if __name__ == '__main__':
    main()
