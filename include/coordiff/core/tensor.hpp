#pragma once
// Owning tensors and non-owning strided views (row-major). Element access is bounds-checked when
// COORDIFF_CHECKED_ACCESS is defined (it is by default in builds without NDEBUG); `at()` always checks.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "coordiff/core/error.hpp"

#if !defined(NDEBUG) && !defined(COORDIFF_CHECKED_ACCESS)
#define COORDIFF_CHECKED_ACCESS 1
#endif

namespace coordiff {

using index_t = std::int64_t;
using Shape = std::vector<index_t>;

inline std::string to_string(const Shape& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) r.push_back(',');
    r.append(std::to_string(s[i]));
  }
  r.push_back(']');
  return r;
}

inline index_t numel(const Shape& s) {
  index_t n = 1;
  for (index_t d : s) n *= d;
  return n;
}

inline Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  index_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

/// Resolves a possibly negative axis (-1 = last) against a rank, throwing ShapeError when out of range.
inline std::size_t normalize_axis(index_t axis, std::size_t rank, const char* where = "axis") {
  const index_t r = static_cast<index_t>(rank);
  if (axis < -r || axis >= r)
    throw ShapeError(detail::concat(where, ": axis ", axis, " out of range for rank ", rank));
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

/// Throws ShapeError naming `what` unless `got == expected`.
inline void require_shape(const Shape& got, const Shape& expected, const std::string& what) {
  if (got != expected)
    throw ShapeError(what + ": expected shape " + to_string(expected) + ", got " + to_string(got));
}

/// Throws ShapeError naming `what` unless the rank is `rank`.
inline void require_rank(const Shape& got, std::size_t rank, const std::string& what) {
  if (got.size() != rank)
    throw ShapeError(detail::concat(what, ": expected rank ", rank, ", got shape ", to_string(got)));
}

namespace detail {
template <class... I>
index_t offset_of(const Shape& shape, const Shape& strides, bool check, I... idx) {
  const index_t ids[] = {static_cast<index_t>(idx)...};
  constexpr std::size_t n = sizeof...(I);
  if (check && n != shape.size())
    throw ShapeError(concat("index with ", n, " subscripts into a tensor of shape ", to_string(shape)));
  index_t off = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (check && (ids[i] < 0 || ids[i] >= shape[i]))
      throw ShapeError(concat("index ", ids[i], " out of range on axis ", i, " of shape ", to_string(shape)));
    off += ids[i] * strides[i];
  }
  return off;
}
#ifdef COORDIFF_CHECKED_ACCESS
inline constexpr bool kCheckedAccess = true;
#else
inline constexpr bool kCheckedAccess = false;
#endif
}  // namespace detail

template <class T>
class Tensor;

/// Non-owning view: pointer + shape + strides (in elements). T may be const.
template <class T>
class TensorView {
 public:
  using value_type = std::remove_const_t<T>;
  TensorView() = default;
  TensorView(T* data, Shape shape) : data_(data), shape_(std::move(shape)), strides_(contiguous_strides(shape_)) {}
  TensorView(T* data, Shape shape, Shape strides)
      : data_(data), shape_(std::move(shape)), strides_(std::move(strides)) {
    require<ShapeError>(shape_.size() == strides_.size(), "TensorView: shape ", to_string(shape_),
                        " and strides ", to_string(strides_), " differ in rank");
  }
  /// A view of T is also a view of const T.
  /// (A template, so that TensorView<const T> itself declares no conversion to its own type.)
  template <class U = T>
    requires(std::is_same_v<U, T> && !std::is_const_v<U>)
  operator TensorView<const U>() const {
    return {data_, shape_, strides_};
  }

  T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  std::size_t rank() const { return shape_.size(); }
  index_t dim(index_t axis) const { return shape_[normalize_axis(axis, rank(), "TensorView::dim")]; }
  index_t size() const { return numel(shape_); }
  bool is_contiguous() const { return strides_ == contiguous_strides(shape_); }

  template <class... I>
  T& operator()(I... idx) const {
    return data_[detail::offset_of(shape_, strides_, detail::kCheckedAccess, idx...)];
  }
  template <class... I>
  T& at(I... idx) const {
    return data_[detail::offset_of(shape_, strides_, true, idx...)];
  }

  /// Reorders axes: result axis i is this view's axis perm[i].
  TensorView permute(const std::vector<std::size_t>& perm) const {
    require<ShapeError>(perm.size() == rank(), "permute: ", perm.size(), " axes given for rank ", rank());
    Shape s(rank()), st(rank());
    std::vector<bool> seen(rank(), false);
    for (std::size_t i = 0; i < perm.size(); ++i) {
      require<ShapeError>(perm[i] < rank() && !seen[perm[i]], "permute: invalid permutation");
      seen[perm[i]] = true;
      s[i] = shape_[perm[i]];
      st[i] = strides_[perm[i]];
    }
    return {data_, s, st};
  }
  /// Fixes `axis` at `index`, dropping that axis.
  TensorView select(index_t axis, index_t index) const {
    const std::size_t a = normalize_axis(axis, rank(), "select");
    require<ShapeError>(index >= 0 && index < shape_[a], "select: index ", index, " out of range on axis ", a,
                        " of shape ", to_string(shape_));
    Shape s = shape_, st = strides_;
    s.erase(s.begin() + static_cast<std::ptrdiff_t>(a));
    st.erase(st.begin() + static_cast<std::ptrdiff_t>(a));
    return {data_ + index * strides_[a], s, st};
  }
  /// Keeps indices [begin, end) of `axis`.
  TensorView slice(index_t axis, index_t begin, index_t end) const {
    const std::size_t a = normalize_axis(axis, rank(), "slice");
    require<ShapeError>(0 <= begin && begin <= end && end <= shape_[a], "slice: range [", begin, ",", end,
                        ") invalid on axis ", a, " of shape ", to_string(shape_));
    Shape s = shape_;
    s[a] = end - begin;
    return {data_ + begin * strides_[a], s, strides_};
  }
  /// Copies into a new contiguous tensor.
  Tensor<value_type> contiguous() const;

 private:
  T* data_ = nullptr;
  Shape shape_;
  Shape strides_;
};

/// Owning, contiguous, row-major tensor of float or double (or any trivially copyable T).
template <class T>
class Tensor {
 public:
  using value_type = T;
  Tensor() = default;
  explicit Tensor(Shape shape, T fill = T(0)) : shape_(std::move(shape)) {
    for (index_t d : shape_) require<ShapeError>(d >= 0, "Tensor: negative extent in shape ", to_string(shape_));
    data_.assign(static_cast<std::size_t>(numel(shape_)), fill);
  }
  Tensor(Shape shape, std::vector<T> values) : shape_(std::move(shape)), data_(std::move(values)) {
    require<ShapeError>(static_cast<index_t>(data_.size()) == numel(shape_), "Tensor: ", data_.size(),
                        " values given for shape ", to_string(shape_));
  }
  Tensor(Shape shape, std::initializer_list<T> values) : Tensor(std::move(shape), std::vector<T>(values)) {}

  static Tensor zeros(Shape s) { return Tensor(std::move(s), T(0)); }
  static Tensor full(Shape s, T v) { return Tensor(std::move(s), v); }
  static Tensor zeros_like(const Tensor& t) { return Tensor(t.shape_, T(0)); }

  const Shape& shape() const { return shape_; }
  Shape strides() const { return contiguous_strides(shape_); }
  std::size_t rank() const { return shape_.size(); }
  index_t dim(index_t axis) const { return shape_[normalize_axis(axis, rank(), "Tensor::dim")]; }
  index_t size() const { return static_cast<index_t>(data_.size()); }
  bool empty() const { return data_.empty(); }
  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T* begin() { return data_.data(); }
  T* end() { return data_.data() + data_.size(); }
  const T* begin() const { return data_.data(); }
  const T* end() const { return data_.data() + data_.size(); }
  T& operator[](index_t i) { return data_[static_cast<std::size_t>(i)]; }
  const T& operator[](index_t i) const { return data_[static_cast<std::size_t>(i)]; }
  std::vector<T>& storage() { return data_; }
  const std::vector<T>& storage() const { return data_; }

  template <class... I>
  T& operator()(I... idx) {
    return data_[static_cast<std::size_t>(detail::offset_of(shape_, strides(), detail::kCheckedAccess, idx...))];
  }
  template <class... I>
  const T& operator()(I... idx) const {
    return data_[static_cast<std::size_t>(detail::offset_of(shape_, strides(), detail::kCheckedAccess, idx...))];
  }
  template <class... I>
  T& at(I... idx) {
    return data_[static_cast<std::size_t>(detail::offset_of(shape_, strides(), true, idx...))];
  }
  template <class... I>
  const T& at(I... idx) const {
    return data_[static_cast<std::size_t>(detail::offset_of(shape_, strides(), true, idx...))];
  }

  TensorView<T> view() { return {data_.data(), shape_}; }
  TensorView<const T> view() const { return {data_.data(), shape_}; }
  TensorView<const T> cview() const { return {data_.data(), shape_}; }

  /// Same data, new shape of equal element count; -1 in one position is inferred.
  Tensor reshape(Shape s) const& { return Tensor(*this).reshape(std::move(s)); }
  Tensor reshape(Shape s) && {
    resolve_reshape(s);
    shape_ = std::move(s);
    return std::move(*this);
  }
  /// In-place reshape (same element count).
  void reshape_inplace(Shape s) {
    resolve_reshape(s);
    shape_ = std::move(s);
  }
  void fill(T v) { std::fill(data_.begin(), data_.end(), v); }
  void set_zero() { fill(T(0)); }
  /// Resizes to `s`, reusing storage; contents are unspecified unless `zero`.
  void resize(const Shape& s, bool zero = true) {
    shape_ = s;
    data_.resize(static_cast<std::size_t>(numel(s)));
    if (zero) set_zero();
  }

  template <class U>
  Tensor<U> cast() const {
    Tensor<U> r(shape_);
    std::transform(data_.begin(), data_.end(), r.data(), [](T v) { return static_cast<U>(v); });
    return r;
  }

 private:
  void resolve_reshape(Shape& s) const {
    index_t known = 1;
    int infer = -1;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == -1) {
        require<ShapeError>(infer < 0, "reshape: more than one -1 in ", to_string(s));
        infer = static_cast<int>(i);
      } else {
        known *= s[i];
      }
    }
    if (infer >= 0 && known > 0 && size() % known == 0) s[static_cast<std::size_t>(infer)] = size() / known;
    require<ShapeError>(numel(s) == size(), "reshape: cannot view shape ", to_string(shape_), " as ", to_string(s));
  }
  Shape shape_;
  std::vector<T> data_;
};

template <class T>
Tensor<typename TensorView<T>::value_type> TensorView<T>::contiguous() const {
  Tensor<value_type> out(shape_);
  const std::size_t r = rank();
  if (r == 0) {
    if (data_) out[0] = *data_;
    return out;
  }
  std::vector<index_t> idx(r, 0);
  const index_t n = out.size();
  index_t off = 0;
  for (index_t i = 0; i < n; ++i) {
    out[i] = data_[off];
    for (std::size_t a = r; a-- > 0;) {  // odometer increment
      off += strides_[a];
      if (++idx[a] < shape_[a]) break;
      off -= strides_[a] * shape_[a];
      idx[a] = 0;
    }
  }
  return out;
}

/// Copies a (possibly strided) view into a contiguous tensor with the same shape.
template <class T>
Tensor<std::remove_const_t<T>> to_tensor(const TensorView<T>& v) {
  return v.contiguous();
}

/// The rows `which` of x along its first axis (in that order, repeats allowed): [which.size(), ...].
template <class T>
Tensor<T> take_rows(const Tensor<T>& x, const std::vector<index_t>& which) {
  require<ShapeError>(x.rank() >= 1, "take_rows: needs a tensor of rank >= 1");
  const index_t n = x.dim(0), w = n > 0 ? x.size() / n : 0;
  Shape shape = x.shape();
  shape[0] = static_cast<index_t>(which.size());
  Tensor<T> out(shape);
  for (std::size_t k = 0; k < which.size(); ++k) {
    require<ShapeError>(which[k] >= 0 && which[k] < n, "take_rows: row ", which[k], " of ", n);
    std::copy(x.data() + which[k] * w, x.data() + (which[k] + 1) * w, out.data() + static_cast<index_t>(k) * w);
  }
  return out;
}

/// Throws NumericError naming `what` and the first offending index if any element is NaN or infinite.
template <class T>
void require_finite(const Tensor<T>& t, const std::string& what) {
  for (index_t i = 0; i < t.size(); ++i) {
    if (!(t[i] == t[i]) || t[i] - t[i] != T(0))
      throw NumericError(detail::concat(what, ": non-finite value ", t[i], " at flat index ", i, " of shape ",
                                        to_string(t.shape())));
  }
}

}  // namespace coordiff
