// imgsim dedup DIR: groups of near-duplicate images as JSON or CSV, and an optional
// self-contained HTML report with the groups' thumbnails side by side.
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "imgsim/error.hpp"
#include "imgsim/similarity/dedup.hpp"
#include "imgsim/similarity/index.hpp"
#include "progress.hpp"
#include "report.hpp"

#ifndef IMGSIM_VERSION
#define IMGSIM_VERSION "unknown"
#endif

namespace imgsim::cli {

namespace {

struct DedupArgs {
  std::vector<std::string> inputs;
  double threshold = std::nan("");
  int64_t k = 10;
  std::string format = "json";
  std::string output = "-";
  std::string report;
  int thumb = 160;
  int report_thumbs = 24;
};

void run_dedup(const DedupArgs& args) {
  apply_common();
  if (common().json) {
    if (args.format == "csv") throw UsageError("dedup: --json and --format csv disagree");
  }
  similarity::Embedder e = load_embedder();
  float threshold = 0.0f;
  std::string threshold_source;
  if (!std::isnan(args.threshold)) {
    threshold = static_cast<float>(args.threshold);
    threshold_source = "--threshold";
  } else if (e.has_threshold()) {
    threshold = e.threshold();
    threshold_source = "calibrated, from the model";
  } else
    throw Error("dedup: the model " + e.path() +
                " has no calibrated threshold; pass --threshold T (a cosine score, e.g. 0.9)");

  std::vector<data::SkippedFile> skipped;
  const std::vector<std::string> all = collect_images(args.inputs, skipped);
  warn_skipped(skipped);
  if (all.empty()) throw Error("dedup: no image files found in the given paths");
  similarity::EmbedResult r = embed_with_progress(e, all, "embedding");
  skipped.insert(skipped.end(), r.skipped.begin(), r.skipped.end());

  // Ids are positions in `paths`, the images that were embedded (zero embeddings left out).
  std::vector<std::string> paths;
  std::vector<float> vectors;
  for (int64_t i = 0; i < r.size(); ++i) {
    const float* v = r.row(i);
    bool zero = true;
    for (int64_t d = 0; d < r.dim && zero; ++d) zero = v[d] == 0.0f;
    const std::string& p = all[r.rows[static_cast<std::size_t>(i)]];
    if (zero) {
      skipped.push_back({p, "the model gives a zero embedding"});
      warn("skipped " + p + ": the model gives a zero embedding");
      continue;
    }
    vectors.insert(vectors.end(), v, v + r.dim);
    paths.push_back(p);
  }
  const auto n = static_cast<int64_t>(paths.size());
  if (n == 0)
    throw Error("dedup: none of the " + std::to_string(all.size()) + " files could be read");

  similarity::FlatIndex index(r.dim);
  index.add(n, vectors.data());
  similarity::DedupOptions opt;
  opt.threshold = threshold;
  opt.k = args.k;
  Progress bar("grouping", n);
  opt.progress = [&](int64_t done, int64_t) { bar.update(done); };
  const std::vector<similarity::DuplicateGroup> groups =
      similarity::find_duplicate_groups(index, opt);
  bar.finish("groups: " + std::to_string(groups.size()));

  std::string text;
  if (args.format == "csv" && !common().json) {
    text = "group,size,id,path,score,representative\n";
    for (std::size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& g = groups[gi];
      for (std::size_t m = 0; m < g.members.size(); ++m)
        text += std::to_string(gi + 1) + "," + std::to_string(g.members.size()) + "," +
                std::to_string(g.members[m]) + "," +
                csv_field(paths[static_cast<std::size_t>(g.members[m])]) + "," +
                fixed6(g.scores[m]) + "," + (m == 0 ? "1" : "0") + "\n";
    }
  } else {
    json j;
    j["model"] = e.path();
    j["threshold"] = threshold;
    j["k"] = args.k;
    j["images"] = n;
    json gs = json::array();
    for (std::size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& g = groups[gi];
      json members = json::array();
      for (std::size_t m = 0; m < g.members.size(); ++m)
        members.push_back({{"id", g.members[m]},
                           {"path", paths[static_cast<std::size_t>(g.members[m])]},
                           {"score", g.scores[m]}});
      json pairs = json::array();
      for (const auto& p : g.pairs) pairs.push_back({{"a", p.a}, {"b", p.b}, {"score", p.score}});
      gs.push_back({{"group", gi + 1},
                    {"size", g.members.size()},
                    {"representative",
                     {{"id", g.representative},
                      {"path", paths[static_cast<std::size_t>(g.representative)]}}},
                    {"members", members},
                    {"pairs", pairs}});
    }
    j["groups"] = gs;
    j["skipped"] = skipped_json(skipped);
    text = j.dump(2) + "\n";
  }
  write_text(args.output, text);
  if (!args.report.empty()) {
    ReportOptions ro;
    ro.model = e.path();
    ro.threshold = threshold;
    ro.threshold_source = threshold_source;
    ro.k = args.k;
    ro.images = n;
    ro.thumb = args.thumb;
    ro.max_thumbs = args.report_thumbs;
    ro.generator = std::string("imgsim ") + IMGSIM_VERSION;
    const int side = args.thumb;
    write_text(args.report, make_report(groups, paths, skipped, ro, [side](const std::string& p) {
                 return thumbnail_data_uri(p, side);
               }));
  }
  if (args.output != "-" && !common().quiet) {
    std::cerr << "near-duplicate groups: " << groups.size() << " among " << n << " images -> "
              << args.output << (args.report.empty() ? "" : " and " + args.report) << '\n';
  }
}

}  // namespace

void add_dedup_command(CLI::App& app) {
  auto args = std::make_shared<DedupArgs>();
  CLI::App* sub = app.add_subcommand(
      "dedup",
      "Find groups of near-duplicate images in folders (JSON or CSV, optional HTML "
      "report)");
  sub->add_option("PATH", args->inputs, "folders (searched recursively) and image files")
      ->required();
  sub->add_option("--threshold", args->threshold,
                  "cosine score at or above which two images are duplicates (default: the "
                  "model's calibrated threshold)");
  sub->add_option("-k", args->k, "neighbours examined per image")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{10000}));
  sub->add_option("--format", args->format, "json or csv")
      ->capture_default_str()
      ->check(CLI::IsMember({"json", "csv"}));
  sub->add_option("-o,--output", args->output, "write the groups here ('-': stdout)")
      ->capture_default_str();
  sub->add_option("--report", args->report,
                  "also write a self-contained HTML page with each group's thumbnails");
  sub->add_option("--thumb", args->thumb, "thumbnail size in the report, pixels")
      ->capture_default_str()
      ->check(CLI::Range(16, 1024));
  sub->add_option("--report-thumbs", args->report_thumbs,
                  "thumbnails per group in the report; further members are listed by name")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  add_model_option(*sub);
  add_threads_option(*sub);
  add_batch_option(*sub);
  add_json_flag(*sub, "JSON output (the default format)");
  add_quiet_flag(*sub);
  sub->footer("Example: imgsim dedup photos/ --format csv -o dups.csv --report dups.html");
  sub->callback([args] { run_dedup(*args); });
}

}  // namespace imgsim::cli
