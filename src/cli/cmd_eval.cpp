// imgsim eval: retrieval quality of a model on a labelled set (every image queried against all
// the others): recall@1 and MAP@R (docs/similarity.md, "Retrieval metrics").
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "imgsim/data/image_folder.hpp"
#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"
#include "imgsim/similarity/retrieval.hpp"
#include "progress.hpp"

namespace imgsim::cli {

namespace {

struct EvalArgs {
  std::string data = "fashion-mnist";
  std::string split = "test";
  int64_t limit = 0;
};

void run_eval(const EvalArgs& a) {
  apply_common();
  const auto t0 = std::chrono::steady_clock::now();
  similarity::Embedder e = load_embedder();
  std::vector<float> emb;
  std::vector<int> labels;
  std::vector<data::SkippedFile> skipped;
  std::string what;
  if (a.data == "fashion-mnist") {
    data::LabeledImages d =
        data::load_fashion_mnist(a.split == "train" ? data::Split::train : data::Split::test);
    int64_t n = d.images.dim(0);
    if (a.limit > 0) n = std::min(n, a.limit);
    what = "Fashion-MNIST " + a.split + " split";
    Progress bar("embedding", n);
    constexpr int64_t kChunk = 1024;
    std::vector<image::Image> imgs;
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
      const int64_t c1 = std::min(n, c0 + kChunk);
      imgs.clear();
      for (int64_t i = c0; i < c1; ++i) {
        image::Image img(28, 28, 1);
        std::copy(d.images.data() + i * 784, d.images.data() + (i + 1) * 784, img.data());
        imgs.push_back(std::move(img));
      }
      const Tensor t = e.embed_images(imgs, common().batch);
      emb.insert(emb.end(), t.data(), t.data() + t.numel());
      for (int64_t i = c0; i < c1; ++i) labels.push_back(static_cast<int>(d.labels[i]));
      bar.update(c1);
    }
    bar.finish();
  } else {
    if (a.split != "test") throw UsageError("eval: --split applies to fashion-mnist only");
    data::ImageFolderDataset folder(a.data);
    skipped = folder.skipped();
    warn_skipped(skipped);
    std::vector<std::string> paths;
    std::vector<int> all_labels;
    int64_t n = folder.size();
    if (a.limit > 0) n = std::min(n, a.limit);
    for (int64_t i = 0; i < n; ++i) {
      paths.push_back(folder.path(i));
      all_labels.push_back(folder.class_index(i));
    }
    similarity::EmbedResult r = embed_with_progress(e, paths, "embedding");
    skipped.insert(skipped.end(), r.skipped.begin(), r.skipped.end());
    emb = std::move(r.embeddings);
    for (std::size_t row : r.rows) labels.push_back(all_labels[row]);
    what =
        "class folder " + a.data + " (" + std::to_string(folder.class_names().size()) + " classes)";
  }
  const auto n = static_cast<int64_t>(labels.size());
  if (n < 2) throw Error("eval: need at least 2 readable images, found " + std::to_string(n));
  Progress bar("retrieval", n, "queries");
  similarity::RetrievalOptions ro;
  ro.progress = [&](int64_t done, int64_t) { bar.update(done); };
  const similarity::RetrievalMetrics m =
      similarity::evaluate_retrieval(n, e.dim(), emb.data(), labels, ro);
  bar.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (common().json) {
    json j;
    j["model"] = e.path();
    j["data"] = what;
    j["images"] = n;
    j["queries"] = m.queries;
    j["skipped_queries"] = m.skipped_queries;
    j["recall_at_1"] = m.recall_at_1;
    j["map_at_r"] = m.map_at_r;
    j["seconds"] = secs;
    j["skipped"] = skipped_json(skipped);
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::cout << "data       " << what << " (" << n << " images, " << m.queries << " queries";
  if (m.skipped_queries) std::cout << ", " << m.skipped_queries << " without a same-label image";
  std::cout << ")\n"
            << "recall@1   " << fixed6(m.recall_at_1) << '\n'
            << "MAP@R      " << fixed6(m.map_at_r) << '\n';
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand(
      "eval",
      "Retrieval quality on a labelled set: recall@1 and MAP@R, every image queried "
      "against all the others");
  sub->add_option("--data", a->data, "fashion-mnist or a class folder (one sub-folder per class)")
      ->capture_default_str();
  sub->add_option("--split", a->split, "Fashion-MNIST split")
      ->capture_default_str()
      ->check(CLI::IsMember({"test", "train"}));
  sub->add_option("--limit", a->limit, "use only the first N images");
  add_model_option(*sub);
  add_threads_option(*sub);
  add_batch_option(*sub);
  add_json_flag(*sub);
  add_quiet_flag(*sub);
  sub->footer("Example: imgsim eval --model fmnist.imgsim --data fashion-mnist --json");
  sub->callback([a] { run_eval(*a); });
}

}  // namespace imgsim::cli
