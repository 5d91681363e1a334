// Must not compile: terms() returns the weights as a pair instead of offline::objective::ActorTerms<T>.
// Passes iff the first error is "coordiff ActorObjective: missing `offline::objective::ActorTerms<T>
// terms(const ActorStep<T>&) const`".
#include <utility>

#include "coordiff/offline/actor_critic.hpp"

using namespace coordiff;

struct HalfCloned {
  static constexpr const char* kName = "half-cloned";
#ifdef COORDIFF_COMPILE_FAIL_CONTROL
  template <class T>
  offline::objective::ActorTerms<T> terms(const offline::objective::ActorStep<T>& s) const {
    return {0.5, 0.5, s.data};
  }
#else
  template <class T>
  std::pair<double, double> terms(const offline::objective::ActorStep<T>&) const {
    return {0.5, 0.5};
  }
#endif
};

int main() {
  offline::ActorCritic<double, HalfCloned> learner(2, 3, 2);
  return learner.agents() == 2 ? 0 : 1;
}
