#pragma once
// Subcommands of the coordiff tool defined outside coordiff.cpp.
namespace coordiff::cli {

/// coordiff offline-train: one offline learner on one MPE dataset (offline_commands.cpp).
int offline_train(int argc, char** argv);
/// coordiff table1: the Table-1 harness (offline_commands.cpp).
int table1(int argc, char** argv);
/// coordiff plan: closed-loop diffusion planning on the double-integrator safety task (plan_command.cpp).
int plan(int argc, char** argv);

}  // namespace coordiff::cli
