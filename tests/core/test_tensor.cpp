#include <doctest/doctest.h>

#include <sstream>

#include "coordiff/core/progress.hpp"
#include "coordiff/core/tensor.hpp"

using namespace coordiff;

TEST_CASE("tensor: shape, strides and row-major access") {
  Tensor<float> t(Shape{2, 3, 4});
  CHECK(t.size() == 24);
  CHECK(t.strides() == Shape{12, 4, 1});
  for (index_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(i);
  CHECK(t(1, 2, 3) == 23.0f);
  CHECK(t.at(0, 1, 2) == 6.0f);
  CHECK_THROWS_AS(t.at(2, 0, 0), ShapeError);
  CHECK_THROWS_AS(t.at(0, 0), ShapeError);
}

TEST_CASE("tensor: views permute, select and slice without copying") {
  Tensor<double> t(Shape{2, 3}, {0, 1, 2, 3, 4, 5});
  auto v = t.view().permute({1, 0});
  CHECK(v.shape() == Shape{3, 2});
  CHECK(v(2, 1) == 5.0);
  CHECK_FALSE(v.is_contiguous());
  auto c = v.contiguous();
  CHECK(c.storage() == std::vector<double>{0, 3, 1, 4, 2, 5});
  auto row = t.view().select(0, 1);
  CHECK(row.shape() == Shape{3});
  CHECK(row(0) == 3.0);
  auto sl = t.view().slice(1, 1, 3);
  CHECK(sl.contiguous().storage() == std::vector<double>{1, 2, 4, 5});
  v(0, 1) = 42.0;  // writes through to the owner
  CHECK(t(1, 0) == 42.0);
  CHECK_THROWS_AS(t.view().slice(1, 2, 4), ShapeError);
}

TEST_CASE("tensor: reshape infers -1 and rejects bad element counts") {
  Tensor<float> t(Shape{4, 6});
  CHECK(t.reshape({2, -1, 3}).shape() == Shape{2, 4, 3});
  CHECK_THROWS_AS(t.reshape({5, -1}), ShapeError);
  CHECK_THROWS_AS(Tensor<float>(Shape{2, 2}, std::vector<float>{1, 2, 3}), ShapeError);
}

TEST_CASE("tensor: require_finite names the first bad element") {
  Tensor<float> t(Shape{3}, {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f});
  try {
    require_finite(t, "observations");
    FAIL("expected NumericError");
  } catch (const NumericError& e) {
    CHECK(std::string(e.what()).find("observations") != std::string::npos);
    CHECK(std::string(e.what()).find("flat index 1") != std::string::npos);
  }
}

TEST_CASE("draw_progress: redraws one line in place and ends it when done") {
  std::ostringstream out;
  draw_progress(out, "episodes", 1, 4, 8);
  CHECK(out.str() == "\repisodes [##------] 1/4");
  out.str("");
  draw_progress(out, "episodes", 4, 4, 8);
  CHECK(out.str() == "\repisodes [########] 4/4\n");
}

TEST_CASE("take_rows: rows of the first axis in the given order, repeats allowed, out-of-range refused") {
  Tensor<int> x(Shape{3, 2, 2});
  for (index_t i = 0; i < x.size(); ++i) x[i] = static_cast<int>(i);
  const Tensor<int> y = take_rows(x, {2, 0, 2});
  CHECK(y.shape() == Shape{3, 2, 2});
  CHECK(y(0, 1, 1) == x(2, 1, 1));
  CHECK(y(1, 0, 1) == x(0, 0, 1));
  CHECK(y(2, 0, 0) == x(2, 0, 0));
  CHECK(take_rows(x, {}).shape() == Shape{0, 2, 2});
  CHECK_THROWS_AS(take_rows(x, {3}), ShapeError);
  CHECK_THROWS_AS(take_rows(x, {-1}), ShapeError);
}
