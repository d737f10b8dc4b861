// imgsim-ndbench-phash: the pHash baseline of the near-duplicate benchmark (docs/ndbench.md).
// Hashes every database image and query (imgsim::similarity::phash, docs/phash.md) and writes
// the predictions file: for each query its scored database items, score = 1 - hamming / 64.
//
//   imgsim-ndbench-phash --bench data/ndbench --out phash.csv [--top-k K] [--threads N]
#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "imgsim/image/image.hpp"
#include "imgsim/similarity/phash.hpp"
#include "ndbench_io.hpp"

namespace fs = std::filesystem;
namespace nd = imgsim::ndbench;
namespace sim = imgsim::similarity;

namespace {

constexpr const char* kUsage =
    R"(usage: imgsim-ndbench-phash --bench DIR --out FILE [--top-k K] [--threads N]

  --bench DIR     benchmark folder (ground_truth.csv, db.csv and the images)
  --out FILE      predictions CSV to write ("query_id,db_id,score")
  --top-k K       keep the K best database items per query, ties broken by db_id
                  (0, the default: every pair)
  --threads N     decoding threads (2)
  --hashes FILE   also write every image's hash ("id,phash")
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "imgsim-ndbench-phash: " << msg << "\n\n" << kUsage;
  std::exit(2);
}

int parse_int(const std::string& flag, const std::string& v) {
  int x = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) usage_error(flag + ": not a number");
  return x;
}

std::vector<uint64_t> hash_files(const fs::path& dir, const std::vector<std::string>& files,
                                 int threads) {
  std::vector<uint64_t> out(files.size());
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&] {
    for (std::size_t i = next++; i < files.size(); i = next++) {
      try {
        out[i] = sim::phash(imgsim::image::load_image((dir / files[i]).string()));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next = files.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path bench_dir, out_path, hashes_path;
  int top_k = 0, threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) usage_error("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--bench")
      bench_dir = v;
    else if (a == "--out")
      out_path = v;
    else if (a == "--hashes")
      hashes_path = v;
    else if (a == "--top-k")
      top_k = parse_int(a, v);
    else if (a == "--threads")
      threads = parse_int(a, v);
    else
      usage_error("unknown option " + a);
  }
  if (bench_dir.empty() || out_path.empty()) usage_error("--bench and --out are required");
  if (top_k < 0) usage_error("--top-k must be >= 0");
  if (threads < 1 || threads > 256) usage_error("--threads must be in 1..256");

  try {
    const nd::Benchmark bench = nd::load_benchmark(bench_dir);
    std::vector<std::string> db_files, q_files;
    for (const auto& d : bench.db) db_files.push_back(d.file);
    for (const auto& q : bench.queries) q_files.push_back(q.file);
    const std::vector<uint64_t> db_hash = hash_files(bench_dir, db_files, threads);
    const std::vector<uint64_t> q_hash = hash_files(bench_dir, q_files, threads);

    std::ofstream out(out_path, std::ios::binary);
    out << "query_id,db_id,score\n";
    const std::size_t nd_items = bench.db.size();
    const std::size_t k =
        top_k == 0 ? nd_items : std::min<std::size_t>(nd_items, static_cast<std::size_t>(top_k));
    std::vector<std::pair<int, std::size_t>> scored(nd_items);  // (hamming, db index)
    int64_t written = 0;
    for (std::size_t q = 0; q < bench.queries.size(); ++q) {
      for (std::size_t d = 0; d < nd_items; ++d)
        scored[d] = {sim::hamming_distance(q_hash[q], db_hash[d]), d};
      // Lowest distance first, ties by db_id.
      std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k),
                        scored.end(), [&](const auto& a, const auto& b) {
                          if (a.first != b.first) return a.first < b.first;
                          return bench.db[a.second].id < bench.db[b.second].id;
                        });
      for (std::size_t j = 0; j < k; ++j) {
        char score[32];
        std::snprintf(score, sizeof score, "%.6f", 1.0 - scored[j].first / 64.0);
        out << bench.queries[q].id << ',' << bench.db[scored[j].second].id << ',' << score << '\n';
        ++written;
      }
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + out_path.string());

    if (!hashes_path.empty()) {
      std::ofstream h(hashes_path, std::ios::binary);
      h << "id,phash\n";
      for (std::size_t d = 0; d < nd_items; ++d)
        h << bench.db[d].id << ',' << sim::phash_to_hex(db_hash[d]) << '\n';
      for (std::size_t q = 0; q < bench.queries.size(); ++q)
        h << bench.queries[q].id << ',' << sim::phash_to_hex(q_hash[q]) << '\n';
      if (!h.flush()) throw std::runtime_error("cannot write " + hashes_path.string());
    }
    std::cerr << "imgsim-ndbench-phash: " << bench.queries.size() << " queries x " << nd_items
              << " database images, " << written << " pairs written to " << out_path.string()
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "imgsim-ndbench-phash: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
