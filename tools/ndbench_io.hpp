// Near-duplicate benchmark files (docs/ndbench.md, "Files"): CSV reading and writing, the
// benchmark's ground truth and database lists, and prediction files. Header-only, shared by the
// imgsim-ndbench-* programs, `imgsim eval --bench` (src/cli/cmd_eval.cpp) and
// tests/test_ndbench_metrics.cpp.
//
// CSV as RFC 4180: comma-separated, a field holding a comma, a double quote or a line break is
// double-quoted with inner quotes doubled; records end with "\n" (a "\r\n" is accepted); the
// first record is the header.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ndbench_metrics.hpp"

namespace imgsim::ndbench {

// The edit families, in table order. A query's family is the kind of its single edit (the four
// colour adjustments are one family, horizontal and vertical flips another), or "combined".
inline const std::vector<std::string>& family_names() {
  static const std::vector<std::string> names = {"crop", "resize", "jpeg",      "rotate",
                                                 "flip", "color",  "grayscale", "blur",
                                                 "text", "logo",   "border",    "combined"};
  return names;
}

// --- CSV -----------------------------------------------------------------------------------

inline std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// Parses a whole CSV text into records of fields. Throws std::runtime_error naming `name` and
// the line for an unterminated quote or a stray quote inside an unquoted field.
inline std::vector<std::vector<std::string>> parse_csv(std::string_view text,
                                                       const std::string& name = "<csv>") {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;      // inside a quoted field
  bool was_quoted = false;  // the current field started with a quote
  bool any = false;         // the current record has content
  int64_t line = 1;
  const auto fail = [&](const char* what) {
    throw std::runtime_error(name + ":" + std::to_string(line) + ": " + what);
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      if (!field.empty() || was_quoted) fail("stray double quote");
      quoted = was_quoted = any = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      was_quoted = false;
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && !(i + 1 < text.size() && text[i + 1] == '\n')) fail("bare carriage return");
      if (c == '\r') ++i;
      if (any || !field.empty()) {
        record.push_back(std::move(field));
        records.push_back(std::move(record));
      }
      record.clear();
      field.clear();
      was_quoted = any = false;
      ++line;
    } else {
      if (was_quoted) fail("text after a closing double quote");
      field += c;
      any = true;
    }
  }
  if (quoted) fail("unterminated double quote");
  if (any || !field.empty()) {
    record.push_back(std::move(field));
    records.push_back(std::move(record));
  }
  return records;
}

// A JSON string literal.
inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[(c >> 4) & 0xF];
      out += kHex[c & 0xF];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A CSV file whose header must start with `columns`; returns the data records, each with at
// least that many fields.
inline std::vector<std::vector<std::string>> read_csv_table(
    const std::filesystem::path& path, const std::vector<std::string>& columns) {
  auto records = parse_csv(read_text(path), path.string());
  if (records.empty()) throw std::runtime_error(path.string() + ": empty file, no header");
  const auto& header = records.front();
  for (std::size_t c = 0; c < columns.size(); ++c)
    if (c >= header.size() || header[c] != columns[c])
      throw std::runtime_error(path.string() + ": column " + std::to_string(c + 1) +
                               " of the header must be \"" + columns[c] + "\"");
  records.erase(records.begin());
  for (std::size_t r = 0; r < records.size(); ++r)
    if (records[r].size() < columns.size())
      throw std::runtime_error(path.string() + ": record " + std::to_string(r + 1) + " has " +
                               std::to_string(records[r].size()) + " fields, expected " +
                               std::to_string(columns.size()));
  return records;
}

// --- the benchmark -------------------------------------------------------------------------

struct QueryTruth {
  std::string id;      // "q00042"
  std::string file;    // relative to the benchmark folder
  std::string match;   // database id, "" when the query's source is not in the database
  std::string family;  // one of family_names()
  std::string edits;   // the edits' text forms joined by " | "
  std::string source;  // the source photo, relative to the photo folder
};

struct DbItem {
  std::string id;    // "d0007"
  std::string file;  // relative to the benchmark folder
  std::string role;  // "queried" (some query copies it) or "distractor"
  std::string source;
};

inline const std::vector<std::string>& ground_truth_columns() {
  static const std::vector<std::string> c = {"query_id", "query_file", "db_id",
                                             "family",   "edits",      "source"};
  return c;
}
inline const std::vector<std::string>& db_columns() {
  static const std::vector<std::string> c = {"db_id", "db_file", "role", "source"};
  return c;
}
inline const std::vector<std::string>& prediction_columns() {
  static const std::vector<std::string> c = {"query_id", "db_id", "score"};
  return c;
}

struct Benchmark {
  std::filesystem::path dir;
  std::vector<QueryTruth> queries;
  std::vector<DbItem> db;
  std::unordered_map<std::string, int64_t> query_index;  // id -> position
  std::unordered_map<std::string, int64_t> db_index;

  // match[q]: index of the query's database item, -1 if none.
  std::vector<int64_t> matches() const {
    std::vector<int64_t> m;
    m.reserve(queries.size());
    for (const QueryTruth& q : queries) m.push_back(q.match.empty() ? -1 : db_index.at(q.match));
    return m;
  }
};

// Reads DIR/ground_truth.csv and DIR/db.csv and checks them (unique ids, known matches and
// families).
inline Benchmark load_benchmark(const std::filesystem::path& dir) {
  Benchmark b;
  b.dir = dir;
  for (auto& r : read_csv_table(dir / "db.csv", db_columns())) {
    DbItem d{r[0], r[1], r[2], r[3]};
    if (!b.db_index.emplace(d.id, static_cast<int64_t>(b.db.size())).second)
      throw std::runtime_error((dir / "db.csv").string() + ": repeated db_id " + d.id);
    b.db.push_back(std::move(d));
  }
  const auto& families = family_names();
  for (auto& r : read_csv_table(dir / "ground_truth.csv", ground_truth_columns())) {
    QueryTruth q{r[0], r[1], r[2], r[3], r[4], r[5]};
    const std::string where = (dir / "ground_truth.csv").string() + ": query " + q.id;
    if (!b.query_index.emplace(q.id, static_cast<int64_t>(b.queries.size())).second)
      throw std::runtime_error(where + " is repeated");
    if (!q.match.empty() && !b.db_index.count(q.match))
      throw std::runtime_error(where + " matches unknown db_id " + q.match);
    if (std::find(families.begin(), families.end(), q.family) == families.end())
      throw std::runtime_error(where + " has unknown family " + q.family);
    b.queries.push_back(std::move(q));
  }
  return b;
}

// Predictions: "query_id,db_id,score" records (further columns ignored). Unknown ids and
// non-numeric or non-finite scores throw std::runtime_error naming the record.
inline std::vector<ScoredPair> load_predictions(const std::filesystem::path& path,
                                                const Benchmark& b) {
  std::vector<ScoredPair> out;
  const auto records = read_csv_table(path, prediction_columns());
  out.reserve(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const auto fail = [&](const std::string& what) {
      throw std::runtime_error(path.string() + ": record " + std::to_string(i + 1) + ": " + what);
    };
    const auto q = b.query_index.find(r[0]);
    if (q == b.query_index.end()) fail("unknown query_id \"" + r[0] + "\"");
    const auto d = b.db_index.find(r[1]);
    if (d == b.db_index.end()) fail("unknown db_id \"" + r[1] + "\"");
    double score = 0.0;
    const char* first = r[2].data();
    const char* last = first + r[2].size();
    const auto res = std::from_chars(first, last, score);
    if (res.ec != std::errc() || res.ptr != last || !std::isfinite(score))
      fail("score \"" + r[2] + "\" is not a finite number");
    out.push_back({q->second, d->second, score});
  }
  return out;
}

}  // namespace imgsim::ndbench
