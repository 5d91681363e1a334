// A downstream project that finds an installed coordiff with find_package and trains one Linear step.
#include <coordiff/coordiff.hpp>

#include <cstdio>

int main() {
  coordiff::Rng rng(3);
  coordiff::nn::Linear<float> layer(4, 2, rng);
  auto x = rng.normal<float>({8, 4});
  auto y = layer.forward(x);
  auto dx = layer.backward(y);  // d(0.5*|y|^2)/dy = y
  if (y.shape() != coordiff::Shape{8, 2} || dx.shape() != x.shape()) return 1;
  std::printf("consumer ok: y[0]=%g\n", static_cast<double>(y[0]));
  return 0;
}
