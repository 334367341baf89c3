// Datasets for --data / --calib, streamed in batches so that evaluating 60,000
// images holds only a batch of pixels at a time.
//
// Specs (each may end in a slice [a:b], [:b] or [a:]):
//   fashion-mnist:train | fashion-mnist:test   Debian's dataset-fashion-mnist
//   digits                                      8x8 digits from python3-sklearn
//   idx:IMAGES,LABELS                           IDX files, raw or gzipped
//   npy:X.npy[,Y.npy]                           samples along dim 0
//   npz:FILE.npz                                arrays x and (optional) y, stored
//                                               or deflated (savez_compressed)
#ifndef LOWBIT_DATA_DATASET_H_
#define LOWBIT_DATA_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

// Whether samples of shape `sample` can feed a model input of per-sample
// shape `input` (both without the batch dimension): the same number of values
// and, unless one side is flat (images into an MLP), the same dimensions once
// those of size 1 are dropped -- so NHWC images for an NCHW model
// ([224, 224, 3] for [3, 224, 224]) are refused rather than read scrambled.
bool SampleFitsInput(const std::vector<int64_t>& sample, const std::vector<int64_t>& input);

struct Preprocess {
  // Multiplies raw values; < 0 means the dataset's default (1/255 for 8-bit
  // images, 1/16 for digits, 1 for npy/npz).
  double scale = -1;
  std::vector<float> mean, std;  // per channel (dim 1 of NCHW), or one value
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  // Opens a spec; errors name the spec, file and values involved.
  static Result<std::unique_ptr<Dataset>> Open(const std::string& spec);

  const std::string& spec() const { return spec_; }
  int64_t size() const { return end_ - begin_; }
  // Shape of one sample as stored (e.g. [28, 28]).
  const std::vector<int64_t>& sample_shape() const { return sample_shape_; }
  int64_t sample_size() const;
  bool has_labels() const { return has_labels_; }
  double default_scale() const { return default_scale_; }

  // Reads samples [index, index + n) of the slice as raw values (before
  // preprocessing) into x (n * sample_size()) and, if labelled, labels.
  // Sequential reads are fastest; any order works.
  virtual Status Read(int64_t index, int64_t n, float* x, int64_t* labels) = 0;

 protected:
  std::string spec_;
  std::vector<int64_t> sample_shape_;
  bool has_labels_ = false;
  double default_scale_ = 1.0;
  int64_t begin_ = 0, end_ = 0;  // slice of the underlying samples
  int64_t total_ = 0;            // underlying samples
  // Applies a parsed [a:b] slice against total_; errors name the spec.
  Status ApplySlice(int64_t a, int64_t b, bool has_a, bool has_b);
  friend Result<std::unique_ptr<Dataset>> OpenDataset(const std::string&);
};

// Reads every sample and label of `data` into memory, for data read many
// times (the tuner evaluates each candidate on the same samples: a gzipped
// IDX file is then decoded once). The copy keeps the spec, sample shape and
// default scale; it holds size() * sample_size() floats.
Result<std::unique_ptr<Dataset>> LoadIntoMemory(Dataset& data);

// Scales and normalizes n samples in place for a model input whose channel
// count is `channels` (dim 1 of NCHW; 1 when the input has no channel dim).
Status ApplyPreprocess(const Preprocess& p, double default_scale, int64_t n, int64_t sample_size,
                       int64_t channels, float* x);

}  // namespace lowbit

#endif  // LOWBIT_DATA_DATASET_H_
