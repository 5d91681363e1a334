#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "coordiff/filter/filters.hpp"
#include "coordiff/mask/masks.hpp"
#include "coordiff/order/orders.hpp"

using namespace coordiff;
using diffusion::Batch;
using diffusion::Round;
using diffusion::RoundPlan;

namespace {

auto verdict_fn = [](const auto& samples, const auto&) {
  const auto B = static_cast<std::size_t>(samples.dim(0));
  return filter::Verdict{std::vector<std::uint8_t>(B, 1), {}};
};
auto score_fn = [](const auto& samples, const auto&) {
  return std::vector<double>(static_cast<std::size_t>(samples.dim(0)), 0.0);
};

template <class T>
constexpr bool all_policies_model_their_concepts() {
  static_assert(mask::MaskStrategy<mask::None, T>);
  static_assert(mask::MaskStrategy<mask::HistoryPrefix, T>);
  static_assert(mask::MaskStrategy<mask::AfterSubgoal, T>);
  static_assert(mask::MaskStrategy<mask::UserMask, T>);
  static_assert(order::OrderingRule<order::Joint, T>);
  static_assert(order::OrderingRule<order::Independent, T>);
  static_assert(order::OrderingRule<order::LastObsValue, T>);
  static_assert(order::OrderingRule<order::SubgoalIndex, T>);
  static_assert(order::OrderingRule<order::Reverse, T>);
  static_assert(order::OrderingRule<order::Random, T>);
  static_assert(filter::ValidityFilter<filter::AcceptAll, T>);
  static_assert(filter::ValidityFilter<filter::Callable<decltype(verdict_fn)>, T>);
  static_assert(filter::ValidityFilter<filter::Threshold<decltype(score_fn)>, T>);
  static_assert(mask::check_mask_strategy<mask::AfterSubgoal, T>());
  static_assert(order::check_ordering_rule<order::LastObsValue, T>());
  static_assert(filter::check_validity_filter<filter::AcceptAll, T>());
  return true;
}
static_assert(all_policies_model_their_concepts<float>());
static_assert(all_policies_model_their_concepts<double>());

constexpr index_t kB = 2, kH = 5, kA = 3, kF = 2;

// values[b, t, a], listed per (b, a) over t. Subgoals (first argmax over t) and last values:
//   sample 0: g = (3, 1, 3), last = (0.5, 0.9, 0.5)  -> LOV 1,0,2  SG 0,2,1  Reverse 2,0,1
//   sample 1: g = (0, 4, 2), last = (0.1, 0.2, 0.3)  -> LOV 2,1,0  SG 1,2,0  Reverse 0,1,2
const double kValues[kB][kA][kH] = {
    {{0, 0, 0, 2, 0.5}, {0, 3, 0, 0, 0.9}, {0, 0, 0, 4, 0.5}},
    {{1, 1, 0, 0, 0.1}, {0, 0, 0, 0, 0.2}, {0, 0, 5, 0, 0.3}},
};

template <class T>
Batch<T> make_batch(bool with_values = true) {
  Batch<T> batch;
  batch.data = Tensor<T>({kB, kH, kA, kF});
  for (index_t i = 0; i < batch.data.size(); ++i) batch.data[i] = static_cast<T>(0.01 * static_cast<double>(i));
  if (with_values) {
    batch.values = Tensor<T>({kB, kH, kA});
    for (index_t b = 0; b < kB; ++b)
      for (index_t t = 0; t < kH; ++t)
        for (index_t a = 0; a < kA; ++a) batch.values(b, t, a) = static_cast<T>(kValues[b][a][t]);
  }
  return batch;
}

// Expected known flags from one pattern per sample: H rows of A characters ('1' known, '0' generated),
// the same for every feature.
Tensor<std::uint8_t> pattern(const std::vector<std::vector<std::string>>& rows, index_t F = kF) {
  const auto B = static_cast<index_t>(rows.size()), H = static_cast<index_t>(rows[0].size()),
             A = static_cast<index_t>(rows[0][0].size());
  Tensor<std::uint8_t> m({B, H, A, F});
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < H; ++t)
      for (index_t a = 0; a < A; ++a)
        for (index_t f = 0; f < F; ++f)
          m(b, t, a, f) = rows[static_cast<std::size_t>(b)][static_cast<std::size_t>(t)][static_cast<std::size_t>(a)] == '1';
  return m;
}

Round round_of(std::vector<std::vector<index_t>> agents, bool visible = true) { return Round{std::move(agents), visible}; }

// The agent each round generates in sample b (plans with one agent per round).
std::vector<index_t> sequence(const RoundPlan& plan, index_t b) {
  std::vector<index_t> out;
  for (const Round& r : plan) {
    REQUIRE(r.group_size() == 1);
    out.push_back(r.agents[static_cast<std::size_t>(b)][0]);
  }
  return out;
}

bool is_permutation_of_agents(std::vector<index_t> p, index_t A) {
  std::sort(p.begin(), p.end());
  for (index_t a = 0; a < A; ++a)
    if (static_cast<index_t>(p.size()) != A || p[static_cast<std::size_t>(a)] != a) return false;
  return true;
}

}  // namespace

TEST_CASE("Batch: subgoal is the first argmax of values unless subgoals are given") {
  auto batch = make_batch<double>();
  CHECK(batch.subgoal(0, 0) == 3);
  CHECK(batch.subgoal(0, 1) == 1);
  CHECK(batch.subgoal(0, 2) == 3);
  CHECK(batch.subgoal(1, 0) == 0);  // tie between t = 0 and t = 1: the first
  CHECK(batch.subgoal(1, 1) == 4);
  CHECK(batch.subgoal(1, 2) == 2);
  batch.subgoals = Tensor<std::int64_t>({kB, kA}, {-1, 2, 4, 0, 1, 1});
  CHECK(batch.subgoal(0, 0) == -1);
  CHECK(batch.subgoal(1, 2) == 1);
  CHECK_THROWS_AS(make_batch<double>(false).subgoal(0, 0), ConfigError);
}

TEST_CASE("Batch: validate checks shapes, subgoal range and finiteness") {
  auto batch = make_batch<float>();
  CHECK_NOTHROW(batch.validate());
  auto bad_values = batch;
  bad_values.values = Tensor<float>({kB, kH});
  CHECK_THROWS_AS(bad_values.validate(), ShapeError);
  auto bad_goal = batch;
  bad_goal.subgoals = Tensor<std::int64_t>({kB, kA}, {0, 1, 2, 3, 4, kH});
  CHECK_THROWS_AS(bad_goal.validate(), ConfigError);
  auto nan_data = batch;
  nan_data.data[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(nan_data.validate(), NumericError);
  CHECK_THROWS_AS(Batch<float>{}.validate(), ShapeError);
}

TEST_CASE("mask::None: the round's agents are generated entirely, the others known") {
  const auto batch = make_batch<float>();
  const auto known = mask::None{}.known(batch, round_of({{1}, {0, 2}}));
  CHECK(known.shape() == Shape{kB, kH, kA, kF});
  CHECK(known.storage() == pattern({{"101", "101", "101", "101", "101"},  //
                                    {"010", "010", "010", "010", "010"}})
                               .storage());
}

TEST_CASE("mask::HistoryPrefix: the first steps are known for every agent") {
  const auto batch = make_batch<double>();
  CHECK(mask::HistoryPrefix{}.known(batch, round_of({{0, 1, 2}, {0, 1, 2}})).storage() ==
        pattern({{"111", "000", "000", "000", "000"},  //
                 {"111", "000", "000", "000", "000"}})
            .storage());
  CHECK(mask::HistoryPrefix{2}.known(batch, round_of({{0}, {2}})).storage() ==
        pattern({{"111", "111", "011", "011", "011"},  //
                 {"111", "111", "110", "110", "110"}})
            .storage());
  CHECK(mask::HistoryPrefix{0}.known(batch, round_of({{1}, {1}})).storage() ==
        pattern({{"101", "101", "101", "101", "101"},  //
                 {"101", "101", "101", "101", "101"}})
            .storage());
  const auto all = mask::HistoryPrefix{kH}.known(batch, round_of({{0, 1, 2}, {0, 1, 2}}));
  CHECK(std::all_of(all.begin(), all.end(), [](std::uint8_t v) { return v == 1; }));
  CHECK_THROWS_AS(mask::HistoryPrefix{kH + 1}.known(batch, round_of({{0}, {0}})), ConfigError);
  CHECK_THROWS_AS(mask::HistoryPrefix{-1}.known(batch, round_of({{0}, {0}})), ConfigError);
  try {
    (void)mask::HistoryPrefix{7}.known(batch, round_of({{0}, {0}}));
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("steps = 7") != std::string::npos);
  }
}

TEST_CASE("mask::AfterSubgoal: MASTARS eq. 4, steps after g^a of the round's agents are generated") {
  auto batch = make_batch<float>();
  // Subgoals from values: sample 0 agent 2 has g = 3, sample 1 agent 0 has g = 0.
  CHECK(mask::AfterSubgoal{}.known(batch, round_of({{2}, {0}})).storage() ==
        pattern({{"111", "111", "111", "111", "110"},  //
                 {"111", "011", "011", "011", "011"}})
            .storage());
  // Explicit subgoals override values; -1 regenerates the whole agent, H-1 keeps it entirely.
  batch.subgoals = Tensor<std::int64_t>({kB, kA}, {-1, 2, 4, 0, 1, 1});
  CHECK(mask::AfterSubgoal{}.known(batch, round_of({{0, 1, 2}, {0, 1, 2}})).storage() ==
        pattern({{"011", "011", "011", "001", "001"},  //
                 {"111", "011", "000", "000", "000"}})
            .storage());
  CHECK_THROWS_AS(mask::AfterSubgoal{}.known(make_batch<float>(false), round_of({{0}, {0}})), ConfigError);
}

TEST_CASE("mask::UserMask: user flags on the round's agents, broadcast or per sample") {
  const auto batch = make_batch<double>();
  Tensor<std::uint8_t> shared({kH, kA, kF});
  for (index_t t = 0; t < kH; ++t)
    for (index_t a = 0; a < kA; ++a)
      for (index_t f = 0; f < kF; ++f) shared(t, a, f) = static_cast<std::uint8_t>((t + a + f) % 2 ? 7 : 0);
  const auto k1 = mask::UserMask{shared}.known(batch, round_of({{1}, {0}}));
  REQUIRE(k1.shape() == Shape{kB, kH, kA, kF});
  for (index_t b = 0; b < kB; ++b)
    for (index_t t = 0; t < kH; ++t)
      for (index_t a = 0; a < kA; ++a)
        for (index_t f = 0; f < kF; ++f) {
          const bool in_round = (b == 0 && a == 1) || (b == 1 && a == 0);
          const std::uint8_t want = in_round ? static_cast<std::uint8_t>((t + a + f) % 2) : 1;
          CHECK(k1(b, t, a, f) == want);
        }

  Tensor<std::uint8_t> full({kB, kH, kA, kF});
  full(0, 2, 1, 1) = 1;  // sample 0: only this entry of agent 1 known
  for (index_t i = full.size() / 2; i < full.size(); ++i) full[i] = 1;  // sample 1: all known
  auto want = pattern({{"101", "101", "101", "101", "101"},  //
                       {"111", "111", "111", "111", "111"}});
  want(0, 2, 1, 1) = 1;
  CHECK(mask::UserMask{full}.known(batch, round_of({{1}, {1}})).storage() == want.storage());

  CHECK_THROWS_AS(mask::UserMask{Tensor<std::uint8_t>({kH, kA})}.known(batch, round_of({{0}, {0}})), ShapeError);
  CHECK_THROWS_AS(mask::UserMask{Tensor<std::uint8_t>({3, kH, kA, kF})}.known(batch, round_of({{0}, {0}})),
                  ShapeError);
  try {
    (void)mask::UserMask{Tensor<std::uint8_t>({kH, kA, 4})}.known(batch, round_of({{0}, {0}}));
    FAIL("no error");
  } catch (const ShapeError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("[2,5,3,2]") != std::string::npos);
    CHECK(msg.find("[5,3,2]") != std::string::npos);
    CHECK(msg.find("[5,3,4]") != std::string::npos);
  }
}

TEST_CASE("order::Joint and order::Independent") {
  const auto batch = make_batch<float>();
  const RoundPlan joint = order::Joint{}.plan(batch);
  REQUIRE(joint.size() == 1);
  CHECK(joint[0].agents == std::vector<std::vector<index_t>>{{0, 1, 2}, {0, 1, 2}});

  const RoundPlan ind = order::Independent{}.plan(batch);
  REQUIRE(ind.size() == static_cast<std::size_t>(kA));
  for (index_t a = 0; a < kA; ++a) {
    const Round& r = ind[static_cast<std::size_t>(a)];
    CHECK_FALSE(r.others_visible);
    CHECK(r.agents == std::vector<std::vector<index_t>>{{a}, {a}});
  }
}

TEST_CASE("order::LastObsValue: MASTARS eq. 7, descending last value, ties by lower index") {
  const auto batch = make_batch<double>();
  const RoundPlan plan = order::LastObsValue{}.plan(batch);
  CHECK(sequence(plan, 0) == std::vector<index_t>{1, 0, 2});
  CHECK(sequence(plan, 1) == std::vector<index_t>{2, 1, 0});
  for (const Round& r : plan) CHECK(r.others_visible);
  CHECK_THROWS_AS(order::LastObsValue{}.plan(make_batch<double>(false)), ConfigError);
  try {
    (void)order::LastObsValue{}.plan(make_batch<double>(false));
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("values") != std::string::npos);
  }
}

TEST_CASE("order::SubgoalIndex: MASTARS eq. 8, descending subgoal, ties by lower index") {
  auto batch = make_batch<float>();
  RoundPlan plan = order::SubgoalIndex{}.plan(batch);
  CHECK(sequence(plan, 0) == std::vector<index_t>{0, 2, 1});
  CHECK(sequence(plan, 1) == std::vector<index_t>{1, 2, 0});
  for (const Round& r : plan) CHECK(r.others_visible);
  batch.subgoals = Tensor<std::int64_t>({kB, kA}, {-1, 2, 4, 0, 1, 1});
  plan = order::SubgoalIndex{}.plan(batch);
  CHECK(sequence(plan, 0) == std::vector<index_t>{2, 1, 0});
  CHECK(sequence(plan, 1) == std::vector<index_t>{1, 2, 0});
  CHECK_THROWS_AS(order::SubgoalIndex{}.plan(make_batch<float>(false)), ConfigError);
}

TEST_CASE("order::Reverse: the LOV order backwards") {
  const auto batch = make_batch<double>();
  const RoundPlan plan = order::Reverse{}.plan(batch);
  CHECK(sequence(plan, 0) == std::vector<index_t>{2, 0, 1});
  CHECK(sequence(plan, 1) == std::vector<index_t>{0, 1, 2});
  for (const Round& r : plan) CHECK(r.others_visible);
  CHECK_THROWS_AS(order::Reverse{}.plan(make_batch<double>(false)), ConfigError);
}

TEST_CASE("order::Random: reproducible per-sample permutations independent of batch splitting") {
  const index_t A = 8;
  Batch<float> big;
  big.data = Tensor<float>({5, 2, A, 1});
  Batch<float> alone;
  alone.data = Tensor<float>({1, 2, A, 1});
  alone.first_sample = 3;

  const RoundPlan p = order::Random{42}.plan(big);
  REQUIRE(p.size() == static_cast<std::size_t>(A));
  for (const Round& r : p) CHECK(r.others_visible);
  for (index_t b = 0; b < 5; ++b) CHECK(is_permutation_of_agents(sequence(p, b), A));

  CHECK(sequence(order::Random{42}.plan(big), 2) == sequence(p, 2));  // same seed, same order
  CHECK(sequence(order::Random{42}.plan(alone), 0) == sequence(p, 3));  // sample 3 alone or in a batch
  bool samples_differ = false, seeds_differ = false;
  for (index_t b = 1; b < 5; ++b) samples_differ |= sequence(p, b) != sequence(p, 0);
  for (std::uint64_t seed = 43; seed < 46; ++seed)
    seeds_differ |= sequence(order::Random{seed}.plan(big), 0) != sequence(p, 0);
  CHECK(samples_differ);
  CHECK(seeds_differ);

  // Every agent shows up first for some sample: the shuffle reaches all positions.
  Batch<double> many;
  many.data = Tensor<double>({400, 1, 4, 1});
  const RoundPlan q = order::Random{7}.plan(many);
  std::vector<int> first(4, 0);
  for (index_t b = 0; b < 400; ++b) ++first[static_cast<std::size_t>(q[0].agents[static_cast<std::size_t>(b)][0])];
  for (int c : first) CHECK(c > 50);  // expected 100 each
}

TEST_CASE("diffusion::validate_plan accepts every shipped ordering rule's plan") {
  auto batch = make_batch<float>();
  batch.first_sample = 11;
  const index_t B = batch.batch_size(), A = batch.agents();
  CHECK_NOTHROW(diffusion::validate_plan(order::Joint{}.plan(batch), B, A, "Joint"));
  CHECK_NOTHROW(diffusion::validate_plan(order::Independent{}.plan(batch), B, A, "Independent"));
  CHECK_NOTHROW(diffusion::validate_plan(order::LastObsValue{}.plan(batch), B, A, "LastObsValue"));
  CHECK_NOTHROW(diffusion::validate_plan(order::SubgoalIndex{}.plan(batch), B, A, "SubgoalIndex"));
  CHECK_NOTHROW(diffusion::validate_plan(order::Reverse{}.plan(batch), B, A, "Reverse"));
  CHECK_NOTHROW(diffusion::validate_plan(order::Random{5}.plan(batch), B, A, "Random"));
  // And rejects a broken one.
  CHECK_THROWS_AS(diffusion::validate_plan({round_of({{0, 0}, {1, 2}})}, B, A, "broken"), ConfigError);
  CHECK_THROWS_AS(diffusion::validate_plan({round_of({{0}, {1, 2}})}, B, A, "broken"), ConfigError);
}

TEST_CASE("filter::AcceptAll keeps every sample") {
  const auto batch = make_batch<double>();
  const filter::Verdict v = filter::AcceptAll{}.check(batch.data, batch);
  CHECK(v.keep == std::vector<std::uint8_t>{1, 1});
  CHECK(v.reason == std::vector<std::string>{"", ""});
}

TEST_CASE("filter::Callable validates and completes the user's verdict") {
  const auto batch = make_batch<float>();
  const auto keep_first = filter::from_function([](const Tensor<float>& s, const Batch<float>&) {
    filter::Verdict v;
    for (index_t b = 0; b < s.dim(0); ++b) v.keep.push_back(b == 0);
    return v;
  });
  const filter::Verdict v = keep_first.check(batch.data, batch);
  CHECK(v.keep == std::vector<std::uint8_t>{1, 0});
  REQUIRE(v.reason.size() == 2);
  CHECK(v.reason[0].empty());
  CHECK_FALSE(v.reason[1].empty());

  const filter::Callable with_reasons{[](const Tensor<float>&, const Batch<float>&) {
    return filter::Verdict{{0, 1}, {"too fast", ""}};
  }};
  CHECK(with_reasons.check(batch.data, batch).reason == std::vector<std::string>{"too fast", ""});

  const auto short_keep = filter::from_function(
      [](const Tensor<float>&, const Batch<float>&) { return filter::Verdict{{1}, {}}; });
  CHECK_THROWS_AS(short_keep.check(batch.data, batch), ConfigError);
  const auto short_reason = filter::from_function(
      [](const Tensor<float>&, const Batch<float>&) { return filter::Verdict{{1, 1}, {""}}; });
  CHECK_THROWS_AS(short_reason.check(batch.data, batch), ConfigError);
}

TEST_CASE("filter::Threshold keeps samples whose score is below the threshold") {
  const auto batch = make_batch<double>();
  const filter::Threshold thr{[](const Tensor<double>&, const Batch<double>&) { return std::vector<double>{0.5, 2.0}; },
                              1.0};
  const filter::Verdict v = thr.check(batch.data, batch);
  CHECK(v.keep == std::vector<std::uint8_t>{1, 0});
  CHECK(v.reason == std::vector<std::string>{"", "score 2 >= threshold 1"});

  const filter::Threshold at{[](const Tensor<double>&, const Batch<double>&) {
                               return std::vector<double>{1.0, std::nan("")};
                             },
                             1.0};
  CHECK(at.check(batch.data, batch).keep == std::vector<std::uint8_t>{0, 0});  // strict <, NaN rejected

  const filter::Threshold wrong{[](const Tensor<double>&, const Batch<double>&) { return std::vector<double>{0.0}; },
                                1.0};
  CHECK_THROWS_AS(wrong.check(batch.data, batch), ConfigError);
}
