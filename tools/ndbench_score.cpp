// imgsim-ndbench-score: scores prediction files against a near-duplicate benchmark
// (docs/ndbench.md, "Metrics"): micro average precision, recall@1 and recall at 90% precision,
// overall and per edit family, as a Markdown table and as JSON.
//
//   imgsim-ndbench-score --bench data/ndbench --predictions phash=phash.csv
//                        [--predictions cnn=cnn.csv ...] [--json scores.json]
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "ndbench_io.hpp"
#include "ndbench_metrics.hpp"
#include "ndbench_report.hpp"

namespace fs = std::filesystem;
namespace nd = imgsim::ndbench;

namespace {

constexpr const char* kUsage =
    R"(usage: imgsim-ndbench-score --bench DIR --predictions [NAME=]FILE ... [--json FILE]

  --bench DIR                  benchmark folder (ground_truth.csv, db.csv)
  --predictions [NAME=]FILE    a method's predictions: CSV "query_id,db_id,score", one record per
                               scored pair (higher = more alike); repeat to compare methods.
                               NAME defaults to the file name without extension
  --json FILE                  also write the figures as JSON ("-" for standard output)
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "imgsim-ndbench-score: " << msg << "\n\n" << kUsage;
  std::exit(2);
}

struct Method {
  fs::path file;
  nd::MethodScores scores;
};

}  // namespace

int main(int argc, char** argv) {
  fs::path bench_dir;
  fs::path json_path;
  std::vector<Method> methods;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) usage_error("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--bench") {
      bench_dir = v;
    } else if (a == "--json") {
      json_path = v;
    } else if (a == "--predictions") {
      Method m;
      const auto eq = v.find('=');
      if (eq != std::string::npos && eq > 0) {
        m.scores.name = v.substr(0, eq);
        m.file = v.substr(eq + 1);
      } else {
        m.file = v;
        m.scores.name = m.file.stem().string();
      }
      methods.push_back(std::move(m));
    } else {
      usage_error("unknown option " + a);
    }
  }
  if (bench_dir.empty() || methods.empty()) usage_error("--bench and --predictions are required");

  try {
    const nd::Benchmark bench = nd::load_benchmark(bench_dir);
    std::vector<nd::MethodScores> scores;
    for (Method& m : methods) {
      const std::vector<nd::ScoredPair> pairs = nd::load_predictions(m.file, bench);
      m.scores.predictions = static_cast<int64_t>(pairs.size());
      m.scores.rows = nd::evaluate_by_family(pairs, bench);
      scores.push_back(m.scores);
    }

    // Markdown: one row per subset; per method micro-AP, recall@1, recall at 90% precision.
    nd::write_markdown_table(std::cout, scores);

    if (!json_path.empty()) {
      std::string j =
          "{\n  \"bench\": " + nd::json_string(bench_dir.generic_string()) + ",\n  \"methods\": {";
      for (std::size_t k = 0; k < scores.size(); ++k) {
        const nd::MethodScores& m = scores[k];
        j += std::string(k ? "," : "") + "\n    " + nd::json_string(m.name) +
             ": {\n      \"predictions\": " + std::to_string(m.predictions) + ",\n      " +
             nd::json_method_figures(m, 6) + "\n    }";
      }
      j += "\n  }\n}\n";
      if (json_path == "-") {
        std::cout << "\n" << j;
      } else {
        std::ofstream f(json_path, std::ios::binary);
        f << j;
        if (!f.flush()) throw std::runtime_error("cannot write " + json_path.string());
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "imgsim-ndbench-score: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
