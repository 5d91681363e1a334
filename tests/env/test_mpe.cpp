#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "coordiff/env/mpe.hpp"
#include "coordiff/io/npz.hpp"

using namespace coordiff;
using namespace coordiff::env::mpe;

namespace {

// A single environment with every entity placed far apart (contact forces underflow to exactly 0).
template <class Env>
Tensor<double> far_apart_positions() {
  Tensor<double> pos({1, Env::kEntities, 2});
  for (index_t e = 0; e < Env::kEntities; ++e) pos(0, e, 0) = 10.0 * static_cast<double>(e), pos(0, e, 1) = 50.0;
  return pos;
}

template <class Env>
Tensor<double> zeros_state(index_t B = 1) {
  return Tensor<double>({B, Env::kEntities, 2});
}

// Deterministic, varied learner actions for environment with global index g at step t.
Tensor<double> test_actions(index_t B, index_t L, index_t t, std::uint64_t first_env) {
  Tensor<double> a({B, L, 2});
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < L; ++i)
      for (index_t c = 0; c < 2; ++c)
        a(b, i, c) = std::sin(1.3 * static_cast<double>(first_env + static_cast<std::uint64_t>(b)) +
                              0.7 * static_cast<double>(t) + 2.1 * static_cast<double>(i) + 0.5 * static_cast<double>(c));
  return a;
}

// Prey policy that replays fixed actions [B, T, N, 2] of the prey agents.
template <class Env>
typename Env::PreyPolicy replay_prey(const Tensor<double>& actions) {
  return [&actions](const Env& env, Tensor<double>& out) {
    const index_t t = env.steps_taken();
    for (index_t b = 0; b < env.batch(); ++b)
      for (index_t q = 0; q < Env::kPrey; ++q)
        for (index_t c = 0; c < 2; ++c) out(b, q, c) = actions(b, t, Env::kLearners + q, c);
  };
}

// Observation row 0 of `o` equals `want` index by index.
void check_layout(const Tensor<double>& o, const std::vector<double>& want) {
  REQUIRE(o.dim(1) == static_cast<index_t>(want.size()));
  for (std::size_t k = 0; k < want.size(); ++k)
    CHECK_MESSAGE(o(0, static_cast<index_t>(k)) == doctest::Approx(want[k]).epsilon(1e-14), "index ", k);
}

template <class Env>
void check_golden(const std::string& name) {
  const auto f = io::NpzFile::load(std::string(COORDIFF_TEST_FIXTURES) + "/mpe/" + name + ".npz");
  const auto pos0 = f.tensor<double>("pos0"), vel0 = f.tensor<double>("vel0");
  const index_t B = pos0.dim(0);
  const auto actions = f.tensor<double>("actions", {B, kEpisodeLength, Env::kAgents, 2});
  const auto pos = f.tensor<double>("pos", {B, kEpisodeLength, Env::kEntities, 2});
  const auto vel = f.tensor<double>("vel", {B, kEpisodeLength, Env::kEntities, 2});
  const auto obs = f.tensor<double>("obs", {B, kEpisodeLength, Env::kAgents, Env::kMaxObsDim});
  const auto obs0 = f.tensor<double>("obs0", {B, Env::kAgents, Env::kMaxObsDim});
  const auto rew = f.tensor<double>("rewards", {B, kEpisodeLength, Env::kAgents});
  Env env(B);
  env.set_state(pos0, vel0);
  env.set_prey_policy(replay_prey<Env>(actions));
  double worst = 0.0;
  auto cmp = [&](double got, double want, const char* what, index_t b, index_t t, index_t k) {
    const double err = std::abs(got - want);
    worst = std::max(worst, err);
    if (err > 1e-9)
      FAIL_CHECK(name << " " << what << " env " << b << " step " << t << " flat " << k << ": " << got << " vs " << want);
  };
  {
    const auto o = env.all_observations();
    for (index_t k = 0; k < o.size(); ++k) cmp(o[k], obs0[k], "obs0", k / (o.size() / B), -1, k);
  }
  for (index_t t = 0; t < kEpisodeLength; ++t) {
    Tensor<double> a({B, Env::kLearners, 2});
    for (index_t b = 0; b < B; ++b)
      for (index_t i = 0; i < Env::kLearners; ++i)
        for (index_t c = 0; c < 2; ++c) a(b, i, c) = actions(b, t, i, c);
    const auto r = env.step(a);
    const auto o = env.all_observations();
    for (index_t b = 0; b < B; ++b) {
      for (index_t e = 0; e < Env::kEntities; ++e)
        for (index_t c = 0; c < 2; ++c) {
          cmp(env.positions()(b, e, c), pos(b, t, e, c), "pos", b, t, e * 2 + c);
          cmp(env.velocities()(b, e, c), vel(b, t, e, c), "vel", b, t, e * 2 + c);
        }
      for (index_t i = 0; i < Env::kAgents; ++i) {
        cmp(r.reward_all(b, i), rew(b, t, i), "reward", b, t, i);
        for (index_t d = 0; d < Env::kMaxObsDim; ++d)
          cmp(o(b, i, d), obs(b, t, i, d), "obs", b, t, i * Env::kMaxObsDim + d);
      }
    }
    CHECK(r.done[0] == (t + 1 == kEpisodeLength ? 1 : 0));
  }
  MESSAGE(name << ": worst abs error vs NumPy " << worst);
}

template <class Env>
void run_episode(Env& env, std::uint64_t seed, std::uint64_t first_env, std::vector<Tensor<double>>& trace) {
  env.reset(seed, first_env);
  trace.push_back(env.positions());
  for (index_t t = 0; t < kEpisodeLength; ++t) {
    env.step(test_actions(env.batch(), Env::kLearners, t, first_env));
    trace.push_back(env.positions());
    trace.push_back(env.velocities());
    trace.push_back(env.last_actions());
  }
}

template <class Env>
void check_batch_independence() {
  Env big(8), again(8);
  std::vector<Tensor<double>> tb, ta;
  run_episode(big, 42, 0, tb);
  run_episode(again, 42, 0, ta);
  REQUIRE(tb.size() == ta.size());
  for (std::size_t k = 0; k < tb.size(); ++k) CHECK(tb[k].storage() == ta[k].storage());
  for (index_t b : {0, 5, 7}) {
    Env one(1);
    std::vector<Tensor<double>> t1;
    run_episode(one, 42, static_cast<std::uint64_t>(b), t1);
    for (std::size_t k = 0; k < tb.size(); ++k) {
      const auto per = tb[k].size() / 8;
      for (index_t j = 0; j < per; ++j) REQUIRE(t1[k][j] == tb[k][b * per + j]);
    }
  }
  Env other(8);
  std::vector<Tensor<double>> to;
  run_episode(other, 43, 0, to);
  CHECK(to[0].storage() != tb[0].storage());
}

}  // namespace

TEST_CASE("mpe physics: a free spread agent, one and two steps by hand") {
  SpreadEnv env(1);
  Tensor<double> pos = far_apart_positions<SpreadEnv>();
  pos(0, 0, 0) = 0.0, pos(0, 0, 1) = 0.0;
  env.set_state(pos, zeros_state<SpreadEnv>());
  Tensor<double> a({1, 3, 2});
  a(0, 0, 0) = 0.4, a(0, 0, 1) = -0.2;
  env.step(a);  // F = 5a = (2, -1); v = F dt = (0.2, -0.1); p = v dt
  CHECK(env.velocities()(0, 0, 0) == doctest::Approx(0.2).epsilon(1e-14));
  CHECK(env.velocities()(0, 0, 1) == doctest::Approx(-0.1).epsilon(1e-14));
  CHECK(env.positions()(0, 0, 0) == doctest::Approx(0.02).epsilon(1e-14));
  CHECK(env.positions()(0, 0, 1) == doctest::Approx(-0.01).epsilon(1e-14));
  env.step(a);  // v = 0.75 v + (0.2, -0.1) = (0.35, -0.175); p += v dt
  CHECK(env.velocities()(0, 0, 0) == doctest::Approx(0.35).epsilon(1e-14));
  CHECK(env.velocities()(0, 0, 1) == doctest::Approx(-0.175).epsilon(1e-14));
  CHECK(env.positions()(0, 0, 0) == doctest::Approx(0.055).epsilon(1e-14));
  CHECK(env.positions()(0, 0, 1) == doctest::Approx(-0.0275).epsilon(1e-14));
  // Other agents had zero action and no contact: untouched. Actions beyond [-1, 1] are not clipped.
  CHECK(env.positions()(0, 1, 0) == 10.0);
  Tensor<double> big({1, 3, 2});
  big(0, 1, 0) = 3.0;
  env.step(big);
  CHECK(env.velocities()(0, 1, 0) == doctest::Approx(1.5).epsilon(1e-14));
}

TEST_CASE("mpe physics: damping without a force") {
  SpreadEnv env(1);
  Tensor<double> vel = zeros_state<SpreadEnv>();
  vel(0, 2, 0) = 1.0, vel(0, 2, 1) = -2.0;
  Tensor<double> pos = far_apart_positions<SpreadEnv>();
  const double x0 = pos(0, 2, 0), y0 = pos(0, 2, 1);
  env.set_state(pos, vel);
  env.step(Tensor<double>({1, 3, 2}));
  CHECK(env.velocities()(0, 2, 0) == doctest::Approx(0.75).epsilon(1e-14));
  CHECK(env.velocities()(0, 2, 1) == doctest::Approx(-1.5).epsilon(1e-14));
  CHECK(env.positions()(0, 2, 0) == doctest::Approx(x0 + 0.075).epsilon(1e-14));
  CHECK(env.positions()(0, 2, 1) == doctest::Approx(y0 - 0.15).epsilon(1e-14));
  env.step(Tensor<double>({1, 3, 2}));
  CHECK(env.velocities()(0, 2, 0) == doctest::Approx(0.5625).epsilon(1e-14));
}

TEST_CASE("mpe physics: speed clamp of adversary (1.0) and prey (1.3)") {
  TagEnv env(1);
  env.set_state(far_apart_positions<TagEnv>(), zeros_state<TagEnv>());
  Tensor<double> prey_action({1, 1, 2});
  prey_action(0, 0, 0) = 0.6, prey_action(0, 0, 1) = 0.8;  // |F| = 16, dv = 1.6 > 1.3
  env.set_prey_policy([&](const TagEnv&, Tensor<double>& out) { out = prey_action; });
  Tensor<double> a({1, 3, 2});
  a(0, 0, 0) = 1.0;  // F = 9, dv = 0.9 (below 1.0)
  const double ax = env.positions()(0, 0, 0), px = env.positions()(0, 3, 0), py = env.positions()(0, 3, 1);
  env.step(a);
  CHECK(env.velocities()(0, 0, 0) == doctest::Approx(0.9).epsilon(1e-14));
  CHECK(env.velocities()(0, 3, 0) == doctest::Approx(1.3 * 0.6).epsilon(1e-14));
  CHECK(env.velocities()(0, 3, 1) == doctest::Approx(1.3 * 0.8).epsilon(1e-14));
  CHECK(env.positions()(0, 3, 0) == doctest::Approx(px + 0.13 * 0.6).epsilon(1e-14));
  CHECK(env.positions()(0, 3, 1) == doctest::Approx(py + 0.13 * 0.8).epsilon(1e-14));
  env.step(a);  // 0.675 + 0.9 = 1.575 -> 1.0
  CHECK(env.velocities()(0, 0, 0) == doctest::Approx(1.0).epsilon(1e-14));
  CHECK(env.velocities()(0, 0, 1) == 0.0);
  CHECK(env.positions()(0, 0, 0) == doctest::Approx(ax + 0.09 + 0.1).epsilon(1e-14));
  CHECK(env.last_actions()(0, 3, 1) == 0.8);
}

TEST_CASE("mpe physics: contact force closed form and the d == 0 guard") {
  // Overlap d = 0.2 < dmin = 0.3: F = 100 * 1e-3 * softplus(100) along delta/d.
  const auto f = contact_force(-0.2, 0.0, 0.3);
  CHECK(f[0] == doctest::Approx(-0.1 * (100.0 + std::log1p(std::exp(-100.0)))).epsilon(1e-14));
  CHECK(f[1] == 0.0);
  // Just apart (d - dmin = 1e-3 = margin): softplus(-1) = log(1 + e^-1), tiny but non-zero.
  const auto g = contact_force(0.0, 0.301, 0.3);
  CHECK(g[1] == doctest::Approx(0.1 * std::log(1.0 + std::exp(-1.0))).epsilon(1e-12));
  // Direction along delta/d with a diagonal offset (3-4-5).
  const auto h = contact_force(0.03, 0.04, 0.3);
  const double mag = 0.1 * (250.0 + std::log1p(std::exp(-250.0)));
  CHECK(h[0] == doctest::Approx(0.6 * mag).epsilon(1e-14));
  CHECK(h[1] == doctest::Approx(0.8 * mag).epsilon(1e-14));
  const auto z = contact_force(0.0, 0.0, 0.3);
  CHECK(z[0] == 0.0);
  CHECK(z[1] == 0.0);
  CHECK(softplus(800.0) == 800.0);
  CHECK(softplus(-800.0) == 0.0);

  // In the env: two spread agents 0.2 apart push each other apart with +-F dt each.
  SpreadEnv env(1);
  Tensor<double> pos = far_apart_positions<SpreadEnv>();
  pos(0, 0, 0) = 0.0, pos(0, 0, 1) = 0.0, pos(0, 1, 0) = 0.2, pos(0, 1, 1) = 0.0;
  env.set_state(pos, zeros_state<SpreadEnv>());
  env.step(Tensor<double>({1, 3, 2}));
  const double dv = 0.1 * f[0];
  CHECK(env.velocities()(0, 0, 0) == doctest::Approx(dv).epsilon(1e-14));
  CHECK(env.velocities()(0, 1, 0) == doctest::Approx(-dv).epsilon(1e-14));
  CHECK(env.positions()(0, 0, 0) == doctest::Approx(0.1 * dv).epsilon(1e-14));

  // An adversary overlapping an immovable obstacle is pushed; the obstacle stays put.
  TagEnv tag(1);
  Tensor<double> tp = far_apart_positions<TagEnv>();
  tp(0, 4, 0) = 0.0, tp(0, 4, 1) = 0.0, tp(0, 0, 0) = 0.25, tp(0, 0, 1) = 0.0;  // dmin 0.275
  tag.set_state(tp, zeros_state<TagEnv>());
  tag.set_prey_policy([](const TagEnv&, Tensor<double>&) {});
  tag.step(Tensor<double>({1, 3, 2}));
  const auto fo = contact_force(0.25, 0.0, 0.275);
  CHECK(tag.velocities()(0, 0, 0) == doctest::Approx(0.1 * fo[0]).epsilon(1e-14));
  CHECK(tag.positions()(0, 4, 0) == 0.0);
  CHECK(tag.velocities()(0, 4, 0) == 0.0);
}

TEST_CASE("mpe spread: reward on a constructed state") {
  SpreadEnv env(1);
  Tensor<double> pos({1, 6, 2}, {0.0, 0.0, 0.2, 0.0, 1.0, 1.0,       // agents
                                 0.5, 0.0, 0.0, -0.25, 1.0, 1.05});  // landmarks
  env.set_state(pos, zeros_state<SpreadEnv>());
  const auto r = env.rewards();
  // Landmarks: nearest agents at 0.3, 0.25, 0.05 -> 1/0.3 + 4 + min(20, 10); agents 0, 1 overlap (0.2 < 0.3).
  const double cover = 1.0 / 0.3 + 4.0 + 10.0;
  CHECK(r(0, 0) == doctest::Approx(cover - 5.0).epsilon(1e-12));
  CHECK(r(0, 1) == doctest::Approx(cover - 5.0).epsilon(1e-12));
  CHECK(r(0, 2) == doctest::Approx(cover).epsilon(1e-12));
  // An agent exactly on a landmark: 1/0 -> capped at 10.
  pos(0, 0, 0) = 0.5;
  env.set_state(pos, zeros_state<SpreadEnv>());
  CHECK(env.rewards()(0, 2) == doctest::Approx(10.0 + 1.0 / std::sqrt(0.25 * 0.25 + 0.2 * 0.2) + 10.0).epsilon(1e-12));
}

TEST_CASE("mpe tag: rewards with collisions, shaping and boundary penalty") {
  CHECK(boundary_penalty(0.5) == 0.0);
  CHECK(boundary_penalty(-0.95) == doctest::Approx(0.5).epsilon(1e-12));
  CHECK(boundary_penalty(1.2) == doctest::Approx(std::exp(0.4)).epsilon(1e-14));
  CHECK(boundary_penalty(3.0) == 10.0);
  TagEnv env(1);
  Tensor<double> pos({1, 6, 2}, {0.95, 1.1, 0.95, 1.3, 0.0, 0.0, 0.95, 1.2,  // adversaries, prey
                                 -0.5, -0.5, 0.5, -0.5});                  // obstacles
  env.set_state(pos, zeros_state<TagEnv>());
  const auto r = env.rewards();
  const double d3 = std::sqrt(0.95 * 0.95 + 1.2 * 1.2);
  const double adv = 20.0 - 0.1 * (0.1 + 0.1 + d3);  // two overlapping pairs (0.1 < 0.125)
  const double prey = -20.0 + 0.1 * (0.2 + d3) - (0.5 + std::exp(0.4));
  for (index_t a = 0; a < 3; ++a) CHECK(r(0, a) == doctest::Approx(adv).epsilon(1e-12));
  CHECK(r(0, 3) == doctest::Approx(prey).epsilon(1e-12));
}

TEST_CASE("mpe world: rewards with food, forests and collisions") {
  WorldEnv env(1);
  Tensor<double> pos({1, 9, 2}, {0.0, 0.0, 0.5, 0.0, -0.5, 0.0, 0.05, 0.05,    // adversaries, prey
                                 -0.8, 0.8, 0.05, 0.1, 0.6, 0.6, 0.0, 0.2, 0.9, -0.9});  // obstacle, food x2, forest x2
  env.set_state(pos, zeros_state<WorldEnv>());
  const auto r = env.rewards();
  const double d0 = std::sqrt(0.005), d1 = std::sqrt(0.45 * 0.45 + 0.0025), d2 = std::sqrt(0.55 * 0.55 + 0.0025);
  const double adv = 5.0 - 0.1 * (d0 + d1 + d2);                 // only adversary 0 overlaps (0.0707 < 0.12)
  const double prey = -5.0 + 0.1 * (d0 + d1 + d2) + 2.0 + 0.05 * 0.05;  // on food 0 (0.05 < 0.075)
  for (index_t a = 0; a < 3; ++a) CHECK(r(0, a) == doctest::Approx(adv).epsilon(1e-12));
  CHECK(r(0, 3) == doctest::Approx(prey).epsilon(1e-12));
  // Prey beyond the boundary band: -2 * bound per coordinate.
  pos(0, 3, 0) = 1.2, pos(0, 3, 1) = -0.95;
  env.set_state(pos, zeros_state<WorldEnv>());
  double sum = 0.0;
  for (index_t a = 0; a < 3; ++a) sum += std::hypot(1.2 - pos(0, a, 0), -0.95 - pos(0, a, 1));
  const double food = std::min(std::hypot(1.2 - 0.05, -0.95 - 0.1), std::hypot(1.2 - 0.6, -0.95 - 0.6));
  CHECK(env.rewards()(0, 3) == doctest::Approx(0.1 * sum - 2.0 * (std::exp(0.4) + 0.5) + 0.05 * food).epsilon(1e-12));
}

TEST_CASE("mpe spread: observation layout index by index") {
  SpreadEnv env(1);
  Tensor<double> pos({1, 6, 2}, {0.1, 0.2, 0.3, 0.5, -0.7, 0.9, 0.15, -0.35, 0.45, 0.55, -0.65, 0.75});
  Tensor<double> vel({1, 6, 2}, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0, 0, 0, 0, 0, 0});
  env.set_state(pos, vel);
  const auto o = env.agent_observations(1);
  REQUIRE(o.shape() == Shape{1, 18});
  const double x = 0.3, y = 0.5;
  const std::vector<double> want = {3.0, 4.0, x, y,
                                    0.15 - x, -0.35 - y, 0.45 - x, 0.55 - y, -0.65 - x, 0.75 - y,  // landmarks
                                    0.1 - x, 0.2 - y, -0.7 - x, 0.9 - y,                           // agents 0, 2
                                    0.0, 0.0, 0.0, 0.0};                                           // silent comm
  check_layout(o, want);
  CHECK(env.observations().shape() == Shape{1, 3, 18});
  CHECK(env.state().shape() == Shape{1, 54});
  CHECK(env.state()(0, 18 + 5) == o(0, 5));
}

TEST_CASE("mpe tag: observation layout index by index") {
  TagEnv env(1);
  Tensor<double> pos({1, 6, 2}, {0.1, 0.2, 0.3, 0.5, -0.7, 0.9, 0.25, -0.15, 0.6, 0.6, -0.6, -0.4});
  Tensor<double> vel({1, 6, 2}, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0, 0, 0, 0});
  env.set_state(pos, vel);
  const auto o = env.agent_observations(1);
  REQUIRE(o.shape() == Shape{1, 16});
  double x = 0.3, y = 0.5;
  std::vector<double> want = {3.0, 4.0, x, y, 0.6 - x, 0.6 - y, -0.6 - x, -0.4 - y,
                              0.1 - x, 0.2 - y, -0.7 - x, 0.9 - y, 0.25 - x, -0.15 - y, 7.0, 8.0};
  check_layout(o, want);
  const auto p = env.agent_observations(3);
  REQUIRE(p.shape() == Shape{1, 14});
  x = 0.25, y = -0.15;
  want = {7.0, 8.0, x, y, 0.6 - x, 0.6 - y, -0.6 - x, -0.4 - y, 0.1 - x, 0.2 - y, 0.3 - x, 0.5 - y, -0.7 - x, 0.9 - y};
  check_layout(p, want);
  const auto s = env.state();
  REQUIRE(s.shape() == Shape{1, 64});
  CHECK(s(0, 3 * 16 + 13) == p(0, 13));
  CHECK(s(0, 3 * 16 + 14) == 0.0);  // prey padded to 16
  CHECK(s(0, 3 * 16 + 15) == 0.0);
}

TEST_CASE("mpe world: observation layout index by index") {
  WorldEnv env(1);
  Tensor<double> pos({1, 9, 2}, {0.1, 0.2, 0.3, 0.5, -0.7, 0.9, 0.25, -0.15,
                                 0.6, 0.6, -0.6, -0.4, 0.05, 0.05, 0.2, 0.5, 0.8, 0.8});
  Tensor<double> vel({1, 9, 2}, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  env.set_state(pos, vel);
  const auto o = env.agent_observations(1);  // adversary 1 at (0.3, 0.5): 0.1 from forest 0 -> inside
  REQUIRE(o.shape() == Shape{1, 24});
  double x = 0.3, y = 0.5;
  std::vector<double> want = {3.0, 4.0, x, y, 0.6 - x, 0.6 - y, -0.6 - x, -0.4 - y, 0.05 - x, 0.05 - y,
                              0.2 - x, 0.5 - y, 0.8 - x, 0.8 - y, 0.1 - x, 0.2 - y, -0.7 - x, 0.9 - y,
                              0.25 - x, -0.15 - y, 7.0, 8.0, 1.0, -1.0};
  check_layout(o, want);
  const auto p = env.agent_observations(3);  // prey at (0.25, -0.15): 0.65 from forest 0, outside both
  REQUIRE(p.shape() == Shape{1, 22});
  x = 0.25, y = -0.15;
  want = {7.0, 8.0, x, y, 0.6 - x, 0.6 - y, -0.6 - x, -0.4 - y, 0.05 - x, 0.05 - y, 0.2 - x, 0.5 - y,
          0.8 - x, 0.8 - y, 0.1 - x, 0.2 - y, 0.3 - x, 0.5 - y, -0.7 - x, 0.9 - y, -1.0, -1.0};
  check_layout(p, want);
  CHECK(env.state().shape() == Shape{1, 96});
}

TEST_CASE("mpe: seeded resets are reproducible and independent of the batch size") {
  check_batch_independence<SpreadEnv>();
  check_batch_independence<TagEnv>();
  check_batch_independence<WorldEnv>();
  WorldEnv env(16);
  env.reset(9);
  for (index_t b = 0; b < 16; ++b) {
    for (index_t e = 0; e < WorldEnv::kEntities; ++e)
      for (index_t c = 0; c < 2; ++c) {
        const double lim = e < WorldEnv::kAgents ? 1.0 : 0.9;
        CHECK(std::abs(env.positions()(b, e, c)) < lim);
        CHECK(env.velocities()(b, e, c) == 0.0);
      }
  }
}

TEST_CASE("mpe: scripted prey flees the nearest adversary and avoids obstacles") {
  TagEnv env(1);
  // Adversaries clustered on the left, prey at the centre, obstacles far away.
  Tensor<double> pos({1, 6, 2}, {-0.5, 0.0, -0.5, 0.1, -0.5, -0.1, 0.0, 0.0, 5.0, 5.0, -5.0, 5.0});
  env.set_state(pos, zeros_state<TagEnv>(), 3);
  env.step(Tensor<double>({1, 3, 2}));
  const double ax = env.last_actions()(0, 3, 0), ay = env.last_actions()(0, 3, 1);
  CHECK(ax > 0.5);
  CHECK(ax * ax + ay * ay <= 1.0);
  // An obstacle directly to the right blocks that way: the prey leaves around it.
  pos(0, 4, 0) = 0.3, pos(0, 4, 1) = 0.0;
  env.set_state(pos, zeros_state<TagEnv>(), 3);
  env.step(Tensor<double>({1, 3, 2}));
  const double bx = env.last_actions()(0, 3, 0), by = env.last_actions()(0, 3, 1);
  for (int w = 1; w <= 5; ++w) {
    const double wp[2] = {0.2 * w * bx, 0.2 * w * by}, ob[2] = {0.3, 0.0};
    CHECK_FALSE(is_collision(wp, ob, 0.05, 0.2));
  }
}

TEST_CASE("mpe: done after exactly 25 steps") {
  TagEnv env(2);
  env.reset(1);
  for (index_t t = 0; t < kEpisodeLength; ++t) {
    CHECK_FALSE(env.done());
    const auto r = env.step(Tensor<double>({2, 3, 2}));
    const std::uint8_t want = t + 1 == kEpisodeLength ? 1 : 0;
    CHECK(r.done == std::vector<std::uint8_t>{want, want});
    CHECK(r.obs.shape() == Shape{2, 3, 16});
    CHECK(r.reward.shape() == Shape{2, 3});
    CHECK(r.reward_all.shape() == Shape{2, 4});
  }
  CHECK(env.done());
  CHECK(env.steps_taken() == 25);
  CHECK_THROWS_AS(env.step(Tensor<double>({2, 3, 2})), ConfigError);
  env.reset(2);
  CHECK_FALSE(env.done());
  CHECK_NOTHROW(env.step(Tensor<double>({2, 3, 2})));
}

TEST_CASE("mpe: bad inputs raise coordiff errors naming what and where") {
  SpreadEnv env(2);
  CHECK_THROWS_AS(env.step(Tensor<double>({2, 3, 2})), ConfigError);  // before reset
  env.reset(0);
  try {
    env.step(Tensor<double>({2, 2, 2}));
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    CHECK(m.find("mpe spread step 0: actions") != std::string::npos);
    CHECK(m.find("[2,3,2]") != std::string::npos);
  }
  Tensor<double> a({2, 3, 2});
  a(1, 2, 1) = std::numeric_limits<double>::quiet_NaN();
  try {
    env.step(a);
    FAIL("expected a NumericError");
  } catch (const NumericError& e) {
    const std::string m = e.what();
    CHECK(m.find("environment 1, agent 2, component 1") != std::string::npos);
  }
  CHECK(env.steps_taken() == 0);  // a rejected step does not advance
  TagEnv tag(1);
  tag.reset(0);
  tag.set_prey_policy([](const TagEnv&, Tensor<double>& out) { out(0, 0, 0) = INFINITY; });
  try {
    tag.step(Tensor<double>({1, 3, 2}));
    FAIL("expected a NumericError");
  } catch (const NumericError& e) {
    CHECK(std::string(e.what()).find("prey policy") != std::string::npos);
    CHECK(std::string(e.what()).find("agent 3") != std::string::npos);
  }
  CHECK_THROWS_AS(SpreadEnv(0), ConfigError);
  CHECK_THROWS_AS(env.set_state(Tensor<double>({2, 5, 2}), Tensor<double>({2, 6, 2})), ShapeError);
  Tensor<double> v({2, 6, 2});
  v(0, 4, 0) = 1.0;  // a landmark cannot move
  CHECK_THROWS_AS(env.set_state(Tensor<double>({2, 6, 2}), v), ConfigError);
  CHECK_THROWS_AS(env.agent_observations(3), ConfigError);
}

TEST_CASE("mpe spread: golden episode against the NumPy reference") { check_golden<SpreadEnv>("spread"); }
TEST_CASE("mpe tag: golden episode against the NumPy reference") { check_golden<TagEnv>("tag"); }
TEST_CASE("mpe world: golden episode against the NumPy reference") { check_golden<WorldEnv>("world"); }

TEST_CASE("mpe: SVG of a recorded world episode") {
  WorldEnv env(2);
  env.reset(5);
  EpisodeRecorder rec(1);
  rec.record(env);
  for (index_t t = 0; t < kEpisodeLength; ++t) {
    env.step(test_actions(2, 3, t, 0));
    rec.record(env);
  }
  const auto p = rec.positions();
  CHECK(p.shape() == Shape{26, 9, 2});
  CHECK(p(25, 3, 0) == env.positions()(1, 3, 0));
  const auto styles = entity_styles<WorldEnv>();
  CHECK(styles[0].label == "adversary 0");
  CHECK(styles[3].label == "prey 0");
  CHECK(styles[4].label == "obstacle 0");
  CHECK(styles[5].label == "food 1");
  CHECK(styles[8].label == "forest 4");
  const std::string svg = episode_svg<WorldEnv>(rec);
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("MPE world") != std::string::npos);
  std::size_t trails = 0;
  for (std::size_t k = 0; (k = svg.find("<polyline", k)) != std::string::npos; ++k) ++trails;
  CHECK(trails == 4);  // agents only
  const std::string anim = animated_episode_svg<WorldEnv>(rec);
  CHECK(anim.find("<animate") != std::string::npos);
  CHECK_THROWS_AS(EpisodeRecorder().positions(), ConfigError);
  CHECK_THROWS_AS(EpisodeRecorder(4).record(env), ConfigError);
}
