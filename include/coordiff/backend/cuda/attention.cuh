#pragma once
// Fused multi-head self-attention across a short set axis (agents, at most 64) for channels-last
// features: scores, softmax and the weighted sum stay in shared memory, one block per (batch, head).
// Each set member's query/key is a whole [length, head channels] slice (attention between agents
// over their full trajectories, as MADiff), so a score is a dot product of length * head_qk terms.
#include "coordiff/backend/cuda/elementwise.cuh"
#include "coordiff/backend/cuda/reduce.cuh"

namespace coordiff::backend::cuda {

/// Where q, k and v live in one projected array qkv [batch * set, length, width]: head h's query
/// channels are [q_offset + h*qk, ...+qk), its key channels [k_offset + h*qk, ...), its value channels
/// [v_offset + h*v, ...+v). The output has heads * v channels.
struct SetAttentionShape {
  dindex batch, set, length, heads, qk, v, width, q_offset, k_offset, v_offset;
};

constexpr dindex kMaxAttentionSet = 64;


namespace kernels {
template <class T>
__global__ void set_attention(const T* qkv, SetAttentionShape s, T scale, const T* residual, T gain, T* y,
                              T* weights_out) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* P = reinterpret_cast<T*>(shared_bytes);  // [set, set]
  const dindex b = blockIdx.x, h = blockIdx.y, A = s.set, L = s.length;
  const T* base = qkv + b * A * L * s.width;
  const dindex dq = s.qk * L;
  for (dindex p = threadIdx.x; p < A * A; p += blockDim.x) {
    const dindex i = p / A, j = p % A;
    T acc = T(0);
    for (dindex f = 0; f < dq; ++f) {
      const dindex l = f / s.qk, c = f % s.qk;
      acc += base[(i * L + l) * s.width + s.q_offset + h * s.qk + c] * base[(j * L + l) * s.width + s.k_offset + h * s.qk + c];
    }
    P[p] = acc * scale;
  }
  __syncthreads();
  for (dindex i = threadIdx.x; i < A; i += blockDim.x) {  // softmax of row i, max-shifted
    T* row = P + i * A;
    T m = row[0];
    for (dindex j = 1; j < A; ++j) m = row[j] > m ? row[j] : m;
    T z = T(0);
    for (dindex j = 0; j < A; ++j) {
      row[j] = exp_of(row[j] - m);
      z += row[j];
    }
    for (dindex j = 0; j < A; ++j) row[j] /= z;
  }
  __syncthreads();
  if (weights_out)
    for (dindex p = threadIdx.x; p < A * A; p += blockDim.x) weights_out[(b * s.heads + h) * A * A + p] = P[p];
  const dindex C = s.heads * s.v, dv = s.v * L;
  for (dindex e = threadIdx.x; e < A * dv; e += blockDim.x) {
    const dindex i = e / dv, l = (e % dv) / s.v, c = e % s.v;
    T acc = T(0);
    for (dindex j = 0; j < A; ++j) acc += P[i * A + j] * base[(j * L + l) * s.width + s.v_offset + h * s.v + c];
    const dindex out = ((b * A + i) * L + l) * C + h * s.v + c;
    y[out] = (residual ? residual[out] : T(0)) + gain * acc;
  }
}

// Backward, one block per (batch, head): with out = P V and y = residual + gain out,
// dV = gain P^T dy, dP = gain dy V^T, dS = P (dP - rowsum(P dP)) (softmax), dQ = scale dS K, dK = scale
// dS^T Q; gain_part[b, h] = sum dy out (the gain's gradient, summed later in a fixed order).
template <class T>
__global__ void set_attention_backward(const T* qkv, SetAttentionShape s, T scale, const T* weights, const T* dy, T gain,
                                       T* dqkv, T* gain_part) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  T* P = reinterpret_cast<T*>(shared_bytes);  // [set, set]
  T* dS = P + s.set * s.set;                  // [set, set]
  __shared__ double shared32[32];
  const dindex b = blockIdx.x, h = blockIdx.y, A = s.set, L = s.length, C = s.heads * s.v;
  const T* base = qkv + b * A * L * s.width;
  T* dbase = dqkv + b * A * L * s.width;
  const T* dyb = dy + b * A * L * C;
  for (dindex p = threadIdx.x; p < A * A; p += blockDim.x) P[p] = weights[(b * s.heads + h) * A * A + p];
  __syncthreads();
  const dindex dv = s.v * L, dq = s.qk * L;
  auto vat = [&](dindex j, dindex f) { return base[(j * L + f / s.v) * s.width + s.v_offset + h * s.v + f % s.v]; };
  auto dyat = [&](dindex i, dindex f) { return dyb[(i * L + f / s.v) * C + h * s.v + f % s.v]; };
  double gpart = 0;
  for (dindex p = threadIdx.x; p < A * A; p += blockDim.x) {  // dP
    const dindex i = p / A, j = p % A;
    T acc = T(0);
    for (dindex f = 0; f < dv; ++f) acc += dyat(i, f) * vat(j, f);
    dS[p] = gain * acc;
  }
  for (dindex e = threadIdx.x; e < A * dv; e += blockDim.x) {  // dV and the gain's gradient
    const dindex j = e / dv, f = e % dv;
    T acc = T(0), out = T(0);
    for (dindex i = 0; i < A; ++i) acc += P[i * A + j] * dyat(i, f);
    for (dindex k = 0; k < A; ++k) out += P[j * A + k] * vat(k, f);
    gpart += static_cast<double>(dyat(j, f)) * out;
    dbase[(j * L + f / s.v) * s.width + s.v_offset + h * s.v + f % s.v] = gain * acc;
  }
  const double gsum = detail::block_sum(gpart, shared32);
  if (threadIdx.x == 0) gain_part[b * s.heads + h] = static_cast<T>(gsum);
  __syncthreads();
  for (dindex i = threadIdx.x; i < A; i += blockDim.x) {  // softmax backward, row i
    T dot = T(0);
    for (dindex j = 0; j < A; ++j) dot += P[i * A + j] * dS[i * A + j];
    for (dindex j = 0; j < A; ++j) dS[i * A + j] = P[i * A + j] * (dS[i * A + j] - dot);
  }
  __syncthreads();
  for (dindex e = threadIdx.x; e < A * dq; e += blockDim.x) {
    const dindex i = e / dq, l = (e % dq) / s.qk, c = e % s.qk;
    T aq = T(0), ak = T(0);
    for (dindex j = 0; j < A; ++j) {
      aq += dS[i * A + j] * base[(j * L + l) * s.width + s.k_offset + h * s.qk + c];
      ak += dS[j * A + i] * base[(j * L + l) * s.width + s.q_offset + h * s.qk + c];
    }
    dbase[(i * L + l) * s.width + s.q_offset + h * s.qk + c] = scale * aq;
    dbase[(i * L + l) * s.width + s.k_offset + h * s.qk + c] = scale * ak;
  }
}
}  // namespace kernels

/// y [batch * set, length, heads * v] = residual + gain * softmax(q k^T / sqrt(length * qk)) v per head
/// (residual may be null). weights_out [batch, heads, set, set] receives the attention weights when not null.
template <class T>
void set_attention(const T* qkv, const SetAttentionShape& s, const T* residual, T gain, T* y, T* weights_out,
                   cudaStream_t stream) {
  require<ShapeError>(s.set >= 1 && s.set <= kMaxAttentionSet, "set_attention: set size ", s.set,
                      " outside [1, ", kMaxAttentionSet, "]");
  require<ShapeError>(s.length >= 1 && s.qk >= 1 && s.v >= 1 && s.heads >= 1, "set_attention: empty head or length");
  if (s.batch == 0) return;
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(s.qk * s.length));
  const dim3 grid(static_cast<unsigned>(s.batch), static_cast<unsigned>(s.heads));
  const std::size_t shared = static_cast<std::size_t>(s.set * s.set) * sizeof(T);
  kernels::set_attention<<<grid, 128, shared, stream>>>(qkv, s, scale, residual, gain, y, weights_out);
  check(cudaGetLastError(), "set_attention launch");
}

}  // namespace coordiff::backend::cuda

namespace coordiff::backend::cuda {
/// Backward of set_attention (no residual term: its gradient is dy itself): dqkv [batch * set, length,
/// width] receives the q, k and v gradients in their channels (other channels are left as they are),
/// gain_part [batch * heads] the per-block parts of the gain's gradient.
template <class T>
void set_attention_backward(const T* qkv, const SetAttentionShape& s, const T* weights, const T* dy, T gain, T* dqkv,
                            T* gain_part, cudaStream_t stream) {
  if (s.batch == 0) return;
  using std::sqrt;
  const T scale = T(1) / sqrt(static_cast<T>(s.qk * s.length));
  const dim3 grid(static_cast<unsigned>(s.batch), static_cast<unsigned>(s.heads));
  const std::size_t shared = 2 * static_cast<std::size_t>(s.set * s.set) * sizeof(T);
  kernels::set_attention_backward<<<grid, 128, shared, stream>>>(qkv, s, scale, weights, dy, gain, dqkv, gain_part);
  check(cudaGetLastError(), "set_attention_backward launch");
}
}  // namespace coordiff::backend::cuda
