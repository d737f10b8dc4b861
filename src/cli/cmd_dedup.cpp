// imgsim dedup DIR: groups of near-duplicate images as JSON or CSV, and an optional
// self-contained HTML report with the groups' thumbnails side by side.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/dedup.hpp"
#include "imgsim/similarity/index.hpp"
#include "progress.hpp"

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
};

// A JPEG thumbnail at most `side` pixels on its longer side, as a data URI ("" if unreadable).
std::string thumbnail_uri(const std::string& path, int side) {
  try {
    image::LoadOptions lo;
    lo.channels = 3;
    const image::Image img = image::load_image(path, lo);
    const double s = std::min(1.0, static_cast<double>(side) / std::max(img.width(), img.height()));
    const int w = std::max(1, static_cast<int>(std::lround(img.width() * s)));
    const int h = std::max(1, static_cast<int>(std::lround(img.height() * s)));
    const image::Image small =
        (w == img.width() && h == img.height()) ? img : image::resize(img, w, h);
    return "data:image/jpeg;base64," +
           base64(image::encode_image(small, image::ImageFormat::jpg, 85));
  } catch (const std::exception&) {
    return "";
  }
}

std::string make_report(const std::vector<similarity::DuplicateGroup>& groups,
                        const std::vector<std::string>& paths, float threshold, int64_t images,
                        int side) {
  // Thumbnails of every grouped image, made on a few threads.
  std::vector<int64_t> ids;
  for (const auto& g : groups) ids.insert(ids.end(), g.members.begin(), g.members.end());
  std::vector<std::string> uris(ids.size());
  Progress bar("thumbnails", static_cast<int64_t>(ids.size()));
  std::atomic<std::size_t> next{0}, done{0};
  const int workers = std::max(1, std::min<int>(num_threads(), static_cast<int>(ids.size())));
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (std::size_t i; (i = next.fetch_add(1)) < ids.size();) {
        uris[i] = thumbnail_uri(paths[static_cast<std::size_t>(ids[i])], side);
        ++done;
      }
    });
  for (auto& t : pool) t.join();
  bar.update(static_cast<int64_t>(done.load()));
  bar.finish();

  std::string h;
  h +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<title>imgsim near-duplicates</title>\n<style>\n"
      "body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}\n"
      "section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em;margin:1em 0}\n"
      "h2{font-size:1.05em;margin:.2em 0 .6em}\n"
      ".row{display:flex;flex-wrap:wrap;gap:.8em;align-items:flex-start}\n"
      "figure{margin:0;width:" +
      std::to_string(side) +
      "px;font-size:.8em}\n"
      "figure img{max-width:" +
      std::to_string(side) + "px;max-height:" + std::to_string(side) +
      "px;display:block;border:1px solid #ccc}\n"
      "figure.rep img{border:3px solid #2a7}\n"
      "figcaption{word-break:break-all;margin-top:.3em}\n"
      ".score{font-weight:bold}\n.missing{width:" +
      std::to_string(side) + "px;height:" + std::to_string(side / 2) +
      "px;background:#eee;display:flex;align-items:center;"
      "justify-content:center}\n</style></head><body>\n";
  h += "<h1>Near-duplicate groups</h1>\n<p>" + std::to_string(groups.size()) + " groups among " +
       std::to_string(images) + " images; threshold " + fixed6(threshold) +
       " (cosine score; the first image of each group, framed, is its representative and the "
       "scores are against it).</p>\n";
  std::size_t u = 0;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    const float lowest = *std::min_element(g.scores.begin(), g.scores.end());
    h += "<section><h2>Group " + std::to_string(gi + 1) + ": " + std::to_string(g.members.size()) +
         " images, lowest score " + fixed6(lowest) + "</h2><div class=\"row\">\n";
    for (std::size_t m = 0; m < g.members.size(); ++m, ++u) {
      const std::string& path = paths[static_cast<std::size_t>(g.members[m])];
      const std::string name = std::filesystem::path(path).filename().string();
      h += m == 0 ? "<figure class=\"rep\">" : "<figure>";
      if (uris[u].empty())
        h += "<div class=\"missing\">unreadable</div>";
      else
        h += "<img src=\"" + uris[u] + "\" alt=\"" + html_escape(name) + "\">";
      h += "<figcaption><span class=\"score\">" +
           (m == 0 ? std::string("representative") : fixed6(g.scores[m])) +
           "</span><br><span title=\"" + html_escape(path) + "\">" + html_escape(name) +
           "</span> (id " + std::to_string(g.members[m]) + ")</figcaption></figure>\n";
    }
    h += "</div></section>\n";
  }
  if (groups.empty()) h += "<p>No near-duplicates found.</p>\n";
  h += "</body></html>\n";
  return h;
}

void run_dedup(const DedupArgs& args) {
  apply_common();
  if (common().json) {
    if (args.format == "csv") throw UsageError("dedup: --json and --format csv disagree");
  }
  similarity::Embedder e = load_embedder();
  float threshold = 0.0f;
  if (!std::isnan(args.threshold))
    threshold = static_cast<float>(args.threshold);
  else if (e.has_threshold())
    threshold = e.threshold();
  else
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
  if (!args.report.empty())
    write_text(args.report, make_report(groups, paths, threshold, n, args.thumb));
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
  add_model_option(*sub);
  add_threads_option(*sub);
  add_batch_option(*sub);
  add_json_flag(*sub, "JSON output (the default format)");
  add_quiet_flag(*sub);
  sub->footer("Example: imgsim dedup photos/ --format csv -o dups.csv --report dups.html");
  sub->callback([args] { run_dedup(*args); });
}

}  // namespace imgsim::cli
