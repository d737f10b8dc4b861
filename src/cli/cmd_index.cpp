// imgsim index build|add|remove|info: persisted similarity indexes of image embeddings.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common.hpp"
#include "imgsim/error.hpp"
#include "imgsim/similarity/index.hpp"

namespace imgsim::cli {

namespace {

using similarity::Index;

struct IndexArgs {
  // build
  std::vector<std::string> inputs;
  std::string output;
  std::string type = "flat";
  int64_t hnsw_m = 16;
  int64_t ef_construction = 200;
  // add / remove / info
  std::string index;
  std::vector<int64_t> ids;
  bool list = false;
};

void check_dim(const Index& index, const similarity::Embedder& e, const std::string& path) {
  if (index.dim() != e.dim())
    throw Error("index " + path + " holds " + std::to_string(index.dim()) +
                "-dimensional vectors but the model " + e.path() + " gives " +
                std::to_string(e.dim()) + "; use the model the index was built with");
}

// Embeds `paths` and adds them with their paths; returns the ids.
std::vector<int64_t> embed_and_add(similarity::Embedder& e, Index& index,
                                   const std::vector<std::string>& paths,
                                   std::vector<data::SkippedFile>& skipped) {
  similarity::EmbedResult r = embed_with_progress(e, paths, "indexing");
  skipped.insert(skipped.end(), r.skipped.begin(), r.skipped.end());
  std::vector<std::string> added_paths;
  added_paths.reserve(r.rows.size());
  for (std::size_t row : r.rows) added_paths.push_back(paths[row]);
  // Zero embeddings cannot be normalised for the cosine index: skip them with a reason.
  std::vector<float> keep;
  std::vector<std::string> keep_paths;
  for (int64_t i = 0; i < r.size(); ++i) {
    const float* v = r.row(i);
    bool zero = true;
    for (int64_t t = 0; t < r.dim && zero; ++t) zero = v[t] == 0.0f;
    if (zero) {
      skipped.push_back(
          {added_paths[static_cast<std::size_t>(i)], "the model gives a zero embedding"});
      continue;
    }
    keep.insert(keep.end(), v, v + r.dim);
    keep_paths.push_back(added_paths[static_cast<std::size_t>(i)]);
  }
  const auto n = static_cast<int64_t>(keep_paths.size());
  if (n == 0) return {};
  return index.add(n, keep.data(), nullptr, keep_paths);
}

json index_summary(const Index& index, const std::string& path) {
  json j;
  j["index"] = path;
  j["type"] = similarity::to_string(index.type());
  j["metric"] = similarity::to_string(index.metric());
  j["dim"] = index.dim();
  j["size"] = index.size();
  j["next_id"] = index.next_id();
  if (const auto* h = dynamic_cast<const similarity::HnswIndex*>(&index)) {
    j["hnsw"] = {{"M", h->params().M},
                 {"ef_construction", h->params().ef_construction},
                 {"ef_search", h->params().ef_search}};
  }
  return j;
}

void run_build(const IndexArgs& args) {
  apply_common();
  similarity::Embedder e = load_embedder();
  std::vector<data::SkippedFile> skipped;
  const std::vector<std::string> paths = collect_images(args.inputs, skipped);
  warn_skipped(skipped);
  if (paths.empty()) throw Error("index build: no image files found in the given paths");
  std::unique_ptr<Index> index;
  if (args.type == "hnsw") {
    similarity::HnswParams p;
    p.M = args.hnsw_m;
    p.ef_construction = args.ef_construction;
    index = std::make_unique<similarity::HnswIndex>(e.dim(), p);
  } else {
    index = std::make_unique<similarity::FlatIndex>(e.dim());
  }
  const std::vector<int64_t> ids = embed_and_add(e, *index, paths, skipped);
  if (ids.empty())
    throw Error("index build: none of the " + std::to_string(paths.size()) +
                " files could be embedded");
  similarity::save_index(*index, args.output);
  if (common().json) {
    json j = index_summary(*index, args.output);
    j["added"] = ids.size();
    j["skipped"] = skipped_json(skipped);
    std::cout << j.dump(2) << '\n';
  } else {
    std::cout << "indexed " << ids.size() << " images (" << similarity::to_string(index->type())
              << ", dim " << index->dim() << ") -> " << args.output;
    if (!skipped.empty()) std::cout << "; " << skipped.size() << " skipped";
    std::cout << '\n';
  }
}

void run_add(const IndexArgs& args) {
  apply_common();
  std::unique_ptr<Index> index = similarity::load_index(args.index);
  similarity::Embedder e = load_embedder();
  check_dim(*index, e, args.index);
  std::vector<data::SkippedFile> skipped;
  std::vector<std::string> paths = collect_images(args.inputs, skipped);
  warn_skipped(skipped);
  // Files already in the index (same absolute path) are not added twice.
  std::unordered_set<std::string> present;
  for (int64_t id : index->ids()) present.insert(index->path(id));
  std::vector<std::string> fresh;
  int64_t already = 0;
  for (const std::string& p : paths) {
    if (present.count(p))
      ++already;
    else
      fresh.push_back(p);
  }
  if (paths.empty()) throw Error("index add: no image files found in the given paths");
  std::vector<int64_t> ids;
  if (!fresh.empty()) ids = embed_and_add(e, *index, fresh, skipped);
  if (!ids.empty()) similarity::save_index(*index, args.index);
  if (common().json) {
    json j = index_summary(*index, args.index);
    j["added"] = ids.size();
    j["ids"] = ids;
    j["already_indexed"] = already;
    j["skipped"] = skipped_json(skipped);
    std::cout << j.dump(2) << '\n';
  } else {
    std::cout << "added " << ids.size() << " images to " << args.index << " (now " << index->size()
              << ")";
    if (already) std::cout << "; " << already << " already indexed";
    if (!skipped.empty()) std::cout << "; " << skipped.size() << " skipped";
    std::cout << '\n';
  }
}

void run_remove(const IndexArgs& args) {
  apply_common();
  std::unique_ptr<Index> index = similarity::load_index(args.index);
  const int64_t removed = index->remove(args.ids);
  if (removed > 0) similarity::save_index(*index, args.index);
  if (common().json) {
    json j = index_summary(*index, args.index);
    j["removed"] = removed;
    std::cout << j.dump(2) << '\n';
  } else {
    std::cout << "removed " << removed << " of " << args.ids.size() << " ids from " << args.index
              << " (now " << index->size() << ")\n";
  }
}

void run_info(const IndexArgs& args) {
  apply_common();
  std::unique_ptr<Index> index = similarity::load_index(args.index);
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(args.index, ec);
  json j = index_summary(*index, args.index);
  if (!ec) j["file_bytes"] = bytes;
  std::vector<int64_t> ids = index->ids();
  std::sort(ids.begin(), ids.end());
  if (common().json) {
    if (args.list) {
      json items = json::array();
      for (int64_t id : ids) items.push_back({{"id", id}, {"path", index->path(id)}});
      j["items"] = std::move(items);
    }
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::cout << "index    " << args.index << '\n'
            << "type     " << j["type"].get<std::string>() << '\n'
            << "metric   " << j["metric"].get<std::string>() << '\n'
            << "dim      " << index->dim() << '\n'
            << "size     " << index->size() << '\n'
            << "next id  " << index->next_id() << '\n';
  if (j.contains("hnsw"))
    std::cout << "hnsw     M " << j["hnsw"]["M"] << ", ef_construction "
              << j["hnsw"]["ef_construction"] << ", ef_search " << j["hnsw"]["ef_search"] << '\n';
  if (!ec) std::cout << "file     " << bytes << " bytes\n";
  if (args.list)
    for (int64_t id : ids) std::cout << id << '\t' << index->path(id) << '\n';
}

}  // namespace

void add_index_command(CLI::App& app) {
  auto args = std::make_shared<IndexArgs>();
  CLI::App* idx = app.add_subcommand("index", "Build, extend and inspect similarity indexes");
  idx->require_subcommand(1);

  CLI::App* build = idx->add_subcommand(
      "build", "Embed every image under the given folders/files and save a new index");
  build->add_option("PATH", args->inputs, "folders (searched recursively) and image files")
      ->required();
  build->add_option("-o,--output", args->output, "index file to write")->required();
  build->add_option("--type", args->type, "flat (exact) or hnsw (approximate graph)")
      ->capture_default_str()
      ->check(CLI::IsMember({"flat", "hnsw"}));
  build->add_option("--hnsw-m", args->hnsw_m, "HNSW graph degree")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{1024}));
  build->add_option("--ef-construction", args->ef_construction, "HNSW build candidate list")
      ->capture_default_str()
      ->check(positive());
  add_model_option(*build);
  add_threads_option(*build);
  add_batch_option(*build);
  add_json_flag(*build, "print a JSON summary");
  add_quiet_flag(*build);
  build->footer("Example: imgsim index build photos/ -o photos.imgsimidx");
  build->callback([args] { run_build(*args); });

  CLI::App* add = idx->add_subcommand(
      "add", "Embed images and add them to an existing index (files already in it are skipped)");
  add->add_option("INDEX", args->index, "index file (updated in place)")->required();
  add->add_option("PATH", args->inputs, "image files and folders")->required();
  add_model_option(*add);
  add_threads_option(*add);
  add_batch_option(*add);
  add_json_flag(*add, "print a JSON summary (with the new ids)");
  add_quiet_flag(*add);
  add->footer("Example: imgsim index add photos.imgsimidx new/ extra.jpg");
  add->callback([args] { run_add(*args); });

  CLI::App* rm = idx->add_subcommand("remove", "Remove vectors by id from an index");
  rm->add_option("INDEX", args->index, "index file (updated in place)")->required();
  rm->add_option("ID", args->ids, "ids to remove (unknown ids are ignored)")->required();
  add_json_flag(*rm, "print a JSON summary");
  rm->footer("Example: imgsim index remove photos.imgsimidx 4 17");
  rm->callback([args] { run_remove(*args); });

  CLI::App* info = idx->add_subcommand("info", "Describe an index file");
  info->add_option("INDEX", args->index, "index file")->required();
  info->add_flag("--list", args->list, "also list every id and its path");
  add_json_flag(*info);
  info->footer("Example: imgsim index info photos.imgsimidx --json");
  info->callback([args] { run_info(*args); });
}

}  // namespace imgsim::cli
