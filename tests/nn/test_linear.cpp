#include <doctest/doctest.h>

#include "coordiff/nn/linear.hpp"
#include "support/gradcheck.hpp"

using namespace coordiff;

TEST_CASE("gradcheck: Linear input, weight and bias") {
  Rng rng(7);
  nn::Linear<double> lin(5, 3, rng);
  auto x = rng.normal<double>({2, 4, 5});
  auto up = rng.normal<double>({2, 4, 3});
  auto loss = [&] {
    nn::NoGradGuard g;
    return testing::dot(lin.forward(x), up);
  };
  lin.forward(x);
  auto dx = lin.backward(up);
  testing::check_gradients(loss, {{"x", &x, &dx},
                                  {"weight", &lin.weight().value, &lin.weight().grad},
                                  {"bias", &lin.bias().value, &lin.bias().grad}});
}

TEST_CASE("Linear: rejects a wrong input width with a ShapeError") {
  Rng rng(1);
  nn::Linear<float> lin(4, 2, rng);
  CHECK_THROWS_AS(lin.forward(Tensor<float>(Shape{3, 5})), ShapeError);
}
