// `lowbit finetune`: runs lowbit-finetune (finetune_main.cc), installed
// beside this program when lowbit is built with LibTorch, with the same
// arguments; without it, says so.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.h"

namespace lowbit {

int RunFinetuneProgram(int argc, char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path program = self.parent_path() / "lowbit-finetune";
  if (ec || !std::filesystem::exists(program)) {
    std::fprintf(stderr,
                 "lowbit finetune: error: training is not built: this lowbit was configured "
                 "without LibTorch (install libtorch-dev and rebuild; -DLOWBIT_WITH_TORCH=ON)\n");
    return 1;
  }
  std::vector<char*> args = {const_cast<char*>("lowbit-finetune")};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(program.c_str(), args.data());
  std::fprintf(stderr, "lowbit finetune: error: cannot run %s\n", program.c_str());
  return 1;
}

void AddFinetuneCommand(CLI::App& app) {
  app.add_subcommand("finetune",
                     "Quantization-aware training (LibTorch) to a packed model; "
                     "'lowbit finetune --help' for its options");
}

}  // namespace lowbit
