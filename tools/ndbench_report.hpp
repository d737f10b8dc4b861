// Near-duplicate benchmark reports (docs/ndbench.md, "Metrics"): a method's figures overall and
// per edit family, the Markdown score table and the figures as JSON. Header-only, shared by
// imgsim-ndbench-score (tools/ndbench_score.cpp) and `imgsim eval --bench` (src/cli/cmd_eval.cpp)
// so that both print the same table from the same computation.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "ndbench_io.hpp"
#include "ndbench_metrics.hpp"

namespace imgsim::ndbench {

// One method's figures: rows[0] over every query, rows[1 + f] over the queries of family f of
// family_names() (default Metrics, all NaN, for a family without queries).
struct MethodScores {
  std::string name;         // column group title
  int64_t predictions = 0;  // records scored
  std::vector<Metrics> rows;
};

// evaluate() overall, then per family, for the scored pairs of a method on `bench`.
inline std::vector<Metrics> evaluate_by_family(const std::vector<ScoredPair>& pairs,
                                               const Benchmark& bench) {
  const std::vector<int64_t> match = bench.matches();
  const auto& families = family_names();
  std::vector<std::vector<int64_t>> by_family(families.size());
  for (std::size_t q = 0; q < bench.queries.size(); ++q)
    for (std::size_t f = 0; f < families.size(); ++f)
      if (bench.queries[q].family == families[f]) by_family[f].push_back(static_cast<int64_t>(q));
  const int64_t items = static_cast<int64_t>(bench.db.size());
  std::vector<Metrics> rows;
  rows.reserve(families.size() + 1);
  rows.push_back(evaluate(pairs, match, items));
  for (const auto& sel : by_family)
    rows.push_back(sel.empty() ? Metrics{} : evaluate(pairs, match, items, sel));
  return rows;
}

// `decimals` digits after the point; "n/a" for NaN.
inline std::string format_fixed(double v, int decimals) {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// The Markdown table: one row per subset (all, then the families), per method µAP, recall@1
// and recall at 90% precision. `methods` must not be empty and each must have its rows.
inline void write_markdown_table(std::ostream& out, const std::vector<MethodScores>& methods) {
  const auto& families = family_names();
  out << "| edits | queries | with match |";
  for (const MethodScores& m : methods)
    out << " " << m.name << " µAP | " << m.name << " R@1 | " << m.name << " R@P90 |";
  out << "\n|---|---:|---:|";
  for (std::size_t i = 0; i < methods.size(); ++i) out << "---:|---:|---:|";
  out << "\n";
  for (std::size_t r = 0; r <= families.size(); ++r) {
    const Metrics& first = methods.front().rows[r];
    out << "| " << (r == 0 ? std::string("**all**") : families[r - 1]) << " | " << first.queries
        << " | " << first.positives << " |";
    for (const MethodScores& m : methods)
      out << " " << format_fixed(m.rows[r].micro_ap, 3) << " | "
          << format_fixed(m.rows[r].recall_at_1, 3) << " | "
          << format_fixed(m.rows[r].recall_at_p90, 3) << " |";
    out << "\n";
  }
}

// A JSON number with 6 decimals, null for NaN.
inline std::string json_number(double v) {
  if (std::isnan(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

// {"queries", "with_match", "pairs", "micro_ap", "recall_at_1", "recall_at_p90",
// "threshold_at_p90"} on one line.
inline std::string json_metrics(const Metrics& m) {
  return "{\"queries\": " + std::to_string(m.queries) +
         ", \"with_match\": " + std::to_string(m.positives) +
         ", \"pairs\": " + std::to_string(m.pairs) + ", \"micro_ap\": " + json_number(m.micro_ap) +
         ", \"recall_at_1\": " + json_number(m.recall_at_1) +
         ", \"recall_at_p90\": " + json_number(m.recall_at_p90) +
         ", \"threshold_at_p90\": " + json_number(m.threshold_at_p90) + "}";
}

// {"overall": json_metrics, "families": {"crop": json_metrics, ...}}, the object's members
// indented by `indent` spaces (its braces are not indented).
inline std::string json_method_figures(const MethodScores& m, int indent) {
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  const auto& families = family_names();
  std::string j = "\"overall\": " + json_metrics(m.rows[0]) + ",\n" + pad + "\"families\": {";
  for (std::size_t f = 0; f < families.size(); ++f)
    j += std::string(f ? "," : "") + "\n" + pad + "  \"" + families[f] +
         "\": " + json_metrics(m.rows[f + 1]);
  j += "\n" + pad + "}";
  return j;
}

}  // namespace imgsim::ndbench
