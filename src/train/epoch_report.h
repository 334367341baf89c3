// What training reports per epoch and per stage (train/finetune.h), kept
// apart so checkpoints (train/checkpoint.h) can store it. Torch-free.
#ifndef LOWBIT_TRAIN_EPOCH_REPORT_H_
#define LOWBIT_TRAIN_EPOCH_REPORT_H_

#include <cmath>
#include <string>
#include <vector>

namespace lowbit {

struct EpochReport {
  int stage = 0, epoch = 0;
  double loss = 0;          // mean training loss
  double val_top1 = 0;      // training-side (fake-quantized) top-1 on val, percent
  double seconds = 0, images_per_second = 0;
  bool resumed = false;     // read back from a checkpoint, not run
  double mean_bits = NAN;   // learning bit widths: MAC-weighted mean width at the epoch's end
};

struct StageReport {
  std::string name;         // "int4 (stage 1 of 2)", ...
  double start_val_top1 = 0;  // before training this stage (post-training quantization for stage 1)
  std::vector<EpochReport> epochs;
};

}  // namespace lowbit

#endif  // LOWBIT_TRAIN_EPOCH_REPORT_H_
