// Training checkpoints: after every epoch, the whole training state (weights,
// biases, quantizer parameters and level tables, optimizer state, the epoch
// reports) in one file, written to a temporary name and renamed, so a kill at
// any moment leaves the previous checkpoint or the new one. The file carries
// the key of the model, data and options it belongs to; another run's
// checkpoint is refused. Internal to src/train.
#ifndef LOWBIT_TRAIN_CHECKPOINT_H_
#define LOWBIT_TRAIN_CHECKPOINT_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "lowbit/status.h"
#include "train/epoch_report.h"
#include "train/torch_graph.h"

namespace lowbit::train {

struct Checkpoint {
  int stage = 0, epoch = -1;  // the last finished epoch
  std::vector<EpochReport> history;
  std::vector<double> stage_start_top1;
  std::string plan;  // the learned plan of a stage after learning bit widths ("" otherwise)
  std::shared_ptr<torch::serialize::InputArchive> archive;
};

bool CheckpointExists(const std::string& dir);
Status SaveCheckpoint(const std::string& dir, const std::string& key, int stage, int epoch,
                      const std::vector<EpochReport>& history,
                      const std::vector<double>& stage_start_top1, const std::string& plan,
                      const TorchGraph& graph,
                      torch::optim::Optimizer& optimizer);
// Refuses, naming the file, a checkpoint of another model, data or options.
Result<Checkpoint> LoadCheckpoint(const std::string& dir, const std::string& key);
// Puts the checkpoint's state into `graph` (built with the same quantizers)
// and `optimizer`.
Status RestoreCheckpoint(const Checkpoint& ck, TorchGraph& graph, torch::optim::Optimizer& optimizer);

}  // namespace lowbit::train

#endif  // LOWBIT_TRAIN_CHECKPOINT_H_
