// imgsim compare A B: the cosine score of two images and the same/different decision.
#include <cmath>
#include <iostream>
#include <memory>
#include <string>

#include "common.hpp"

namespace imgsim::cli {

namespace {

struct CompareArgs {
  std::string a, b;
  double threshold = std::nan("");  // NaN: the model's
};

void run_compare(const CompareArgs& args) {
  apply_common();
  similarity::Embedder e = load_embedder();
  const float score = e.compare_files(args.a, args.b);
  bool has_t = false;
  float t = 0.0f;
  if (!std::isnan(args.threshold)) {
    has_t = true;
    t = static_cast<float>(args.threshold);
  } else if (e.has_threshold()) {
    has_t = true;
    t = e.threshold();
  }
  const bool same = has_t && score >= t;
  if (common().json) {
    json j;
    j["a"] = args.a;
    j["b"] = args.b;
    j["score"] = score;
    j["threshold"] = has_t ? json(t) : json(nullptr);
    j["same"] = has_t ? json(same) : json(nullptr);
    j["model"] = e.path();
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::cout << "score " << fixed6(score) << '\n';
  if (has_t)
    std::cout << (same ? "same" : "different") << " (threshold " << fixed6(t) << ")\n";
  else
    std::cout << "unknown (the model has no calibrated threshold; pass --threshold)\n";
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* sub = app.add_subcommand(
      "compare",
      "Score how alike two images are (cosine of their embeddings, -1..1, higher is "
      "more alike) and decide same/different with the model's calibrated threshold");
  sub->add_option("A", args->a, "first image")->required();
  sub->add_option("B", args->b, "second image")->required();
  sub->add_option("--threshold", args->threshold,
                  "decide with this threshold instead of the model's");
  add_model_option(*sub);
  add_threads_option(*sub);
  add_json_flag(*sub);
  sub->footer("Example: imgsim compare a.jpg b.jpg --json");
  sub->callback([args] { run_compare(*args); });
}

}  // namespace imgsim::cli
