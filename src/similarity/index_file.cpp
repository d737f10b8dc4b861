// Index files, format version 1 (docs/index.md, "File format"):
//
//   header   magic "IMGSIMIX" (8), u32 format version, u32 flags (0), u64 payload size,
//            u32 CRC-32 of the payload                                               28 bytes
//   payload  u32 index type (1 flat, 2 hnsw), u32 metric (0 inner_product, 1 cosine),
//            u64 dim, u64 rows, i64 next id, rows x i64 ids, rows x dim x f32 vectors,
//            u64 path count, then per path (ids ascending): i64 id, str path,
//            flat: u32 options (bit 0: half-size prefilter), hnsw: the graph record
//            (hnsw_index.cpp)
//
// Little-endian. The reader checks, in order: size and magic, version, payload size, checksum,
// then every field (type, metric, dim, each length against the bytes left before allocating,
// ids, values, paths, graph), and that nothing is left over; only then is an index built.
#include "similarity/index_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_set>
#include <utility>

#include "imgsim/error.hpp"
#include "imgsim/nn/serialize.hpp"

namespace imgsim::similarity {

namespace {

constexpr char kMagic[8] = {'I', 'M', 'G', 'S', 'I', 'M', 'I', 'X'};
constexpr uint32_t kFormatVersion = 1;
constexpr std::size_t kHeaderSize = 28;
constexpr int64_t kMaxDim = 65536;
constexpr std::size_t kMaxFileBytes = std::size_t{1} << 40;

std::string printable(const uint8_t* p, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = static_cast<char>(p[i]);
    if (p[i] >= 32 && p[i] < 127) {
      s += c;
    } else {
      static const char* hex = "0123456789abcdef";
      s += "\\x";
      s += hex[p[i] >> 4];
      s += hex[p[i] & 15];
    }
  }
  return s;
}

std::string type_name(uint32_t t) {
  if (t == static_cast<uint32_t>(IndexType::flat) || t == static_cast<uint32_t>(IndexType::hnsw))
    return to_string(static_cast<IndexType>(t));
  return "unknown type " + std::to_string(t);
}

}  // namespace

std::vector<uint8_t> IndexFileAccess::serialize(const Index& index) {
  std::vector<int64_t> ids;
  std::vector<float> hnsw_vectors;
  const float* vectors = nullptr;
  if (index.type() == IndexType::flat) {
    const auto& f = static_cast<const FlatIndex&>(index);
    ids = f.ids_;
    vectors = f.data_;
  } else {
    hnsw_rows(static_cast<const HnswIndex&>(index), ids, hnsw_vectors);
    vectors = hnsw_vectors.data();
  }
  const auto rows = static_cast<int64_t>(ids.size());
  const int64_t d = index.dim();

  nn::ByteWriter p;
  p.buffer().reserve(64 + static_cast<std::size_t>(rows) * (8 + 4 * static_cast<std::size_t>(d)));
  p.u32(static_cast<uint32_t>(index.type()));
  p.u32(static_cast<uint32_t>(index.metric()));
  p.u64(static_cast<uint64_t>(d));
  p.u64(static_cast<uint64_t>(rows));
  p.i64(index.next_id());
  p.bytes(ids.data(), ids.size() * sizeof(int64_t));
  if (rows > 0) p.bytes(vectors, static_cast<std::size_t>(rows * d) * sizeof(float));
  std::vector<std::pair<int64_t, const std::string*>> paths;
  for (const auto& [id, s] : index.paths_) paths.emplace_back(id, &s);
  std::sort(paths.begin(), paths.end());  // same index, same bytes
  p.u64(paths.size());
  for (const auto& [id, s] : paths) {
    p.i64(id);
    p.str(*s);
  }
  if (index.type() == IndexType::flat)
    p.u32(static_cast<const FlatIndex&>(index).half_prefilter() ? 1u : 0u);
  else
    write_hnsw(static_cast<const HnswIndex&>(index), p);

  nn::ByteWriter file;
  file.buffer().reserve(kHeaderSize + p.buffer().size());
  file.bytes(kMagic, sizeof kMagic);
  file.u32(kFormatVersion);
  file.u32(0);
  file.u64(p.buffer().size());
  file.u32(nn::crc32(p.buffer().data(), p.buffer().size()));
  file.bytes(p.buffer().data(), p.buffer().size());
  return std::move(file.buffer());
}

std::unique_ptr<Index> IndexFileAccess::parse(const std::vector<uint8_t>& bytes,
                                              const std::string& what, const Index* expect) {
  nn::ByteReader h(bytes.data(), bytes.size(), what);
  if (bytes.size() < kHeaderSize)
    h.fail("not an imgsim index: " + std::to_string(bytes.size()) +
           " bytes, shorter than the 28-byte header (expected magic 'IMGSIMIX')");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    h.fail("not an imgsim index: expected magic 'IMGSIMIX', found '" +
           printable(bytes.data(), sizeof kMagic) + "'");
  uint8_t magic[8];
  h.bytes(magic, sizeof magic, "magic");
  const uint32_t version = h.u32("format version");
  if (version != kFormatVersion)
    h.fail("format version " + std::to_string(version) + " is not supported (this build reads " +
           std::to_string(kFormatVersion) + ")");
  const uint32_t flags = h.u32("flags");
  if (flags != 0) h.fail("flags: expected 0, found " + std::to_string(flags));
  const uint64_t size = h.u64("payload size");
  const uint32_t crc = h.u32("payload checksum");
  if (size != bytes.size() - kHeaderSize)
    h.fail("payload size says " + std::to_string(size) + " bytes but the file holds " +
           std::to_string(bytes.size() - kHeaderSize) + " after the header (truncated or padded)");
  const uint8_t* payload = bytes.data() + kHeaderSize;
  const uint32_t actual = nn::crc32(payload, static_cast<std::size_t>(size));
  if (actual != crc)
    h.fail("checksum mismatch: header says " + std::to_string(crc) + ", payload gives " +
           std::to_string(actual) + " (the file is corrupt)");

  nn::ByteReader r(payload, static_cast<std::size_t>(size), what);
  const uint32_t type = r.u32("index type");
  if (type != static_cast<uint32_t>(IndexType::flat) &&
      type != static_cast<uint32_t>(IndexType::hnsw))
    r.fail("index type: expected 1 (flat) or 2 (hnsw), found " + std::to_string(type));
  if (expect && type != static_cast<uint32_t>(expect->type()))
    r.fail(std::string("index type: expected ") + to_string(expect->type()) + ", found " +
           type_name(type));
  const uint32_t metric = r.u32("metric");
  if (metric > 1)
    r.fail("metric: expected 0 (inner_product) or 1 (cosine), found " + std::to_string(metric));
  if (expect && metric != static_cast<uint32_t>(expect->metric()))
    r.fail(std::string("metric: expected ") + to_string(expect->metric()) + ", found " +
           to_string(static_cast<Metric>(metric)));
  const uint64_t dim_u = r.u64("dim");
  if (dim_u < 1 || dim_u > static_cast<uint64_t>(kMaxDim))
    r.fail("dim: expected 1.." + std::to_string(kMaxDim) + ", found " + std::to_string(dim_u));
  const auto dim = static_cast<int64_t>(dim_u);
  if (expect && dim != expect->dim())
    r.fail("dim: expected " + std::to_string(expect->dim()) + ", found " + std::to_string(dim));
  const uint64_t rows_u = r.u64("row count");
  const int64_t next_id = r.i64("next id");
  // Every row needs an id and dim floats: bound the count by the bytes left before allocating.
  const uint64_t row_bytes = 8 + 4 * dim_u;
  if (rows_u > r.remaining() / row_bytes)
    r.fail("row count " + std::to_string(rows_u) + " needs " + std::to_string(row_bytes) +
           " bytes per row but only " + std::to_string(r.remaining()) + " bytes are left");
  const auto rows = static_cast<int64_t>(rows_u);
  if (next_id < 0) r.fail("next id: expected >= 0, found " + std::to_string(next_id));

  std::vector<int64_t> ids(static_cast<std::size_t>(rows));
  r.bytes(ids.data(), ids.size() * sizeof(int64_t), "ids");
  {
    std::unordered_set<int64_t> seen;
    seen.reserve(ids.size());
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t id = ids[static_cast<std::size_t>(i)];
      if (id < 0 || id >= next_id)
        r.fail("id of row " + std::to_string(i) + ": expected 0.." + std::to_string(next_id - 1) +
               " (below the next id), found " + std::to_string(id));
      if (!seen.insert(id).second)
        r.fail("id " + std::to_string(id) + " appears twice (again at row " + std::to_string(i) +
               ")");
    }
  }
  std::vector<float> vectors(static_cast<std::size_t>(rows * dim));
  r.bytes(vectors.data(), vectors.size() * sizeof(float), "vectors");
  for (std::size_t i = 0; i < vectors.size(); ++i)
    if (!std::isfinite(vectors[i]))
      r.fail("vectors: row " + std::to_string(static_cast<int64_t>(i) / dim) + ", component " +
             std::to_string(static_cast<int64_t>(i) % dim) + " is not finite");

  const uint64_t n_paths = r.u64("path count");
  if (n_paths > rows_u)
    r.fail("path count: expected at most the row count " + std::to_string(rows) + ", found " +
           std::to_string(n_paths));
  std::unordered_map<int64_t, std::string> paths;
  {
    std::unordered_set<int64_t> id_set(ids.begin(), ids.end());
    int64_t prev = -1;
    for (uint64_t i = 0; i < n_paths; ++i) {
      const int64_t id = r.i64("path id");
      if (id <= prev)
        r.fail("path " + std::to_string(i) + ": ids must be ascending, found " +
               std::to_string(id) + " after " + std::to_string(prev));
      if (!id_set.count(id))
        r.fail("path " + std::to_string(i) + ": id " + std::to_string(id) + " is not in the index");
      std::string s = r.str("path");
      if (s.empty())
        r.fail("path " + std::to_string(i) + " (id " + std::to_string(id) + ") is empty");
      paths.emplace(id, std::move(s));
      prev = id;
    }
  }

  std::unique_ptr<Index> out;
  if (type == static_cast<uint32_t>(IndexType::flat)) {
    const uint32_t options = r.u32("flat options");
    if (options > 1) r.fail("flat options: expected 0 or 1, found " + std::to_string(options));
    auto f = std::make_unique<FlatIndex>(dim, static_cast<Metric>(metric), options == 1);
    if (rows > 0) flat_add(*f, rows, vectors.data(), ids.data());
    out = std::move(f);
  } else {
    out = read_hnsw(r, dim, static_cast<Metric>(metric), ids, vectors);
    for (const auto& [id, s] : paths)
      if (!out->contains(id))
        r.fail("path of id " + std::to_string(id) + ": that id is removed from the graph");
  }
  if (r.remaining() != 0)
    r.fail(std::to_string(r.remaining()) + " bytes left over after the index (expected none)");
  IndexFileAccess::next_id(*out) = next_id;
  IndexFileAccess::paths(*out) = std::move(paths);
  return out;
}

void save_index(const Index& index, const std::string& path) {
  nn::write_file_atomic(path, IndexFileAccess::serialize(index));
}

std::unique_ptr<Index> load_index(const std::string& path) {
  return IndexFileAccess::parse(nn::read_file(path, kMaxFileBytes), "index file '" + path + "'",
                                nullptr);
}

void load_index(Index& index, const std::string& path) {
  std::unique_ptr<Index> loaded = IndexFileAccess::parse(nn::read_file(path, kMaxFileBytes),
                                                         "index file '" + path + "'", &index);
  IndexFileAccess::replace(index, std::move(*loaded));
}

}  // namespace imgsim::similarity
