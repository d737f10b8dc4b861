// imgsim embed PATH... -o FILE: embeddings of image files and folders as .npy (+ a paths list)
// or JSON.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "imgsim/error.hpp"

namespace imgsim::cli {

namespace {

struct EmbedArgs {
  std::vector<std::string> inputs;
  std::string output;
  std::string format;  // "", "npy", "json"
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// out.npy -> out.paths.txt
std::string paths_file_for(const std::string& npy) {
  std::string stem = ends_with(npy, ".npy") ? npy.substr(0, npy.size() - 4) : npy;
  return stem + ".paths.txt";
}

void run_embed(const EmbedArgs& args) {
  apply_common();
  std::string format = args.format;
  if (format.empty())
    format = (ends_with(args.output, ".json") || args.output == "-") ? "json" : "npy";
  if (format == "npy" && args.output == "-")
    throw UsageError("embed: .npy output needs a file name (-o out.npy)");
  similarity::Embedder e = load_embedder();
  std::vector<data::SkippedFile> skipped;
  const std::vector<std::string> paths = collect_images(args.inputs, skipped);
  warn_skipped(skipped);
  if (paths.empty()) throw Error("embed: no image files found in the given paths");
  similarity::EmbedResult r = embed_with_progress(e, paths, "embedding");
  skipped.insert(skipped.end(), r.skipped.begin(), r.skipped.end());
  if (r.size() == 0)
    throw Error("embed: none of the " + std::to_string(paths.size()) + " files could be read");

  json summary;
  summary["model"] = e.path();
  summary["dim"] = r.dim;
  summary["count"] = r.size();
  if (format == "json") {
    json j;
    j["model"] = e.path();
    j["dim"] = r.dim;
    j["count"] = r.size();
    json items = json::array();
    for (int64_t i = 0; i < r.size(); ++i) {
      const float* row = r.row(i);
      items.push_back({{"path", paths[r.rows[static_cast<std::size_t>(i)]]},
                       {"embedding", std::vector<float>(row, row + r.dim)}});
    }
    j["items"] = std::move(items);
    j["skipped"] = skipped_json(skipped);
    write_text(args.output, j.dump() + "\n");
    summary["output"] = args.output;
  } else {
    const std::string list = paths_file_for(args.output);
    std::string text;
    for (std::size_t row : r.rows) text += paths[row] + "\n";
    write_npy(args.output, r.embeddings.data(), r.size(), r.dim);
    write_text(list, text);
    summary["output"] = args.output;
    summary["paths"] = list;
  }
  summary["skipped"] = skipped_json(skipped);
  if (args.output == "-") return;  // stdout holds the embeddings
  if (common().json) {
    std::cout << summary.dump(2) << '\n';
  } else {
    std::cout << "embedded " << r.size() << " images (dim " << r.dim << ") -> " << args.output;
    if (summary.contains("paths")) std::cout << " + " << summary["paths"].get<std::string>();
    if (!skipped.empty()) std::cout << "; " << skipped.size() << " skipped";
    std::cout << '\n';
  }
}

}  // namespace

void add_embed_command(CLI::App& app) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* sub = app.add_subcommand(
      "embed", "Compute the embeddings of image files and folders (searched recursively)");
  sub->add_option("PATH", args->inputs, "image files and folders")->required();
  sub->add_option("-o,--output", args->output,
                  "output: FILE.npy (float32, one row per image, plus FILE.paths.txt listing "
                  "the images in row order) or FILE.json; '-' prints JSON")
      ->required();
  sub->add_option("--format", args->format, "npy or json (default: from the file name)")
      ->check(CLI::IsMember({"npy", "json"}));
  add_model_option(*sub);
  add_threads_option(*sub);
  add_batch_option(*sub);
  add_json_flag(*sub, "print a JSON summary");
  add_quiet_flag(*sub);
  sub->footer("Example: imgsim embed photos/ -o photos.npy");
  sub->callback([args] { run_embed(*args); });
}

}  // namespace imgsim::cli
