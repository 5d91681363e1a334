// The GPU network of `coordiff augment --device cuda` (built with COORDIFF_CUDA=ON).
#include "coordiff/nn/cuda/gpu_unet_impl.cuh"
