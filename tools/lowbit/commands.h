// The `lowbit` subcommands: each file registers one on the app and returns the
// Status main() reports.
#ifndef LOWBIT_TOOLS_COMMANDS_H_
#define LOWBIT_TOOLS_COMMANDS_H_

#include <functional>

#include <CLI/CLI.hpp>

#include "lowbit/status.h"

namespace lowbit {

// A subcommand registered on the app, and the function that runs it once the
// command line is parsed.
struct Command {
  CLI::App* app;
  std::function<Status()> run;
};
Command AddFormatsCommand(CLI::App& app);
Command AddEvalCommand(CLI::App& app);
Command AddRunCommand(CLI::App& app);
Command AddBenchCommand(CLI::App& app);
Command AddQuantizeCommand(CLI::App& app);
Command AddInspectCommand(CLI::App& app);
Command AddExportCommand(CLI::App& app);
Command AddTuneCommand(CLI::App& app);
// finetune is its own program (it links LibTorch): listed in --help, run
// before the command line is parsed.
void AddFinetuneCommand(CLI::App& app);
int RunFinetuneProgram(int argc, char** argv);

// The exit status of a command that succeeded but has news to give (tune: 3
// when no point met the bound); 0 unless set.
int& CommandExitCode();

}  // namespace lowbit

#endif  // LOWBIT_TOOLS_COMMANDS_H_
