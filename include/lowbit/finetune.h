// Quantization-aware training through lowbit's C++ API: what `lowbit
// finetune` does, as a function. In its own library, lowbit::train
// (liblowbit_train, which links LibTorch; liblowbit does not), present when
// lowbit was built with libtorch-dev.
#ifndef LOWBIT_FINETUNE_H_
#define LOWBIT_FINETUNE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/lowbit.h"

namespace lowbit {

struct FinetuneEpoch {
  int stage = 0, epoch = 0;  // from 0
  double loss = 0;           // mean training loss
  double val_top1 = 0;       // percent, the training side's (fake-quantized) on val
  double seconds = 0, images_per_second = 0;
  double mean_bits = -1;     // learning bit widths: the MAC-weighted mean width; else -1
  bool resumed = false;      // read back from a checkpoint
};

// `lowbit finetune`'s options (see its --help for each).
struct FinetuneConfig {
  std::string train, val;                   // labelled dataset specs (required)
  std::string weights, plan_file, acts, granularity;  // weights or plan_file (or learn_bits)
  int epochs = 3;
  int64_t batch = 64;
  double lr = 5e-4;
  std::string optimizer = "adam";           // adam or sgd
  bool distill = false, two_stage = false;
  bool learn_bits = false;
  double bitops_weight = 0.5;
  int min_bits = 2, max_bits = 8;
  double prune = 0;
  // Codebook centroids' start: pso (particle-swarm seeded k-means, the
  // pruning + k-means paper's), dp (exact 1-D k-means) or kmeans++.
  std::string codebook_init = "pso";
  std::string checkpoint_dir;               // "": no checkpoints
  bool resume = false;
  int64_t calib_samples = 2048, val_limit = 0;
  double preprocess_scale = -1;
  std::vector<float> mean, stddev;
  int threads = 1;
  uint64_t seed = 1;
  std::string plan_out;                     // write the result's plan here ("": no)
  bool show_progress = false;               // a progress line on stderr when it is a terminal
  // Called after every epoch, on the calling thread.
  std::function<void(const FinetuneEpoch&)> on_epoch;
};

struct FinetuneStage {
  std::string name;
  double start_val_top1 = 0;  // before the stage (stage 1: post-training quantization)
  std::vector<FinetuneEpoch> epochs;
};

struct FinetuneLayer {
  std::string name, op, weights, acts;
  int64_t bytes = 0;
  std::vector<int32_t> filters;  // filter-wise: a format index per filter
};

struct FinetuneSummary {
  double fp32_val_top1 = 0;
  std::vector<FinetuneStage> stages;
  std::vector<FinetuneLayer> layers;
  int64_t input_bytes = 0, output_bytes = 0;
  double bitops = 0, bitops_w4a8 = 0;  // per sample, of the result and of uniform W4A8
  double seconds = 0;
  int64_t peak_rss_bytes = 0;
};

// Trains the fp32 model at `model_path` quantized as configured and writes
// the packed result to `out_path` (through a temporary file and a rename).
// Sets LibTorch's thread count to config.threads and OpenBLAS's to 1 for this
// process. With 2 or more threads, start the process with
// OMP_WAIT_POLICY=PASSIVE (OpenMP reads it only when it loads; without it
// two threads ran 2-3x slower per step than one here); `lowbit finetune`
// does. Not thread-safe: one call at a time per process.
Result<FinetuneSummary> FinetuneModel(const std::string& model_path, const std::string& out_path,
                                      const FinetuneConfig& config);

}  // namespace lowbit

#endif  // LOWBIT_FINETUNE_H_
