/**
 * Public surface of src/nn: `Module` and containers, layers with PyTorch's names and
 * initialisation, normalisation, recurrent layers, attention, init and losses.
 */
export { Module, Sequential, ModuleList, StateDictError } from './module.js';
export type { StateDict, TensorModule, LoadStateDictOptions, LoadStateDictResult } from './module.js';
export {
  Linear, Conv1d, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, Upsample, Embedding, Dropout, Identity, Flatten,
  ReLU, LeakyReLU, GELU, SiLU, Tanh, Sigmoid, ELU, Softplus, Softmax, linear, dropout,
} from './layers.js';
export type { Conv2dLayerOptions, Conv1dLayerOptions, ConvTranspose2dLayerOptions, EmbeddingOptions } from './layers.js';
export { BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, batchNorm, layerNorm, groupNorm } from './norm.js';
export type { BatchNormOptions, LayerNormOptions } from './norm.js';
export { RNNCell, LSTMCell, GRUCell, RNN, LSTM, GRU, rnnCellStep, lstmCellStep, gruCellStep } from './rnn.js';
export type { RNNNonlinearity, CellOptions, RNNOptions, RNNForwardOptions } from './rnn.js';
export { MultiheadAttention, KVCache, scaledDotProductAttention, causalMask } from './attention.js';
export type { AttentionOptions, MultiheadAttentionOptions, MultiheadAttentionForwardOptions } from './attention.js';
export * as init from './init.js';
export {
  calculateGain, fanInOut, uniform_, normal_, truncNormal_, constant_, zeros_, ones_,
  xavierUniform_, xavierNormal_, kaimingUniform_, kaimingNormal_, orthogonal_,
  xavierUniform, xavierNormal, kaimingUniform, kaimingNormal, orthogonal,
} from './init.js';
export type { Nonlinearity, FanMode, KaimingOptions } from './init.js';
export { mseLoss, l1Loss, bceLoss, bceWithLogits, crossEntropy, nllLoss, gaussianKL, gaussianNLL } from './losses.js';
export type { Reduction, BCEOptions, BCEWithLogitsOptions, NLLOptions, CrossEntropyOptions, GaussianNLLOptions } from './losses.js';
export { madeMasks, MaskedLinear, pixelCnnMask, MaskedConv2d } from './masked.js';
export type { MadeMaskOptions, MadeMasks, PixelMaskType, MaskedConv2dOptions } from './masked.js';
export {
  FlowLayer, ActNorm, InvConv1x1, AffineCoupling, MaskedAffineCoupling, Reverse, BatchNormFlow, FlowSequence, CouplingMLP,
  CouplingConvNet, squeeze2d, unsqueeze2d, checkerboardMask, dequantizeLogit, logitToImage, standardNormalLogProb,
} from './flows.js';
export type { FlowOutput, CouplingScale } from './flows.js';
