// imgsim search INDEX QUERY... -k N: the k most similar indexed images for each query image.
#include <cmath>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "imgsim/error.hpp"
#include "imgsim/similarity/index.hpp"

namespace imgsim::cli {

namespace {

struct SearchArgs {
  std::string index;
  std::vector<std::string> queries;
  int64_t k = 5;
  int64_t ef = 0;
  double threshold = std::nan("");
};

void run_search(const SearchArgs& args) {
  apply_common();
  std::unique_ptr<similarity::Index> index = similarity::load_index(args.index);
  similarity::Embedder e = load_embedder();
  if (index->dim() != e.dim())
    throw Error("index " + args.index + " holds " + std::to_string(index->dim()) +
                "-dimensional vectors but the model " + e.path() + " gives " +
                std::to_string(e.dim()) + "; use the model the index was built with");
  if (args.ef > 0) {
    if (auto* h = dynamic_cast<similarity::HnswIndex*>(index.get())) h->set_ef_search(args.ef);
  }
  std::optional<float> t;
  if (!std::isnan(args.threshold))
    t = static_cast<float>(args.threshold);
  else if (e.has_threshold())
    t = e.threshold();

  std::vector<data::SkippedFile> skipped;
  const std::vector<std::string> paths = collect_images(args.queries, skipped);
  warn_skipped(skipped);
  if (paths.empty()) throw Error("search: no query images found in the given paths");
  similarity::EmbedResult r = embed_with_progress(e, paths, "embedding queries");
  skipped.insert(skipped.end(), r.skipped.begin(), r.skipped.end());
  if (r.size() == 0) throw Error("search: none of the query images could be read");

  // Zero embeddings cannot be searched under cosine: report them like unreadable files.
  std::vector<float> q;
  std::vector<std::string> qpaths;
  for (int64_t i = 0; i < r.size(); ++i) {
    const float* v = r.row(i);
    bool zero = true;
    for (int64_t d = 0; d < r.dim && zero; ++d) zero = v[d] == 0.0f;
    const std::string& p = paths[r.rows[static_cast<std::size_t>(i)]];
    if (zero) {
      skipped.push_back({p, "the model gives a zero embedding"});
      warn("skipped " + p + ": the model gives a zero embedding");
      continue;
    }
    q.insert(q.end(), v, v + r.dim);
    qpaths.push_back(p);
  }
  const auto nq = static_cast<int64_t>(qpaths.size());
  similarity::SearchResult res;
  if (nq > 0) res = index->search(nq, q.data(), args.k);

  json out;
  out["index"] = args.index;
  out["k"] = args.k;
  out["threshold"] = t ? json(*t) : json(nullptr);
  json results = json::array();
  for (int64_t i = 0; i < nq; ++i) {
    json matches = json::array();
    for (int64_t j = 0; j < args.k; ++j) {
      const int64_t id = res.id(i, j);
      if (id < 0) break;
      json m;
      m["rank"] = j + 1;
      m["id"] = id;
      m["path"] = index->path(id);
      m["score"] = res.score(i, j);
      if (t) m["same"] = res.score(i, j) >= *t;
      matches.push_back(std::move(m));
    }
    results.push_back({{"query", qpaths[static_cast<std::size_t>(i)]}, {"matches", matches}});
  }
  out["results"] = results;
  out["skipped"] = skipped_json(skipped);
  if (common().json) {
    std::cout << out.dump(2) << '\n';
    return;
  }
  for (const json& res_q : results) {
    std::cout << res_q["query"].get<std::string>() << '\n';
    if (res_q["matches"].empty()) std::cout << "  (the index is empty)\n";
    for (const json& m : res_q["matches"]) {
      std::cout << "  " << m["rank"].get<int64_t>() << ". " << fixed6(m["score"].get<double>())
                << "  id " << m["id"].get<int64_t>() << "  " << m["path"].get<std::string>();
      if (m.contains("same") && m["same"].get<bool>()) std::cout << "  [same]";
      std::cout << '\n';
    }
  }
}

}  // namespace

void add_search_command(CLI::App& app) {
  auto args = std::make_shared<SearchArgs>();
  CLI::App* sub = app.add_subcommand(
      "search", "Find the k indexed images most similar to each query image, best first");
  sub->add_option("INDEX", args->index, "index file (imgsim index build)")->required();
  sub->add_option("QUERY", args->queries, "query images or folders")->required();
  sub->add_option("-k", args->k, "matches per query")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  sub->add_option("--ef", args->ef, "HNSW search candidate list (default: the index's)")
      ->check(positive());
  sub->add_option("--threshold", args->threshold,
                  "mark matches at or above this score as same (default: the model's)");
  add_model_option(*sub);
  add_threads_option(*sub);
  add_batch_option(*sub);
  add_json_flag(*sub);
  add_quiet_flag(*sub);
  sub->footer("Example: imgsim search photos.imgsimidx query.jpg -k 10 --json");
  sub->callback([args] { run_search(*args); });
}

}  // namespace imgsim::cli
