// Quantization-aware fine-tuning (`lowbit finetune`): a graph's layers get
// the plan's formats as post-training quantization would choose them
// (quant/quantize_layer.h, calibrated on training samples), then the weights,
// biases, weight step sizes (per channel), zero points and 8-bit activation
// ranges (per tensor) are trained through fake quantizers that compute what
// lowbit's encoder and kernels compute (train/fake_quant.h), and the result
// is packed from exactly those parameters (PackFixedLayer).
//
// Two-stage n-hot (the n-hot paper): with two_stage, layers planned as nhotN-b
// first train with int-b (no bit-level sparsity); then their n-hot tables are
// fitted to the trained weights and training continues.
//
// This header is torch-free; the implementation is the only code in lowbit
// that includes LibTorch. Built only with LOWBIT_WITH_TORCH.
#ifndef LOWBIT_TRAIN_FINETUNE_H_
#define LOWBIT_TRAIN_FINETUNE_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"
#include "lowbit/status.h"
#include "quant/quant_plan.h"
#include "quant/quantize_layer.h"
#include "train/epoch_report.h"

namespace lowbit {

struct FinetuneOptions {
  QuantPlan plan;
  LayerQuantOptions quant;  // the starting point's fitting (weight_clip_auto, ...)
  Preprocess preprocess;
  int64_t calib_samples = 2048;  // training samples the activation ranges start from
  int epochs = 3;                // per stage
  int64_t batch = 64;
  double lr = 5e-4;              // peak; cosine decay to 0 over each stage
  std::string optimizer = "adam";  // adam | sgd (momentum 0.9)
  bool distill = false;          // add KL(fp32 teacher || student) on logits
  bool two_stage = false;
  double prune = 0;              // magnitude pruning per layer (held at zero)
  bool learn_levels = true;      // codebook centroids are trained
  // Learned per-filter bit widths (train/learn_bits.h): `epochs` of learning
  // with loss + bitops_weight * (bit-ops / bit-ops of W4), widths snapped to
  // the kernels' (1, 2, 4, 8 within [min_bits, max_bits]), then
  // max(1, epochs / 3) epochs of fine-tuning the snapped plan. Layers the
  // plan keeps float stay float; activations follow the plan.
  bool learn_bits = false;
  double bitops_weight = 0.5;
  int min_bits = 2, max_bits = 8;
  std::string checkpoint_dir;    // empty: no checkpoints
  bool resume = false;
  int threads = 1;
  uint64_t seed = 1;
  bool quiet = false;
  int64_t val_limit = 0;         // evaluate at most this many --val samples per epoch (0: all)
};

struct FinetuneResult {
  Graph graph;                     // packed
  std::vector<LayerReport> layers;
  std::vector<std::pair<std::string, LayerSettings>> resolved;  // the plan, per layer
  double fp32_val_top1 = 0;
  std::vector<StageReport> stages;
  // Training-side top-1 classes of the final model on val (as evaluated
  // for the last epoch), for comparing with the packed file on lowbit's kernels.
  std::vector<int32_t> val_classes;
  // Bit-operations per sample (MACs x weight bits x activation bits) of the
  // result, and of the same model in uniform W4A8.
  double bitops = 0, bitops_w4a8 = 0;
  double seconds = 0;
  int64_t peak_rss_bytes = 0;
};

// `graph` optimized fp32; `train` and `val` labelled. Progress (images/s,
// loss, ETA) on a terminal unless quiet; `on_epoch` after every epoch.
Result<FinetuneResult> Finetune(const Graph& graph, Dataset& train, Dataset& val,
                                const FinetuneOptions& options,
                                const std::function<void(const EpochReport&)>& on_epoch = {});

// Whether this build has training (LibTorch).
bool TrainingBuilt();

}  // namespace lowbit

#endif  // LOWBIT_TRAIN_FINETUNE_H_
