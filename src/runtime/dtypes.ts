/** Weight formats, named as in transformers.js (`dtype`), and the file suffix each one uses. */
export const DTYPE_SUFFIX = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;

/** A weight format name, e.g. `fp32` → `model.onnx`, `q8` → `model_quantized.onnx`. */
export type ModelDType = keyof typeof DTYPE_SUFFIX;
