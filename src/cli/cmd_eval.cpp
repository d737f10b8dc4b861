// imgsim eval: retrieval quality of a model on a labelled set (every image queried against all
// the others): recall@1 and MAP@R (docs/similarity.md, "Retrieval metrics"); or, with --bench,
// its near-duplicate benchmark scores (docs/ndbench.md): micro average precision, recall@1 and
// recall at 90% precision, overall and per edit family, computed by the same code as
// imgsim-ndbench-score (tools/ndbench_*.hpp).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "common.hpp"
#include "imgsim/data/image_folder.hpp"
#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"
#include "imgsim/similarity/retrieval.hpp"
#include "ndbench_io.hpp"
#include "ndbench_metrics.hpp"
#include "ndbench_report.hpp"
#include "progress.hpp"

namespace imgsim::cli {

namespace {

namespace fs = std::filesystem;
namespace nd = imgsim::ndbench;

struct EvalArgs {
  std::string data = "fashion-mnist";
  std::string split = "test";
  int64_t limit = 0;
  std::string bench;         // --bench DIR: near-duplicate benchmark mode
  std::string predictions;   // --predictions FILE (bench mode)
  int64_t top = 100;         // --top N predictions kept per query, 0: every pair (bench mode)
  std::string flip_average;  // "": the model's; none, h, hv: override
  int shift_average = -1;    // -1: the model's; 0..8: override
};

const char* flips_name(similarity::Preprocessing::Flips f) {
  using Flips = similarity::Preprocessing::Flips;
  return f == Flips::hv ? "hv" : f == Flips::h ? "h" : "none";
}

// The model of --model (or the default one), with --flip-average applied.
similarity::Embedder eval_embedder(const EvalArgs& a) {
  similarity::Embedder e = load_embedder();
  using Flips = similarity::Preprocessing::Flips;
  if (!a.flip_average.empty())
    e.set_flip_average(a.flip_average == "hv"  ? Flips::hv
                       : a.flip_average == "h" ? Flips::h
                                               : Flips::none);
  if (a.shift_average >= 0) e.set_shift_average(a.shift_average);
  return e;
}

// --- benchmark mode ----------------------------------------------------------------------------

// A score as the predictions file writes it (the shortest text that reads back as the same
// float) and the value imgsim-ndbench-score reads from that text, so that the figures computed
// here are exactly the ones the scorer computes from the file.
struct WrittenScore {
  char text[32];
  std::size_t size = 0;
  double value = 0.0;
};

WrittenScore written_score(float s) {
  WrittenScore w;
  const auto r = std::to_chars(w.text, w.text + sizeof w.text, s);
  w.size = static_cast<std::size_t>(r.ptr - w.text);
  std::from_chars(w.text, r.ptr, w.value);
  return w;
}

void run_bench(const EvalArgs& a) {
  apply_common();
  const auto t0 = std::chrono::steady_clock::now();
  if (a.predictions == "-")
    throw UsageError("eval: --predictions needs a file name (the table goes to standard output)");
  const fs::path dir(a.bench);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError("eval: benchmark folder " + a.bench + " does not exist or is not a folder");
  // Fail before the embedding, not after it, when the predictions cannot be written there.
  if (!a.predictions.empty()) {
    const fs::path parent = fs::path(a.predictions).parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec))
      throw IoError("cannot write " + a.predictions + ": no folder " + parent.string());
  }
  // Reads and checks db.csv and ground_truth.csv (std::runtime_error naming the file).
  nd::Benchmark bench;
  try {
    bench = nd::load_benchmark(dir);
  } catch (const std::runtime_error& e) {
    throw FormatError("eval: invalid benchmark folder (docs/ndbench.md): " + std::string(e.what()));
  }
  if (bench.db.empty())
    throw FormatError("eval: " + (dir / "db.csv").string() + " lists no images");
  if (bench.queries.empty())
    throw FormatError("eval: " + (dir / "ground_truth.csv").string() + " lists no queries");
  similarity::Embedder e = eval_embedder(a);

  std::vector<std::string> db_paths, q_paths;
  for (const nd::DbItem& d : bench.db) db_paths.push_back(fs::absolute(dir / d.file).string());
  for (const nd::QueryTruth& q : bench.queries)
    q_paths.push_back(fs::absolute(dir / q.file).string());
  similarity::EmbedResult db = embed_with_progress(e, db_paths, "database");
  if (db.size() == 0)
    throw Error("eval: none of the " + std::to_string(db_paths.size()) +
                " database images could be read");
  similarity::EmbedResult qs = embed_with_progress(e, q_paths, "queries");
  if (qs.size() == 0)
    throw Error("eval: none of the " + std::to_string(q_paths.size()) +
                " query images could be read");
  std::vector<data::SkippedFile> skipped = db.skipped;
  skipped.insert(skipped.end(), qs.skipped.begin(), qs.skipped.end());

  // Every readable query against every readable database image by inner product (cosine: the
  // embeddings have unit length); per query the `top` best, ties by db_id. Queries and
  // database images that could not be read have no pairs: their true pairs count as never
  // retrieved, as in a predictions file without them.
  const int64_t dim = e.dim();
  const std::size_t ndb = static_cast<std::size_t>(db.size());
  const std::size_t keep =
      a.top == 0 ? ndb : std::min<std::size_t>(ndb, static_cast<std::size_t>(a.top));
  std::vector<nd::ScoredPair> pairs;
  pairs.reserve(static_cast<std::size_t>(qs.size()) * keep);
  std::string csv = "query_id,db_id,score\n";
  struct Cand {
    WrittenScore score;
    std::size_t db_row;
  };
  std::vector<Cand> cand(ndb);
  Progress bar("scoring", qs.size(), "queries");
  for (int64_t qi = 0; qi < qs.size(); ++qi) {
    const float* qv = qs.row(qi);
    for (std::size_t di = 0; di < ndb; ++di) {
      const float* dv = db.row(static_cast<int64_t>(di));
      double dot = 0.0;
      for (int64_t k = 0; k < dim; ++k) dot += static_cast<double>(qv[k]) * dv[k];
      cand[di] = {written_score(static_cast<float>(dot)), di};
    }
    const auto db_id = [&](const Cand& c) -> const std::string& {
      return bench.db[db.rows[c.db_row]].id;
    };
    std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(),
                      [&](const Cand& x, const Cand& y) {
                        if (x.score.value != y.score.value) return x.score.value > y.score.value;
                        return db_id(x) < db_id(y);
                      });
    const std::size_t query = qs.rows[static_cast<std::size_t>(qi)];
    const std::string& query_id = bench.queries[query].id;
    for (std::size_t j = 0; j < keep; ++j) {
      const Cand& c = cand[j];
      pairs.push_back(
          {static_cast<int64_t>(query), static_cast<int64_t>(db.rows[c.db_row]), c.score.value});
      if (!a.predictions.empty()) {
        csv += nd::csv_field(query_id);
        csv += ',';
        csv += nd::csv_field(db_id(c));
        csv += ',';
        csv.append(c.score.text, c.score.size);
        csv += '\n';
      }
    }
    bar.update(qi + 1);
  }
  bar.finish();
  if (!a.predictions.empty()) write_text(a.predictions, csv);

  nd::MethodScores scores;
  scores.name = fs::path(e.path()).stem().string();
  if (scores.name.empty()) scores.name = "model";
  scores.predictions = static_cast<int64_t>(pairs.size());
  scores.rows = nd::evaluate_by_family(pairs, bench);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (common().json) {
    json j;
    j["model"] = e.path();
    j["flip_average"] = flips_name(e.preprocessing().flip_average);
    j["shift_average"] = e.preprocessing().shift_average;
    j["bench"] = a.bench;
    j["database"] = bench.db.size();
    j["queries"] = bench.queries.size();
    j["top"] = a.top;
    j["predictions"] = scores.predictions;
    j["predictions_file"] = a.predictions.empty() ? json(nullptr) : json(a.predictions);
    // The figures as imgsim-ndbench-score --json writes them.
    const json figures = json::parse("{" + nd::json_method_figures(scores, 0) + "}");
    j["overall"] = figures["overall"];
    j["families"] = figures["families"];
    j["seconds"] = secs;
    j["skipped"] = skipped_json(skipped);
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::ostringstream table;
  nd::write_markdown_table(table, {scores});
  std::cout << table.str();
}

// --- labelled-set mode -------------------------------------------------------------------------

void run_eval(const EvalArgs& a) {
  if (!a.bench.empty()) return run_bench(a);
  apply_common();
  const auto t0 = std::chrono::steady_clock::now();
  similarity::Embedder e = eval_embedder(a);
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
    j["flip_average"] = flips_name(e.preprocessing().flip_average);
    j["shift_average"] = e.preprocessing().shift_average;
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
      "against all the others; or, with --bench, near-duplicate benchmark scores (micro AP, "
      "recall@1, recall at 90% precision, overall and per edit family)");
  CLI::Option* data = sub->add_option("--data", a->data,
                                      "fashion-mnist or a class folder (one sub-folder per class)")
                          ->capture_default_str();
  CLI::Option* split = sub->add_option("--split", a->split, "Fashion-MNIST split")
                           ->capture_default_str()
                           ->check(CLI::IsMember({"test", "train"}));
  CLI::Option* limit = sub->add_option("--limit", a->limit, "use only the first N images");
  CLI::Option* bench =
      sub->add_option("--bench", a->bench,
                      "near-duplicate benchmark folder (db.csv, ground_truth.csv, db/, queries/; "
                      "docs/ndbench.md) instead of a labelled set")
          ->excludes(data)
          ->excludes(split)
          ->excludes(limit);
  sub->add_option("--flip-average", a->flip_average,
                  "none, h or hv: override the model's flip averaging (embed each image and its "
                  "mirror images and add them; default: what the model file says)")
      ->check(CLI::IsMember({"none", "h", "hv"}));
  sub->add_option("--shift-average", a->shift_average,
                  "0..8: override the model's shift averaging (also embed each view shifted by "
                  "this many pixels left, right, up and down and add them; 0: off)")
      ->check(CLI::Range(0, similarity::Preprocessing::kMaxShiftAverage));
  sub->add_option("--predictions", a->predictions,
                  "with --bench: also write the scored pairs as CSV query_id,db_id,score "
                  "(what imgsim-ndbench-score reads)")
      ->needs(bench);
  sub->add_option("--top", a->top,
                  "with --bench: predictions kept per query, the best ones (0: every pair)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}))
      ->needs(bench);
  add_model_option(*sub);
  add_threads_option(*sub);
  add_batch_option(*sub);
  add_json_flag(*sub);
  add_quiet_flag(*sub);
  sub->footer(
      "Examples:\n  imgsim eval --model fmnist.imgsim --data fashion-mnist --json\n"
      "  imgsim eval --model photos.imgsim --bench data/ndbench --predictions cnn.csv");
  sub->callback([a] { run_eval(*a); });
}

}  // namespace imgsim::cli
