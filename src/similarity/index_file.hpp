// Index files (docs/index.md, "File format"): the reader and writer, with access to the indexes'
// private state. The HNSW record lives in hnsw_index.cpp, the only file that includes hnswlib.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imgsim/nn/serialize.hpp"
#include "imgsim/similarity/index.hpp"

namespace imgsim::similarity {

struct IndexFileAccess {
  // The whole file: header + payload.
  static std::vector<uint8_t> serialize(const Index& index);
  // Parses and validates a whole file. `expect`, if given, fixes the type, dim and metric.
  static std::unique_ptr<Index> parse(const std::vector<uint8_t>& bytes, const std::string& what,
                                      const Index* expect);

  // HNSW record (hnsw_index.cpp). Rows in internal order, removed ones included.
  static void hnsw_rows(const HnswIndex& index, std::vector<int64_t>& ids,
                        std::vector<float>& vectors);
  static void write_hnsw(const HnswIndex& index, nn::ByteWriter& w);
  // Reads the record that follows the common fields and builds the index from the rows.
  static std::unique_ptr<HnswIndex> read_hnsw(nn::ByteReader& r, int64_t dim, Metric metric,
                                              const std::vector<int64_t>& ids,
                                              const std::vector<float>& vectors);

  static int64_t& next_id(Index& i) { return i.next_id_; }
  static std::unordered_map<int64_t, std::string>& paths(Index& i) { return i.paths_; }
  static const std::unordered_map<int64_t, std::string>& paths(const Index& i) { return i.paths_; }
  static void flat_add(FlatIndex& f, int64_t n, const float* v, const int64_t* ids) {
    f.do_add(n, v, ids);
  }
  static void replace(Index& target, Index&& loaded) { target.replace_with(std::move(loaded)); }
};

}  // namespace imgsim::similarity
