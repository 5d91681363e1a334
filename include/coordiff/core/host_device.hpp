#pragma once
// COORDIFF_HOST_DEVICE marks small math functions that compile both for the host and, under nvcc,
// for CUDA kernels (schedule math, Philox), so CPU and GPU evaluate the same formulas.
#ifdef __CUDACC__
#define COORDIFF_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define COORDIFF_HOST_DEVICE inline
#endif
