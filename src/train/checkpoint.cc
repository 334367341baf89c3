#include "train/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace lowbit::train {
namespace {

std::string FileOf(const std::string& dir) { return dir + "/finetune.ckpt"; }

torch::Tensor StringTensor(const std::string& s) {
  return torch::from_blob(const_cast<char*>(s.data()), {static_cast<int64_t>(s.size())}, torch::kUInt8)
      .clone();
}

std::string TensorString(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

// Every tensor a checkpoint holds, in a fixed order (undefined: a slot
// that is empty in this configuration).
std::vector<torch::Tensor> StateOf(const TorchGraph& g) {
  std::vector<torch::Tensor> out;
  for (const TrainLayer& l : g.layers()) {
    out.push_back(l.w);
    out.push_back(l.b);
    if (l.wq) for (const torch::Tensor& t : l.wq->State()) out.push_back(t);
    if (l.bq) for (const torch::Tensor& t : l.bq->Parameters()) out.push_back(t);
    if (l.xq) for (const torch::Tensor& t : l.xq->Parameters()) out.push_back(t);
    if (l.rq) for (const torch::Tensor& t : l.rq->Parameters()) out.push_back(t);
  }
  return out;
}

}  // namespace

bool CheckpointExists(const std::string& dir) {
  struct stat st{};
  return ::stat(FileOf(dir).c_str(), &st) == 0;
}

Status SaveCheckpoint(const std::string& dir, const std::string& key, int stage, int epoch,
                      const std::vector<EpochReport>& history,
                      const std::vector<double>& stage_start_top1, const std::string& plan,
                      const TorchGraph& graph, torch::optim::Optimizer& optimizer) {
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
    return InvalidArgument("--checkpoint '", dir, "': cannot create the directory");
  }
  nlohmann::json meta;
  meta["stage"] = stage;
  meta["epoch"] = epoch;
  meta["stage_start_top1"] = stage_start_top1;
  meta["plan"] = plan;
  for (const EpochReport& e : history) {
    meta["history"].push_back({{"stage", e.stage}, {"epoch", e.epoch}, {"loss", e.loss},
                               {"val_top1", e.val_top1}, {"seconds", e.seconds},
                               {"images_per_second", e.images_per_second},
                               {"mean_bits", std::isfinite(e.mean_bits) ? nlohmann::json(e.mean_bits) : nullptr}});
  }
  torch::serialize::OutputArchive a;
  a.write("key", StringTensor(key));
  a.write("meta", StringTensor(meta.dump()));
  const std::vector<torch::Tensor> state = StateOf(graph);
  a.write("state_count", torch::tensor(static_cast<int64_t>(state.size())));
  for (size_t i = 0; i < state.size(); ++i) {
    a.write("state." + std::to_string(i), state[i].defined() ? state[i].detach() : torch::zeros({0}));
  }
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  a.write("optimizer", opt);
  const std::string path = FileOf(dir), tmp = path + ".tmp";
  a.save_to(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return InvalidArgument("--checkpoint: cannot rename '", tmp, "' to '", path, "'");
  }
  return OkStatus();
}

Result<Checkpoint> LoadCheckpoint(const std::string& dir, const std::string& key) {
  const std::string path = FileOf(dir);
  Checkpoint ck;
  ck.archive = std::make_shared<torch::serialize::InputArchive>();
  try {
    ck.archive->load_from(path);
    torch::Tensor k, meta_t;
    ck.archive->read("key", k);
    if (TensorString(k) != key) {
      return InvalidArgument(path, ": this checkpoint belongs to another model, data or options; "
                                   "remove it or use another --checkpoint directory");
    }
    ck.archive->read("meta", meta_t);
    const nlohmann::json meta = nlohmann::json::parse(TensorString(meta_t));
    ck.stage = meta.at("stage").get<int>();
    ck.epoch = meta.at("epoch").get<int>();
    ck.stage_start_top1 = meta.at("stage_start_top1").get<std::vector<double>>();
    ck.plan = meta.value("plan", std::string());
    if (meta.contains("history")) {
      for (const auto& h : meta["history"]) {
        EpochReport e;
        e.stage = h.at("stage").get<int>();
        e.epoch = h.at("epoch").get<int>();
        e.loss = h.at("loss").get<double>();
        e.val_top1 = h.at("val_top1").get<double>();
        e.seconds = h.at("seconds").get<double>();
        e.images_per_second = h.at("images_per_second").get<double>();
        e.mean_bits = h.at("mean_bits").is_null() ? NAN : h.at("mean_bits").get<double>();
        e.resumed = true;
        ck.history.push_back(e);
      }
    }
  } catch (const std::exception& e) {
    return InvalidArgument(path, ": not a readable lowbit checkpoint (", TorchStatus(e, "load").message(), ")");
  }
  return ck;
}

Status RestoreCheckpoint(const Checkpoint& ck, TorchGraph& graph, torch::optim::Optimizer& optimizer) {
  try {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> state = StateOf(graph);
    torch::Tensor count;
    ck.archive->read("state_count", count);
    if (count.item<int64_t>() != static_cast<int64_t>(state.size())) {
      return InvalidArgument("the checkpoint holds ", count.item<int64_t>(), " tensors; this run has ",
                             state.size());
    }
    for (size_t i = 0; i < state.size(); ++i) {
      torch::Tensor t;
      ck.archive->read("state." + std::to_string(i), t);
      if (state[i].defined() && state[i].numel() > 0) state[i].set_data(t);
    }
    torch::serialize::InputArchive opt;
    ck.archive->read("optimizer", opt);
    optimizer.load(opt);
  } catch (const std::exception& e) {
    return TorchStatus(e, "--resume");
  }
  return OkStatus();
}

}  // namespace lowbit::train
