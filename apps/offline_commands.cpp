// coordiff offline-train (one learner on one dataset) and coordiff table1 (the Table-1 harness).
//
// The harness is a resumable make: for every env x quality it needs the original dataset, a MASTARS model,
// one augmented dataset per method and one offline-train result per learner x method x seed. Each is a
// file made by a child `coordiff` process whose command line is recorded; a file that exists is not
// made again, and a file is made only when a missing result needs it, so an interrupted run resumes where
// it stopped and a single cell re-runs from its command. Learner cells run --jobs at a time, each on one
// thread. The measurements (cell results, augmentation reports) go to a records directory (--records,
// docs/results/table1 by default) that is kept with the report; the large intermediate files (datasets,
// models, logs) go to --dir and are re-made, identically, when a missing cell needs them.
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_flags.hpp"
#include "commands.hpp"
#include "coordiff/core/threading.hpp"
#include "coordiff/io/json_file.hpp"
#include "coordiff/mastars/augment.hpp"
#include "coordiff/offline/mpe_run.hpp"
#include "coordiff/viz/svg_plot.hpp"

extern char** environ;

namespace coordiff::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
/// Where a result was computed: native builds round differently on other processors (docs/determinism.md).
json machine_description() {
  std::string cpu;
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; cpu.empty() && std::getline(info, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) cpu = line.substr(line.find(':') + 2);
#ifdef COORDIFF_NATIVE_BUILD
  const char* build = "native (-march=native)";
#else
  const char* build = "portable";
#endif
  return {{"cpu", cpu}, {"build", build}, {"compiler", __VERSION__}};
}
}  // namespace

int offline_train(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"algo", "dataset", "steps", "seed", "eval-every", "eval-episodes", "env",
                                             "quality", "out", "behaviour", "threads", "actor-lr", "critic-lr", "cql-alpha", "batch",
                                             "critic-inputs"});
  // One thread by default: these networks are small (cells run side by side instead), and Eigen's
  // multi-threaded products round differently, so a result is reproducible bit for bit only at a fixed
  // thread count.
  set_num_threads(static_cast<int>(integer_flag(f, "threads", 1, 1)));
  offline::MpeRunSpec spec;
  spec.algorithm = offline::parse_algorithm(required(f, "algo"));
  spec.dataset = required(f, "dataset");
  const std::string out = required(f, "out");
  spec.rounds = integer_flag(f, "steps", 0, 1);
  spec.seed = static_cast<std::uint64_t>(integer_flag(f, "seed", 0, 0));
  spec.eval_every = integer_flag(f, "eval-every", 100, 0);
  spec.eval_episodes = integer_flag(f, "eval-episodes", 100, 1);
  spec.actor_lr = number_flag(f, "actor-lr", -1);
  spec.critic_lr = number_flag(f, "critic-lr", -1);
  spec.cql_alpha = number_flag(f, "cql-alpha", -1);
  spec.batch_size = integer_flag(f, "batch", -1, 1);
  require<ConfigError>(!f.count("actor-lr") || spec.actor_lr > 0, "--actor-lr must be > 0");
  require<ConfigError>(!f.count("critic-lr") || spec.critic_lr > 0, "--critic-lr must be > 0");
  require<ConfigError>(!f.count("cql-alpha") || spec.cql_alpha >= 0, "--cql-alpha must be >= 0");
  if (f.count("critic-inputs")) spec.critic_inputs = f.at("critic-inputs"), offline::parse_critic_inputs(spec.critic_inputs);
  if (f.count("env")) spec.env = f.at("env");
  if (f.count("quality")) spec.quality = f.at("quality");
  spec.behaviour = f.count("behaviour") ? fs::path(f.at("behaviour")) : fs::path();
  if (spec.behaviour.empty() && !spec.env.empty()) spec.behaviour = fs::path(COORDIFF_DATA_DIR) / "behaviour" / (spec.env + ".npz");
  json r = offline::run_offline_mpe(spec, &std::cerr);
  std::ostringstream cmd;
  for (int i = 0; i < argc; ++i) cmd << (i ? " " : "") << (i == 0 ? "coordiff" : argv[i]);
  r["command"] = cmd.str();
  r["machine"] = machine_description();
  const std::string stem = fs::path(out).replace_extension().string();
  std::ostringstream csv;
  csv << "round,return,normalised,critic_loss,penalty,actor_loss,q_mean,seconds\n";
  viz::LineSeries series{"normalised return", {}, {}};
  for (const auto& p : r["curve"]) {
    csv << p["round"] << ',' << p["return"] << ',' << p["normalised"] << ',' << p["critic_loss"] << ',' << p["penalty"]
        << ',' << p["actor_loss"] << ',' << p["q_mean"] << ',' << p["seconds"] << '\n';
    series.x.push_back(p["round"].get<double>());
    series.y.push_back(p["normalised"].get<double>());
  }
  const std::string text = csv.str();
  io::write_file_atomic(stem + ".csv", text.data(), text.size());
  const std::string svg = viz::line_plot_svg({series}, {.title = r["algorithm"].get<std::string>() + " on " +
                                                                  fs::path(spec.dataset).filename().string() + ", seed " +
                                                                  std::to_string(spec.seed),
                                                        .x_label = "gradient round",
                                                        .y_label = "normalised return"});
  io::write_file_atomic(stem + ".svg", svg.data(), svg.size());
  io::write_json_file(out, r);
  std::cout << "wrote " << out << ", " << stem << ".csv, " << stem << ".svg: " << r["algorithm"].get<std::string>()
            << " final return " << r["final_return"] << ", normalised " << r["final_normalised"] << " after "
            << r["rounds"] << " rounds (" << r["seconds"] << " s)\n";
  return 0;
}

namespace {

/// A file the harness makes with one child command; done when `output` exists.
struct Job {
  std::string name;
  std::vector<std::string> args;  ///< after the program name
  fs::path output;
  std::vector<std::size_t> after;  ///< indices of jobs that must be done first
  bool parallel = false;           ///< may run beside others (one thread each)
  /// Asked when the job could start: a non-empty answer (the reason) leaves it unmade.
  std::function<std::string()> skip;
};

/// A path as a user would type it here: relative to the working directory when under it.
std::string shown(const std::string& path) {
  const std::string here = fs::current_path().string() + "/";
  return path.rfind(here, 0) == 0 ? path.substr(here.size()) : path;
}
std::string command_line(const std::vector<std::string>& args) {
  std::string s = "coordiff";
  for (const auto& a : args) s += " " + shown(a);
  return s;
}

/// Runs the coordiff binary itself with args, stdout and stderr to log; returns the exit code.
int run_child(const std::vector<std::string>& args, const fs::path& log, int threads) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> all{self};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> av;
  for (auto& a : all) av.push_back(a.data());
  av.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("OMP_NUM_THREADS=", 0) != 0) env_store.emplace_back(*e);
  if (threads > 0) env_store.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  std::vector<char*> ev;
  for (auto& e : env_store) ev.push_back(e.data());
  ev.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, self.c_str(), &fa, nullptr, av.data(), ev.data());
  posix_spawn_file_actions_destroy(&fa);
  require<IoError>(rc == 0, "table1: cannot start ", self, ": ", std::strerror(rc));
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/// Runs the jobs that are not done, respecting `after`; parallel jobs up to `jobs` at once (one thread
/// each), the others alone with all threads. Stops at the first failure (its log is named).
void run_jobs(std::vector<Job>& all, int jobs, const fs::path& logs) {
  fs::create_directories(logs);
  std::vector<int> state(all.size(), 0);  // 0 waiting, 1 running, 2 done (or not needed)
  for (std::size_t i = 0; i < all.size(); ++i)
    if (fs::exists(all[i].output)) state[i] = 2;
  // Make semantics: a cell (a parallel job) is wanted when its result is missing; any other job only when
  // a wanted job depends on it. Jobs come in dependency order, so one backward sweep settles this.
  std::vector<bool> needed(all.size(), false);
  for (std::size_t i = all.size(); i-- > 0;) {
    if (state[i] == 2) continue;
    if (all[i].parallel && (!all[i].skip || all[i].skip().empty())) needed[i] = true;
    if (needed[i])
      for (std::size_t d : all[i].after) needed[d] = true;
  }
  for (std::size_t i = 0; i < all.size(); ++i)
    if (!needed[i]) state[i] = 2;
  std::size_t todo = 0;
  for (int s : state) todo += s == 0;
  std::cerr << "table1: " << all.size() - todo << " of " << all.size() << " outputs exist or are not needed; " << todo
            << " to make\n";
  std::mutex m;
  std::condition_variable cv;
  int running = 0, running_serial = 0;
  std::string failure;
  std::vector<std::thread> threads;
  const auto unblocked = [&](std::size_t i) {
    if (state[i] != 0) return false;
    for (std::size_t d : all[i].after)
      if (state[d] != 2) return false;
    return true;
  };
  // Serial jobs (data, models, augmentation) go first and wait for the running cells to drain; no new
  // cell starts while one of them waits. Cells start in job order (cheap learners first).
  const auto ready = [&](std::size_t i) {
    if (!unblocked(i)) return false;
    if (!all[i].parallel) return running == 0;
    for (std::size_t k = 0; k < all.size(); ++k)
      if (!all[k].parallel && unblocked(k)) return false;
    return running < jobs && running_serial == 0;
  };
  std::unique_lock lock(m);
  std::size_t finished = 0;
  while (finished < todo && failure.empty()) {
    bool started = false;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (!ready(i)) continue;
      if (const std::string why = all[i].skip ? all[i].skip() : std::string(); !why.empty()) {
        state[i] = 2, ++finished, started = true;
        std::cerr << "table1: skip  " << all[i].name << ": " << why << "\n";
        continue;
      }
      state[i] = 1, ++running, running_serial += !all[i].parallel, started = true;
      std::cerr << "table1: start " << all[i].name << "\n";
      threads.emplace_back([&, i] {
        const auto t0 = std::chrono::steady_clock::now();
        const int rc = run_child(all[i].args, logs / (all[i].name + ".log"), all[i].parallel ? 1 : 0);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::lock_guard g(m);
        --running, running_serial -= !all[i].parallel, ++finished;
        if (rc != 0 || !fs::exists(all[i].output)) {
          failure = all[i].name + " failed (exit " + std::to_string(rc) + "); see " + (logs / (all[i].name + ".log")).string() +
                    "\n  command: " + command_line(all[i].args);
        } else {
          state[i] = 2;
          std::cerr << "table1: done  " << all[i].name << " in " << std::fixed << std::setprecision(0) << s << " s\n";
        }
        cv.notify_all();
      });
    }
    if (!started || running > 0) cv.wait(lock);
  }
  cv.wait(lock, [&] { return running == 0; });
  lock.unlock();
  for (auto& t : threads) t.join();
  require<Error>(failure.empty(), "table1: ", failure);
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x / static_cast<double>(v.size());
  return s;
}
/// Population standard deviation (numpy's default, as offline-RL tables report).
double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m) / static_cast<double>(v.size());
  return std::sqrt(s);
}
/// v with as many significant digits as it needs (up to 10): 0.03, 1e-09.
std::string shortest(double v) {
  std::ostringstream s;
  s << std::setprecision(10) << v;
  return s.str();
}
std::string fixed(double v, int digits = 1) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

/// An augmentation that kept no window leaves the original episodes as they were (the learners' buffer,
/// moments and draws are then those of the original data, bit for bit), so its cells are the original's.
bool kept_no_window(const fs::path& report) {
  return !report.empty() && fs::exists(report) && io::read_json_file(report).value("windows_accepted", -1LL) == 0;
}
constexpr const char* kSameAsOriginal = "its augmentation kept no window, so its data are the original's (the Original cell stands for it)";

const std::map<std::string, std::string> kMethodNames = {{"original", "Original"}, {"lov", "MASTARS-LOV"}, {"sg", "MASTARS-SG"},
                                                         {"joint", "Joint (MADiff*)"}, {"independent", "Independent"},
                                                         {"reverse", "Reverse"}, {"random", "Random"}};
const std::map<std::string, std::string> kLearnerNames = {{"td3bc", "MA-TD3+BC"}, {"omar", "OMAR"}, {"cfcql", "CFCQL"}};

}  // namespace

int table1(int argc, char** argv) {
  const auto f = parse_flags(argc, argv, 2, {"dir", "envs", "qualities", "learners", "methods", "ablation", "seeds", "num",
                                             "epsilon", "episodes", "model-steps", "steps", "eval-every", "eval-episodes",
                                             "jobs", "out", "data-dir", "report-only", "records"});
  const fs::path dir = f.count("dir") ? fs::path(f.at("dir")) : fs::path("runs/table1");
  const fs::path records = f.count("records") ? fs::path(f.at("records")) : fs::path("docs/results/table1");
  const auto envs = list_flag(f, "envs", {"spread"});
  const auto qualities = list_flag(f, "qualities", {"medium-replay", "medium"});
  const auto learners = list_flag(f, "learners", {"td3bc", "omar", "cfcql"});
  const auto methods = list_flag(f, "methods", {"original", "lov", "sg", "joint"});
  auto ablation = list_flag(f, "ablation", {"medium-replay"});  // qualities with the order ablation; "none"
  if (ablation == std::vector<std::string>{"none"}) ablation.clear();
  const auto has_ablation = [&](const std::string& quality) {
    return std::find(ablation.begin(), ablation.end(), quality) != ablation.end();
  };
  const auto seeds = list_flag(f, "seeds", {"0", "1", "2"});
  const long long num = integer_flag(f, "num", 1000, 1), episodes = integer_flag(f, "episodes", 240, 1);
  const long long model_steps = integer_flag(f, "model-steps", 25000, 1), steps = integer_flag(f, "steps", 0, 0);
  const long long eval_every = integer_flag(f, "eval-every", 100, 0), eval_episodes = integer_flag(f, "eval-episodes", 100, 1);
  const long long jobs = integer_flag(f, "jobs", 2, 1);
  const double epsilon = number_flag(f, "epsilon", 0.03);
  require<ConfigError>(epsilon > 0, "--epsilon must be > 0, got ", epsilon);
  for (const auto& l : learners) offline::parse_algorithm(l);
  for (const auto& m : methods) mastars::parse_method(m == "original" ? "lov" : m);
  for (const auto& s : seeds) require<ConfigError>(s.find_first_not_of("0123456789") == std::string::npos, "--seeds must be integers, got '", s, "'");
  const fs::path out = f.count("out") ? fs::path(f.at("out")) : fs::path("docs/results.md");
  // Bundled datasets (<data-dir>/<env>_<quality>.npz) and models (<data-dir>/mastars/<env>_<quality>/) are
  // used when present.
  const fs::path data_dir = f.count("data-dir") ? fs::path(f.at("data-dir")) : fs::path(COORDIFF_DATA_DIR);

  std::vector<Job> all;
  struct Cell {
    std::string env, quality, learner, method, seed;
    fs::path result;
  };
  std::vector<Cell> cells;
  struct Source {  // a dataset the learners train on
    std::string env, quality, method;
    fs::path dataset, report;  ///< report: the augmentation's JSON report (none for the original data)
    std::size_t job;
  };
  std::vector<Source> sources;
  for (const auto& env : envs)
    for (const auto& quality : qualities) {
      const fs::path q = dir / env / quality, rq = records / env / quality;
      std::string tag = env + "_" + quality;  // spread_medium_replay: the bundled files' names
      std::replace(tag.begin(), tag.end(), '-', '_');
      // Original data: the bundled file when there is one, else gen-data with the bundled behaviour policies.
      const fs::path bundled = data_dir / (tag + ".npz");
      const fs::path original = fs::exists(bundled) ? bundled : q / "original.npz";
      std::size_t data_job = all.size();
      all.push_back({tag + "_data", {"gen-data", "--env", env, "--quality", quality, "--episodes", std::to_string(episodes),
                                     "--seed", "0", "--out", original.string()}, original, {}, false, {}});
      // Model: the bundled one, else trained with the bundled model's configuration.
      const fs::path bundled_model = data_dir / "mastars" / tag;
      const fs::path model = fs::exists(bundled_model / "diffusion.npz") ? bundled_model : q / "model";
      const fs::path cfg = data_dir / "mastars" / "spread_medium_replay" / "config.json";
      std::size_t aux_job = all.size();
      all.push_back({tag + "_aux", {"train-aux", "--dataset", original.string(), "--model", model.string(), "--config", cfg.string()},
                     model / "auxiliary.npz", {data_job}, false, {}});
      std::size_t model_job = all.size();
      all.push_back({tag + "_diffusion", {"train-diffusion", "--dataset", original.string(), "--model", model.string(), "--steps",
                                          std::to_string(model_steps)},
                     model / "diffusion.npz", {aux_job}, false, {}});
      std::vector<std::string> wanted = methods;
      if (has_ablation(quality))
        for (const char* m : {"reverse", "random", "lov", "sg"})
          if (std::find(wanted.begin(), wanted.end(), m) == wanted.end()) wanted.push_back(m);
      for (const auto& method : wanted) {
        fs::path dataset = original, report;
        std::size_t dep = data_job;
        if (method != "original") {
          dataset = q / (method + ".npz");
          report = rq / ("augment_" + method + ".json");
          dep = all.size();
          all.push_back({tag + "_" + method, {"augment", "--dataset", original.string(), "--model", model.string(), "--order", method,
                                              "--num", std::to_string(num), "--seed", "0", "--epsilon", shortest(epsilon),
                                              "--out", dataset.string(), "--report", report.string()},
                         dataset, {model_job}, false, {}});
        }
        sources.push_back({env, quality, method, dataset, report, dep});
      }
      fs::create_directories(q);
      fs::create_directories(rq / "cells");
    }
  for (const auto& learner : learners)  // cheap learners first, so that every table fills early
    for (const auto& src : sources)
      for (const auto& seed : seeds) {
        const fs::path result = records / src.env / src.quality / "cells" / (learner + "_" + src.method + "_s" + seed + ".json");
        std::vector<std::string> args{"offline-train", "--algo", learner, "--dataset", src.dataset.string(), "--seed", seed,
                                      "--eval-every", std::to_string(eval_every), "--eval-episodes", std::to_string(eval_episodes),
                                      "--out", result.string()};
        if (steps > 0) args.insert(args.end(), {"--steps", std::to_string(steps)});
        all.push_back({src.env + "_" + src.quality + "_" + learner + "_" + src.method + "_s" + seed, args, result, {src.job}, true,
                       [report = src.report] { return kept_no_window(report) ? std::string(kSameAsOriginal) : std::string(); }});
        cells.push_back({src.env, src.quality, learner, src.method, seed, result});
      }
  std::ostringstream invocation;  // as run, less --report-only
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--report-only") {
      ++i;
      continue;
    }
    invocation << (i ? " " : "") << (i == 0 ? "coordiff" : argv[i]);
  }
  const long long report_only = integer_flag(f, "report-only", 0, 0);  // 1: write the report of what exists, run nothing
  std::string failure;
  try {
    if (!report_only) run_jobs(all, static_cast<int>(jobs), dir / "logs");
  } catch (const Error& e) {
    failure = e.what();  // write what is done, then report the failure
  }

  // ---- the report -------------------------------------------------------------------------------------
  std::map<std::string, json> results;
  for (const auto& c : cells)
    if (fs::exists(c.result)) results[c.result.string()] = io::read_json_file(c.result);
  std::vector<std::string> reported_methods = methods;  // Table 1's, then the ablation's other orders
  for (const char* m : {"reverse", "random"})
    if (!ablation.empty() && std::find(reported_methods.begin(), reported_methods.end(), m) == reported_methods.end())
      reported_methods.push_back(m);
  std::vector<std::pair<std::string, std::string>> columns;  // env, quality
  for (const auto& env : envs)
    for (const auto& quality : qualities) columns.emplace_back(env, quality);
  const auto same_as_original = [&](const std::string& env, const std::string& quality, const std::string& method) {
    for (const auto& src : sources)
      if (src.env == env && src.quality == quality && src.method == method) return kept_no_window(src.report);
    return false;
  };
  std::function<std::string(const std::string&, const std::string&, const std::string&, const std::string&, std::vector<double>*)>
      cell_text;
  cell_text = [&](const std::string& env, const std::string& quality, const std::string& learner, const std::string& method,
                  std::vector<double>* seconds) {
    if (method != "original" && same_as_original(env, quality, method)) {
      const std::string t = cell_text(env, quality, learner, "original", nullptr);
      return t.empty() || t == "—" ? t : t + " (= Original)";
    }
    std::vector<double> v;
    for (const auto& c : cells)
      if (c.env == env && c.quality == quality && c.learner == learner && c.method == method && results.count(c.result.string())) {
        const auto& r = results.at(c.result.string());
        v.push_back(r["final_normalised"].get<double>());
        if (seconds) seconds->push_back(r["seconds"].get<double>());
      }
    std::size_t planned = 0;
    for (const auto& c : cells) planned += c.env == env && c.quality == quality && c.learner == learner && c.method == method;
    if (v.empty()) return std::string(planned ? "—" : "");
    std::string t = fixed(mean_of(v)) + " ± " + fixed(std_of(v));
    if (v.size() < planned) t += " (" + std::to_string(v.size()) + "/" + std::to_string(planned) + " seeds)";
    return t;
  };
  std::ostringstream md;
  md << "<!-- table1:begin (written by `coordiff table1`; edits between the markers are overwritten) -->\n\n";
  md << "Normalised return 100 (R − R_random) / (R_expert − R_random), mean ± std (population) over seeds "
     << [&] { std::string s; for (const auto& x : seeds) s += (s.empty() ? "" : ", ") + x; return s; }()
     << "; each value is the final evaluation (" << eval_episodes << " fixed evaluation episodes) of one training run.";
  for (const auto& src : sources)
    if (src.method != "original" && kept_no_window(src.report)) {
      md << " \"(= Original)\": the augmentation kept no window, so the data are the original episodes, bit for bit, and "
            "the Original cells stand for these (they are not run again).";
      break;
    }
  md << "\n\n";
  auto table = [&](const std::vector<std::string>& rows, bool ablation_table) {
    md << "| learner | data |";
    for (const auto& [env, quality] : columns)
      if (!ablation_table || has_ablation(quality)) md << " " << env << " " << quality << " |";
    md << "\n|---|---|";
    for (const auto& [env, quality] : columns)
      if (!ablation_table || has_ablation(quality)) md << "---:|";
    md << "\n";
    for (const auto& learner : learners)
      for (const auto& method : rows) {
        md << "| " << kLearnerNames.at(learner) << " | " << kMethodNames.at(method) << " |";
        for (const auto& [env, quality] : columns)
          if (!ablation_table || has_ablation(quality))
            md << " " << cell_text(env, quality, learner, method, nullptr) << " |";
        md << "\n";
      }
    md << "\n";
  };
  md << "### Table 1: original vs augmented data\n\n";
  table(methods, false);
  if (!ablation.empty()) {
    md << "### Generation-order ablation\n\n";
    table({"reverse", "random", "lov", "sg"}, true);
  }
  // Learning curves: mean normalised return over the seeds done, one figure per env, quality and learner.
  const fs::path figures = out.parent_path() / "figures";
  const std::vector<std::string> palette{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f"};
  md << "### Learning curves\n\nMean normalised return over the seeds done, every evaluation:";
  for (const auto& [env, quality] : columns)
    for (const auto& learner : learners) {
      std::vector<viz::LineSeries> series;
      for (const auto& method : reported_methods) {
        std::map<double, std::vector<double>> at;
        for (const auto& c : cells)
          if (c.env == env && c.quality == quality && c.learner == learner && c.method == method && results.count(c.result.string()))
            for (const auto& p : results.at(c.result.string())["curve"]) at[p["round"].get<double>()].push_back(p["normalised"].get<double>());
        if (at.empty()) continue;
        viz::LineSeries l{kMethodNames.at(method), {}, {}, palette[series.size() % palette.size()]};
        for (const auto& [round, v] : at) l.x.push_back(round), l.y.push_back(mean_of(v));
        series.push_back(l);
      }
      if (series.empty()) continue;
      const std::string name = "table1_" + env + "_" + quality + "_" + learner + ".svg";
      fs::create_directories(figures);
      const std::string svg = viz::line_plot_svg(series, {.title = kLearnerNames.at(learner) + " on " + env + " " + quality,
                                                          .x_label = "gradient round", .y_label = "normalised return"});
      io::write_file_atomic(figures / name, svg.data(), svg.size());
      md << " [" << kLearnerNames.at(learner) << ", " << env << " " << quality << "](figures/" << name << ")";
    }
  md << ".\n\n";
  md << "### Datasets\n\n| env | quality | data | episodes | transitions | accepted windows | acceptance | generated fraction |\n"
        "|---|---|---|---:|---:|---:|---:|---:|\n";
  for (const auto& src : sources) {
    if (src.method == "original" || !fs::exists(src.report)) continue;
    const json r = io::read_json_file(src.report);
    md << "| " << src.env << " | " << src.quality << " | " << kMethodNames.at(src.method) << " | " << r.value("out_episodes", 0LL)
       << " | " << r.value("out_transitions", 0LL) << " | " << r.value("windows_accepted", 0LL) << " | "
       << fixed(r.value("acceptance_rate", 0.0), 3) << " | " << fixed(r.value("generated_fraction", 0.0), 3) << " |\n";
  }
  md << "\n### Wall time per cell (seconds, mean over seeds, 1 thread per cell)\n\n| learner | data |";
  for (const auto& [env, quality] : columns) md << " " << env << " " << quality << " |";
  md << "\n|---|---|";
  for (std::size_t k = 0; k < columns.size(); ++k) md << "---:|";
  md << "\n";
  for (const auto& learner : learners)
    for (const auto& method : reported_methods) {
      md << "| " << kLearnerNames.at(learner) << " | " << kMethodNames.at(method) << " |";
      for (const auto& [env, quality] : columns) {
        std::vector<double> s;
        cell_text(env, quality, learner, method, &s);
        md << " " << (s.empty() ? "" : fixed(mean_of(s), 0)) << " |";
      }
      md << "\n";
    }
  md << "\n### Commands\n\nThe harness (resumes: files that exist are kept):\n\n```\n" << invocation.str()
     << "\n```\n\nThe command behind every result above and every file it needed (any line re-runs that file alone once it "
        "is deleted):\n\n```\n";
  const auto made_here = [&](const fs::path& p) {
    for (const fs::path& root : {dir, records}) {
      const auto rel = fs::relative(fs::absolute(p), fs::absolute(root));
      if (!rel.empty() && *rel.begin() != "..") return true;
    }
    return false;
  };
  // A finished cell, and what it was made from (present or not: the intermediate files are re-made on
  // demand and are not kept with the records).
  std::vector<bool> listed(all.size(), false);
  for (std::size_t i = all.size(); i-- > 0;) {
    if (all[i].parallel && fs::exists(all[i].output)) listed[i] = true;
    if (!listed[i]) continue;
    for (std::size_t d : all[i].after) listed[d] = true;
  }
  for (std::size_t i = 0; i < all.size(); ++i)
    if (listed[i] && made_here(all[i].output)) md << command_line(all[i].args) << "\n";
  md << "```\n\nBundled inputs used as they are:";
  std::set<std::string> bundled_inputs;
  for (const auto& j : all)
    if (!j.parallel && fs::exists(j.output) && !made_here(j.output)) bundled_inputs.insert(j.output.parent_path().string() == data_dir.string()
                                                                                          ? j.output.string() : j.output.parent_path().string());
  for (const auto& b : bundled_inputs) md << " `" << shown(b) << "`";
  md << (bundled_inputs.empty() ? " none.\n\n" : ".\n\n") << "<!-- table1:end -->\n";

  // Keep hand-written text around the markers.
  std::string before, after;
  if (fs::exists(out)) {
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string old = ss.str();
    const auto b = old.find("<!-- table1:begin"), e = old.find("<!-- table1:end -->");
    if (b != std::string::npos && e != std::string::npos) {
      before = old.substr(0, b);
      after = old.substr(e + std::string("<!-- table1:end -->\n").size());
    } else {
      before = old + "\n";
    }
  } else {
    before = "# Results: offline MARL on original and augmented data\n\n";
  }
  const std::string text = before + md.str() + after;
  io::write_file_atomic(out, text.data(), text.size());
  std::size_t standing = 0;  // cells an Original cell stands for
  for (const auto& c : cells) standing += !results.count(c.result.string()) && c.method != "original" && same_as_original(c.env, c.quality, c.method);
  std::cout << "wrote " << out << " (" << results.size() << " of " << cells.size() << " cells done";
  if (standing) std::cout << ", " << standing << " more stand on the Original cells";
  std::cout << ")\n";
  require<Error>(failure.empty(), failure);
  return 0;
}

}  // namespace coordiff::cli
