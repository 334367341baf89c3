// The tuner's search phases: the Lagrangian sweep and bisection, greedy
// descent and pairwise moves (at the bound and above it), the random search
// for comparison, and the end-to-end confirmation of latency candidates.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "base/rng.h"
#include "runtime/plan.h"
#include "runtime/profile.h"
#include "tune/tuner_impl.h"

namespace lowbit::tune_detail {

std::vector<int> Tuner::Lagrangian(double lambda) const {
  std::vector<int> choice(r_.layers.size(), 0);
  for (size_t l = 0; l < r_.layers.size(); ++l) {
    double best = std::numeric_limits<double>::infinity();
    for (size_t s = 0; s < o_.space.size(); ++s) {
      if (!r_.layers[l].valid[s]) continue;
      const double v = Cost(static_cast<int>(l), static_cast<int>(s)) +
                       lambda * std::max(0.0, Proxy(static_cast<int>(l), static_cast<int>(s)));
      if (v < best) {
        best = v;
        choice[l] = static_cast<int>(s);
      }
    }
  }
  return choice;
}

std::vector<int> Tuner::Uniform(int s) const {
  std::vector<int> choice(r_.layers.size());
  for (size_t l = 0; l < r_.layers.size(); ++l) {
    const std::vector<bool>& v = r_.layers[l].valid;
    choice[l] = v[s] ? s : static_cast<int>(std::find(v.begin(), v.end(), true) - v.begin());
  }
  return choice;
}

double Tuner::SweepLambda(int k) const {
  double mean_cost = 0;
  for (size_t l = 0; l < r_.layers.size(); ++l) mean_cost += Cost(static_cast<int>(l), 0);
  const double allowed = o_.metric == TuneMetric::kSqnr ? std::pow(10.0, -r_.bound / 10)
                                                        : std::max(r_.fp32_metric - r_.bound, 1e-3);
  return std::max(mean_cost, 1e-9) / allowed * std::pow(10.0, k / 4.0);
}

int Tuner::BestMeeting(double level) const {
  int best = -1;
  for (size_t i = 0; i < r_.points.size(); ++i) {
    const TunePoint& p = r_.points[i];
    if (Meets(static_cast<int>(i), level) && (best < 0 || p.objective < r_.points[best].objective)) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

std::vector<double> Tuner::FrontLevels() const {
  if (o_.metric == TuneMetric::kSqnr) return {r_.bound + 3, r_.bound + 6};
  const double room = r_.fp32_metric - r_.bound;
  if (!(room > 0)) return {};
  return {r_.bound + 0.5 * room, r_.bound + 0.75 * room};
}

Status Tuner::Sweep() {
  std::vector<std::vector<int>> ahead;
  for (size_t s = 0; s < o_.space.size(); ++s) ahead.push_back(Uniform(static_cast<int>(s)));
  for (int k = -16; k <= 16; ++k) ahead.push_back(Lagrangian(SweepLambda(k)));
  LOWBIT_RETURN_IF_ERROR(Prefetch(ahead));
  // Uniform plans: every layer one setting (where the kernels run it; else
  // the layer's first valid setting), the most accurate by the isolated
  // losses first and fp32 last, so that a run whose budget the per-layer
  // measurements spent still writes a plan that likely meets the bound.
  std::vector<std::pair<double, int>> uniform;  // (summed proxy loss, setting)
  for (size_t s = 0; s < o_.space.size(); ++s) {
    const std::vector<int> choice = Uniform(static_cast<int>(s));
    bool any = false;
    double loss = 0;
    for (size_t l = 0; l < r_.layers.size(); ++l) {
      any = any || r_.layers[l].valid[s];
      loss += std::max(0.0, Proxy(static_cast<int>(l), choice[l]));
    }
    if (!any) continue;
    uniform.push_back({o_.space[s] == "float" ? std::numeric_limits<double>::infinity() : loss,
                       static_cast<int>(s)});
  }
  std::stable_sort(uniform.begin(), uniform.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [loss, s] : uniform) {
    const std::vector<int> choice = Uniform(s);
    bool more = false;
    LOWBIT_ASSIGN_OR_RETURN(more, Evaluate(choice, "uniform"));
    if (!more) return OkStatus();
  }
  std::vector<std::pair<double, int>> swept;  // (lambda, point)
  for (int k = -16; k <= 16; ++k) {
    const double lambda = SweepLambda(k);
    const std::vector<int> choice = Lagrangian(lambda);
    bool more = false;
    LOWBIT_ASSIGN_OR_RETURN(more, Evaluate(choice, "sweep"));
    if (!more) return OkStatus();
    swept.push_back({lambda, seen_.at(choice)});
  }
  // Bisection at the bound: between the largest lambda whose plan failed and
  // the smallest whose plan held, below it.
  double lo = 0, hi = 0;
  for (const auto& [lambda, i] : swept) {
    if (r_.points[i].feasible) {
      hi = lambda;
      break;
    }
    lo = lambda;
  }
  if (hi > 0 && lo > 0) {
    for (int it = 0; it < 8; ++it) {
      const double mid = std::sqrt(lo * hi);
      const std::vector<int> choice = Lagrangian(mid);
      bool more = false;
      LOWBIT_ASSIGN_OR_RETURN(more, Evaluate(choice, "bisect"));
      if (!more) return OkStatus();
      (r_.points[seen_.at(choice)].feasible ? hi : lo) = mid;
    }
  }
  return OkStatus();
}

Status Tuner::Descend(double level, const std::string& phase) {
  int cur = BestMeeting(level);
  while (cur >= 0 && !OutOfBudget()) {
    const std::vector<int> base = r_.points[cur].choice;
    struct Move {
      double score, gain;
      int l, s;
    };
    std::vector<Move> moves;
    for (size_t l = 0; l < base.size(); ++l) {
      const int now = base[l];
      for (size_t s = 0; s < o_.space.size(); ++s) {
        if (!r_.layers[l].valid[s]) continue;
        const double gain = Cost(static_cast<int>(l), now) - Cost(static_cast<int>(l), static_cast<int>(s));
        if (gain <= 0) continue;
        const double dloss = std::max(0.0, Proxy(static_cast<int>(l), static_cast<int>(s)) -
                                               Proxy(static_cast<int>(l), now));
        moves.push_back({gain / (dloss + 1e-9), gain, static_cast<int>(l), static_cast<int>(s)});
      }
    }
    std::stable_sort(moves.begin(), moves.end(), [](const Move& a, const Move& b) {
      return a.score != b.score ? a.score > b.score : a.gain > b.gain;
    });
    int next = -1;
    for (const Move& m : moves) {
      std::vector<int> choice = base;
      choice[m.l] = m.s;
      if (seen_.count(choice)) continue;
      bool more = false;
      LOWBIT_ASSIGN_OR_RETURN(more, Evaluate(choice, phase));
      if (!more) return OkStatus();
      const TunePoint& p = r_.points[seen_.at(choice)];
      if (Meets(seen_.at(choice), level) && p.objective < r_.points[cur].objective) {
        next = seen_.at(choice);
        break;
      }
    }
    if (next < 0) break;
    cur = next;
  }
  return OkStatus();
}

Status Tuner::Pairs(double level, const std::string& phase, uint64_t seed) {
  Rng rng(seed);
  int cur = BestMeeting(level);
  int misses = 0;
  const int patience = 8 * static_cast<int>(r_.layers.size());
  while (cur >= 0 && misses < patience && !OutOfBudget()) {
    std::vector<int> choice = r_.points[cur].choice;
    const int a = static_cast<int>(rng.Below(choice.size()));
    const int b = static_cast<int>(rng.Below(choice.size()));
    // a: its next cheaper setting; b: its next dearer one (by cost).
    auto next = [&](int l, bool cheaper) {
      int pick = -1;
      const double now = Cost(l, choice[l]);
      for (size_t s = 0; s < o_.space.size(); ++s) {
        if (!r_.layers[l].valid[s]) continue;
        const double c = Cost(l, static_cast<int>(s));
        if (cheaper ? c < now && (pick < 0 || c > Cost(l, pick)) : c > now && (pick < 0 || c < Cost(l, pick))) {
          pick = static_cast<int>(s);
        }
      }
      return pick;
    };
    const int sa = next(a, true);
    if (sa < 0 || a == b) {
      ++misses;
      continue;
    }
    choice[a] = sa;
    const int sb = next(b, false);
    if (sb >= 0) choice[b] = sb;
    if (seen_.count(choice)) {
      ++misses;
      continue;
    }
    bool more = false;
    LOWBIT_ASSIGN_OR_RETURN(more, Evaluate(choice, phase));
    if (!more) break;
    const TunePoint& p = r_.points[seen_.at(choice)];
    if (Meets(seen_.at(choice), level) && p.objective < r_.points[cur].objective) {
      cur = seen_.at(choice);
      misses = 0;
    } else {
      ++misses;
    }
  }
  return OkStatus();
}

double Tuner::ConfirmedObjective(const TunePoint& p) const {
  if (!(p.e2e_ms > 0 && p.e2e_fp32_ms > 0 && r_.fp32_ms > 0)) return p.objective;
  return p.objective + o_.objective.latency * (p.e2e_ms / p.e2e_fp32_ms - p.latency_ms / r_.fp32_ms);
}

Status Tuner::Confirm() {
  constexpr int kCheapest = 6, kRounds = 3, kRuns = 30;
  std::vector<int> todo;
  std::vector<int> order;
  for (size_t i = 0; i < r_.points.size(); ++i) {
    if (r_.points[i].feasible) order.push_back(static_cast<int>(i));
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return r_.points[a].objective < r_.points[b].objective;
  });
  for (size_t k = 0; k < order.size(); ++k) {
    if (static_cast<int>(k) < kCheapest || r_.points[order[k]].phase == "uniform") todo.push_back(order[k]);
  }
  if (todo.empty()) return OkStatus();
  // From the journal when every candidate is there (a resumed run decides as
  // the first did); else measured on rank 0 and shared.
  bool recorded = true;
  for (int i : todo) recorded = recorded && journal_->Find("e2e/" + PlanName(r_.points[i].choice));
  std::vector<double> ms(2 * todo.size(), 0.0);
  if (recorded) {
    for (size_t k = 0; k < todo.size(); ++k) {
      const nlohmann::json* rec = journal_->Find("e2e/" + PlanName(r_.points[todo[k]].choice));
      ms[2 * k] = Number(*rec, "ms");
      ms[2 * k + 1] = Number(*rec, "fp32_ms");
    }
  } else {
    if (fan_.rank() == 0) {
      PlanOptions po;
      po.threads = o_.threads;
      po.kernels = o_.eval.kernels;
      po.byte_edges = o_.eval.byte_edges;
      std::vector<std::unique_ptr<Plan>> plans;
      std::unique_ptr<Plan> fp32;
      LOWBIT_ASSIGN_OR_RETURN(fp32, Plan::Create(g_, po));
      for (int i : todo) {
        std::vector<const QuantizedLayer*> parts;
        for (size_t l = 0; l < r_.points[i].choice.size(); ++l) {
          parts.push_back(&quantized_.at({static_cast<int>(l), r_.points[i].choice[l]}));
        }
        std::unique_ptr<Plan> p;
        LOWBIT_ASSIGN_OR_RETURN(p, Plan::Create(AssembleGraph(g_, parts), po));
        plans.push_back(std::move(p));
      }
      std::vector<Plan*> all = {fp32.get()};
      for (auto& p : plans) all.push_back(p.get());
      const std::vector<double> t = InterleavedMedianMs(all, kRounds, kRuns);
      const double f = t[0];
      for (size_t k = 0; k < todo.size(); ++k) {
        ms[2 * k] = t[k + 1];
        ms[2 * k + 1] = f;
        LOWBIT_RETURN_IF_ERROR(journal_->Append("e2e/" + PlanName(r_.points[todo[k]].choice),
                                                {{"ms", ms[2 * k]}, {"fp32_ms", f}}));
      }
    }
    ms = fan_.Share(ms);
  }
  for (size_t k = 0; k < todo.size(); ++k) {
    r_.points[todo[k]].e2e_ms = ms[2 * k];
    r_.points[todo[k]].e2e_fp32_ms = ms[2 * k + 1];
  }
  return OkStatus();
}

Status Tuner::RandomSearch() {
  Rng rng(o_.seed);
  int misses = 0;
  while (!OutOfBudget() && misses < 1000) {
    std::vector<int> choice(r_.layers.size());
    for (size_t l = 0; l < choice.size(); ++l) {
      std::vector<int> valid;
      for (size_t s = 0; s < o_.space.size(); ++s) {
        if (r_.layers[l].valid[s]) valid.push_back(static_cast<int>(s));
      }
      choice[l] = valid[rng.Below(valid.size())];
    }
    if (seen_.count(choice)) {
      ++misses;
      continue;
    }
    bool more = false;
    LOWBIT_ASSIGN_OR_RETURN(more, Evaluate(choice, "random"));
    if (!more) break;
  }
  return OkStatus();
}

}  // namespace lowbit::tune_detail
