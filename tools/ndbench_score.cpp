// imgsim-ndbench-score: scores prediction files against a near-duplicate benchmark
// (docs/ndbench.md, "Metrics"): micro average precision, recall@1 and recall at 90% precision,
// overall and per edit family, as a Markdown table and as JSON.
//
//   imgsim-ndbench-score --bench data/ndbench --predictions phash=phash.csv
//                        [--predictions cnn=cnn.csv ...] [--json scores.json]
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "ndbench_io.hpp"
#include "ndbench_metrics.hpp"

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
  std::string name;
  fs::path file;
  int64_t records = 0;
  std::vector<nd::Metrics> rows;  // overall, then one per family
};

std::string fixed(double v, int decimals) {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string json_number(double v) {
  if (std::isnan(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

std::string json_metrics(const nd::Metrics& m) {
  return "{\"queries\": " + std::to_string(m.queries) +
         ", \"with_match\": " + std::to_string(m.positives) +
         ", \"pairs\": " + std::to_string(m.pairs) + ", \"micro_ap\": " + json_number(m.micro_ap) +
         ", \"recall_at_1\": " + json_number(m.recall_at_1) +
         ", \"recall_at_p90\": " + json_number(m.recall_at_p90) +
         ", \"threshold_at_p90\": " + json_number(m.threshold_at_p90) + "}";
}

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
        m.name = v.substr(0, eq);
        m.file = v.substr(eq + 1);
      } else {
        m.file = v;
        m.name = m.file.stem().string();
      }
      methods.push_back(std::move(m));
    } else {
      usage_error("unknown option " + a);
    }
  }
  if (bench_dir.empty() || methods.empty()) usage_error("--bench and --predictions are required");

  try {
    const nd::Benchmark bench = nd::load_benchmark(bench_dir);
    const std::vector<int64_t> match = bench.matches();
    const auto& families = nd::family_names();
    std::vector<std::vector<int64_t>> by_family(families.size());
    for (std::size_t q = 0; q < bench.queries.size(); ++q)
      for (std::size_t f = 0; f < families.size(); ++f)
        if (bench.queries[q].family == families[f]) by_family[f].push_back(static_cast<int64_t>(q));
    const int64_t items = static_cast<int64_t>(bench.db.size());

    for (Method& m : methods) {
      const std::vector<nd::ScoredPair> pairs = nd::load_predictions(m.file, bench);
      m.records = static_cast<int64_t>(pairs.size());
      m.rows.push_back(nd::evaluate(pairs, match, items));
      for (const auto& sel : by_family)
        m.rows.push_back(sel.empty() ? nd::Metrics{} : nd::evaluate(pairs, match, items, sel));
    }

    // Markdown: one row per subset; per method micro-AP, recall@1, recall at 90% precision.
    std::cout << "| edits | queries | with match |";
    for (const Method& m : methods)
      std::cout << " " << m.name << " µAP | " << m.name << " R@1 | " << m.name << " R@P90 |";
    std::cout << "\n|---|---:|---:|";
    for (std::size_t i = 0; i < methods.size(); ++i) std::cout << "---:|---:|---:|";
    std::cout << "\n";
    for (std::size_t r = 0; r <= families.size(); ++r) {
      const nd::Metrics& first = methods.front().rows[r];
      std::cout << "| " << (r == 0 ? std::string("**all**") : families[r - 1]) << " | "
                << first.queries << " | " << first.positives << " |";
      for (const Method& m : methods)
        std::cout << " " << fixed(m.rows[r].micro_ap, 3) << " | " << fixed(m.rows[r].recall_at_1, 3)
                  << " | " << fixed(m.rows[r].recall_at_p90, 3) << " |";
      std::cout << "\n";
    }

    if (!json_path.empty()) {
      std::string j =
          "{\n  \"bench\": " + nd::json_string(bench_dir.generic_string()) + ",\n  \"methods\": {";
      for (std::size_t k = 0; k < methods.size(); ++k) {
        const Method& m = methods[k];
        j += std::string(k ? "," : "") + "\n    " + nd::json_string(m.name) +
             ": {\n      \"predictions\": " + std::to_string(m.records) +
             ",\n      \"overall\": " + json_metrics(m.rows[0]) + ",\n      \"families\": {";
        for (std::size_t f = 0; f < families.size(); ++f)
          j += std::string(f ? "," : "") + "\n        \"" + families[f] +
               "\": " + json_metrics(m.rows[f + 1]);
        j += "\n      }\n    }";
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
