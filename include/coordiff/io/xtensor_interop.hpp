#pragma once
// Conversions between coordiff's npy arrays / tensors and xtensor containers.
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "coordiff/io/npy.hpp"

namespace coordiff::io {

template <class T>
xt::xarray<T> to_xarray(const Tensor<T>& t) {
  std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
  xt::xarray<T> a = xt::adapt(t.data(), static_cast<std::size_t>(t.size()), xt::no_ownership(), shape);
  return a;
}
template <class T>
xt::xarray<T> to_xarray(const NpyArray& a, const std::string& context) {
  return to_xarray(a.to_tensor<T>(context));
}
/// Copies any xtensor expression's values (row-major) into a Tensor.
template <class T, class E>
Tensor<T> from_xarray(const E& e) {
  xt::xarray<T> a = e;
  Shape shape(a.shape().begin(), a.shape().end());
  return Tensor<T>(shape, std::vector<T>(a.begin(), a.end()));
}

}  // namespace coordiff::io
