// lowbit: quantize neural networks to 1-8-bit formats and run them on CPUs.
#include <cstdio>
#include <exception>
#include <new>
#include <string_view>
#include <vector>

#include "commands.h"
#include "runtime/blas_setup.h"

namespace lowbit {
int& CommandExitCode() {
  static int code = 0;
  return code;
}
}  // namespace lowbit

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "finetune") return lowbit::RunFinetuneProgram(argc, argv);
  lowbit::EnsureFastBlas(argv);
  CLI::App app{"lowbit: low-bit number formats, quantization and kernels for CPU inference"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lowbit 0.1.0");
  const std::vector<lowbit::Command> commands = {
      lowbit::AddFormatsCommand(app),
      lowbit::AddTuneCommand(app),
      lowbit::AddQuantizeCommand(app),
      lowbit::AddInspectCommand(app),
      lowbit::AddExportCommand(app),
      lowbit::AddEvalCommand(app),
      lowbit::AddRunCommand(app),
      lowbit::AddBenchCommand(app),
  };
  lowbit::AddFinetuneCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 2;
  }
  for (const lowbit::Command& command : commands) {
    if (!command.app->parsed()) continue;
    lowbit::Status status;
    try {
      status = command.run();
    } catch (const std::bad_alloc&) {
      status = lowbit::Status(lowbit::StatusCode::kInternal, "out of memory");
    } catch (const std::exception& e) {  // a bug: still one line and exit 1, not an abort
      status = lowbit::Status(lowbit::StatusCode::kInternal, e.what());
    }
    if (!status.ok()) {
      std::fprintf(stderr, "lowbit %s: error: %s\n", command.app->get_name().c_str(),
                   status.ToString().c_str());
      return 1;
    }
  }
  return lowbit::CommandExitCode();
}
